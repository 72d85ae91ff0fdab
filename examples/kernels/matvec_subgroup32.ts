/**
 * A matvec that assumes a subgroup of 32 invocations: one workgroup of 32 per output, and one
 * `subgroupAdd` taken as the workgroup's sum. Right where subgroups are 32 wide; wrong wherever
 * they are smaller (headless Chromium's SwiftShader runs subgroups of 4, and the conformance
 * table's adapter line says so). Needs the `subgroups` feature (skipped without it):
 *
 * ```sh
 * deno task browser conformance --kernel examples/kernels/matvec_subgroup32.ts
 * ```
 *
 * @module
 */
import type { ForeignKernel, MatmulPairShape } from "../../gpu/mod.ts";

const WGSL = /* wgsl */ `
enable subgroups;
struct Params { rows: u32, outDim: u32, inDim: u32 }
@group(0) @binding(0) var<storage, read> w: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

@compute @workgroup_size(32)
fn main(@builtin(workgroup_id) id: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let o = id.x;
  let t = id.y;
  var sum = 0.0;
  for (var i = lid; i < params.inDim; i += 32u) {
    sum += w[o * params.inDim + i] * x[t * params.inDim + i];
  }
  let total = subgroupAdd(sum); // the bug: the whole workgroup only if subgroups are 32 wide
  if (lid == 0u) { out[t * params.outDim + o] = total; }
}`;

/** The kernels this module offers to `deno task conformance --kernel`. */
export const kernels: ForeignKernel<MatmulPairShape>[] = [{
  family: "matmul",
  name: "subgroup of 32",
  wgsl: WGSL,
  features: ["subgroups"],
  workgroups: ({ rows, outDim }) => [outDim, rows],
}];
