/**
 * RMSNorm: `out = weight ⊙ x / sqrt(mean(x²) + eps)` over each row of `x: (rows, dim)`.
 * One workgroup per row: strided sums of squares, then a tree reduction in workgroup memory.
 *
 * @module
 */
import type { Gpu } from "./device.ts";
import { compileKernel, type Kernel } from "./kernel.ts";
import { checkInteger } from "../reference/checks.ts";
import { DEFAULT_NORM_EPS } from "../reference/norm.ts";
import { type KernelPair, TIGHT } from "./pair.ts";
import { rmsNorm } from "../reference/norm.ts";
import { Rng } from "../reference/random.ts";

const WGSL = /* wgsl */ `
override WG: u32 = 64u; // a power of two: the reduction halves it
override DIM: u32;
override EPS: f32;
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
var<workgroup> partial: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let base = wid.x * DIM;
  var sum = 0.0;
  for (var i = lid; i < DIM; i += WG) {
    let v = x[base + i];
    sum += v * v;
  }
  partial[lid] = sum;
  workgroupBarrier();
  for (var half = WG / 2u; half > 0u; half /= 2u) {
    if (lid < half) { partial[lid] += partial[lid + half]; }
    workgroupBarrier();
  }
  let scale = 1.0 / sqrt(partial[0] / f32(DIM) + EPS);
  for (var i = lid; i < DIM; i += WG) {
    out[base + i] = weight[i] * (x[base + i] * scale);
  }
}`;

/** Shape of an {@linkcode rmsNormKernel}. */
export interface RmsNormShape {
  /** Rows (tokens) normalized independently. */
  rows: number;
  /** Features per row. */
  dim: number;
  /** Added to the mean square; 1e-5 by default. */
  eps?: number;
}

/**
 * Compiles RMSNorm for a shape. Bindings: `x (rows·dim)`, `weight (dim)`, `out (rows·dim)`.
 *
 * @example
 * ```ts ignore
 * const norm = await rmsNormKernel(gpu, { rows: 1, dim: 288 });
 * await gpu.submit(norm.bind({ x, weight, out }));
 * ```
 */
export function rmsNormKernel(
  gpu: Gpu,
  shape: RmsNormShape,
): Promise<Kernel<"x" | "weight" | "out">> {
  const { rows, dim, eps = DEFAULT_NORM_EPS } = shape;
  const name = `rmsNorm ${rows}x${dim}`;
  checkInteger(`${name}: rows`, rows);
  checkInteger(`${name}: dim`, dim);
  return compileKernel(gpu, name, WGSL, { WG: 64, DIM: dim, EPS: eps }, ["x", "weight", "out"], [
    rows,
  ]);
}

// ─── Registry entry: this kernel against its reference (collected in `pairs.ts`) ───

/** Shape of the RMSNorm family. */
export interface RmsNormPairShape {
  /** Rows normalized independently. */
  rows: number;
  /** Features per row. */
  dim: number;
  /**
   * Scales `x`: rows of tiny values (mean square near eps), where eps is added decides
   * the result; 1 if absent.
   */
  scale?: number;
}

/**
 * RMSNorm of each row of `x (rows, dim)` with `weight (dim)`, eps 1e-5; the `scale`d rows have
 * a mean square below eps, so that a kernel adding eps outside the square root fails there.
 */
export const RMS_NORM_PAIR: KernelPair<
  RmsNormPairShape,
  { x: Float32Array; weight: Float32Array }
> = {
  family: "rmsNorm",
  describe: ({ rows, dim, scale }) => `${rows}x${dim}${scale ? ` scaled ${scale}` : ""}`,
  inputs({ rows, dim, scale = 1 }) {
    const rng = new Rng(dim + 7);
    return { x: rng.uniformArray(rows * dim).map((v) => v * scale), weight: rng.uniformArray(dim) };
  },
  reference: (_, { x, weight }) => rmsNorm(x, weight),
  conformance: [
    { rows: 1, dim: 1 },
    { rows: 3, dim: 7 },
    { rows: 1, dim: 4099 },
    { rows: 2, dim: 288 },
    { rows: 7, dim: 768 },
    { rows: 1, dim: 2048 },
    { rows: 2, dim: 288, scale: 1e-3 },
    { rows: 3, dim: 64, scale: 1e-4 },
  ],
  bench: { quick: [{ rows: 1, dim: 288 }], full: [{ rows: 1, dim: 2048 }] },
  bytes: ({ rows, dim }) => 4 * (2 * rows * dim + dim),
  flops: ({ rows, dim }) => 4 * rows * dim, // square-add, then scale and weight each element
  tolerance: TIGHT,
  variants: [{
    name: "default",
    record: async (gpu, shape, { x, weight }, buffers) =>
      (await rmsNormKernel(gpu, shape)).bind({
        x: buffers.input(x),
        weight: buffers.input(weight),
        out: buffers.output(x.length),
      }),
  }],
};
