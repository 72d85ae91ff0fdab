/**
 * Numerically stable softmax over each row of `x: (rows, n)`, one workgroup per row: the row
 * maximum and then the sum of exponentials are reduced in workgroup memory. `-Infinity` entries
 * (found by their bits: WGSL may assume floats are finite) weigh 0, and a row of them gives
 * zeros, as the reference's `softmax`.
 *
 * @module
 */
import type { Gpu } from "./device.ts";
import { compileKernel, type Kernel, WGSL_LOWEST } from "./kernel.ts";
import { checkInteger } from "../reference/checks.ts";
import { type KernelPair, TIGHT } from "./pair.ts";
import { Rng } from "../reference/random.ts";
import { softmax } from "../reference/softmax.ts";

const WGSL = /* wgsl */ `
override WG: u32 = 64u; // a power of two: the reductions halve it
override N: u32;
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
var<workgroup> partial: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let base = wid.x * N;
  var m = ${WGSL_LOWEST};
  for (var i = lid; i < N; i += WG) { m = max(m, x[base + i]); } // -inf rows: m stays finite
  partial[lid] = m;
  workgroupBarrier();
  for (var half = WG / 2u; half > 0u; half /= 2u) {
    if (lid < half) { partial[lid] = max(partial[lid], partial[lid + half]); }
    workgroupBarrier();
  }
  let rowMax = partial[0];
  workgroupBarrier();
  var sum = 0.0;
  for (var i = lid; i < N; i += WG) {
    let v = x[base + i];
    let e = select(exp(v - rowMax), 0.0, bitcast<u32>(v) == 0xff800000u);
    out[base + i] = e;
    sum += e;
  }
  partial[lid] = sum;
  workgroupBarrier();
  for (var half = WG / 2u; half > 0u; half /= 2u) {
    if (lid < half) { partial[lid] += partial[lid + half]; }
    workgroupBarrier();
  }
  // The largest entry contributes exp(0) = 1: a zero sum means every entry was -inf.
  let inv = select(1.0 / partial[0], 0.0, partial[0] == 0.0);
  // Each invocation rescales the entries it wrote itself: no barrier needed on out.
  for (var i = lid; i < N; i += WG) { out[base + i] *= inv; }
}`;

/**
 * Compiles softmax over rows of length `n`. Bindings: `x (rows·n)`, `out (rows·n)`.
 *
 * @example
 * ```ts ignore
 * const softmax = await softmaxKernel(gpu, { rows: 1, n: 32000 });
 * await gpu.submit(softmax.bind({ x: logits, out: probs }));
 * ```
 */
export function softmaxKernel(
  gpu: Gpu,
  shape: { rows: number; n: number },
): Promise<Kernel<"x" | "out">> {
  const name = `softmax ${shape.rows}x${shape.n}`;
  checkInteger(`${name}: rows`, shape.rows);
  checkInteger(`${name}: n`, shape.n);
  return compileKernel(gpu, name, WGSL, { WG: 64, N: shape.n }, ["x", "out"], [shape.rows]);
}

// ─── Registry entry: this kernel against its reference (collected in `pairs.ts`) ───

/** Softmax of each row of `x (rows, n)`; inputs in [-10, 10] so that rows are peaked. */
export const SOFTMAX_PAIR: KernelPair<{ rows: number; n: number }, { x: Float32Array }> = {
  family: "softmax",
  describe: ({ rows, n }) => `${rows}x${n}`,
  inputs: ({ rows, n }) => ({ x: new Rng(n + 3).uniformArray(rows * n).map((v) => v * 10) }),
  reference: ({ n }, { x }) => softmax(x, n),
  conformance: [{ rows: 1, n: 1 }, { rows: 3, n: 33 }, { rows: 1, n: 4099 }, { rows: 1, n: 32000 }],
  bench: { quick: [{ rows: 1, n: 512 }], full: [{ rows: 1, n: 32000 }] },
  bytes: ({ rows, n }) => 4 * 2 * rows * n,
  flops: ({ rows, n }) => 5 * rows * n, // max, subtract, exp, sum, divide
  tolerance: TIGHT,
  variants: [{
    name: "default",
    record: async (gpu, shape, { x }, buffers) =>
      (await softmaxKernel(gpu, shape)).bind({
        x: buffers.input(x),
        out: buffers.output(x.length),
      }),
  }],
};
