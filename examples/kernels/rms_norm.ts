/**
 * An RMSNorm written outside this project, in another style than `gpu/norm.ts`: one workgroup
 * per row, `vec4` loads and stores where the row length allows (scalar otherwise), the shape
 * read from the contract's uniform rather than override constants. It passes every
 * conformance shape:
 *
 * ```sh
 * deno task conformance --kernel examples/kernels/rms_norm.ts
 * ```
 *
 * @module
 */
import type { ForeignKernel, RmsNormPairShape } from "../../gpu/mod.ts";

const WORKGROUP = 64;

/**
 * The WGSL for a row length: `vec4` views of x, weight and out when `dim` is a multiple of 4.
 * `epsInsideRoot: false` builds the classic mistake, `1 / (sqrt(mean) + eps)`.
 */
export function rmsNormWgsl(dim: number, epsInsideRoot = true): string {
  const vec = dim % 4 === 0;
  const t = vec ? "vec4<f32>" : "f32";
  const scale = epsInsideRoot
    ? "inverseSqrt(partial[0] / f32(params.dim) + params.eps)"
    : "1.0 / (sqrt(partial[0] / f32(params.dim)) + params.eps)";
  return /* wgsl */ `
struct Params { rows: u32, dim: u32, eps: f32 }
@group(0) @binding(0) var<storage, read> x: array<${t}>;
@group(0) @binding(1) var<storage, read> weight: array<${t}>;
@group(0) @binding(2) var<storage, read_write> out: array<${t}>;
@group(0) @binding(3) var<uniform> params: Params;
var<workgroup> partial: array<f32, ${WORKGROUP}>;

@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(workgroup_id) row: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let n = params.dim / ${vec ? 4 : 1}u;
  let base = row.x * n;
  var sum = 0.0;
  for (var i = lid; i < n; i += ${WORKGROUP}u) {
    let v = x[base + i];
    sum += ${vec ? "dot(v, v)" : "v * v"};
  }
  partial[lid] = sum;
  workgroupBarrier();
  for (var half = ${WORKGROUP / 2}u; half > 0u; half /= 2u) {
    if (lid < half) { partial[lid] += partial[lid + half]; }
    workgroupBarrier();
  }
  let scale = ${scale};
  for (var i = lid; i < n; i += ${WORKGROUP}u) {
    out[base + i] = weight[i] * (x[base + i] * scale);
  }
}`;
}

/** The kernels this module offers to `deno task conformance --kernel`. */
export const kernels: ForeignKernel<RmsNormPairShape>[] = [{
  family: "rmsNorm",
  name: "vec4 rows",
  wgsl: ({ dim }) => rmsNormWgsl(dim),
  workgroups: ({ rows }) => rows,
}];
