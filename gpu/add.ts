/**
 * The residual connection, in place: `x[i] += delta[i]`.
 *
 * @module
 */
import type { Gpu } from "./device.ts";
import { compileElementwise, elementwiseWgsl, type Kernel } from "./kernel.ts";
import { type KernelPair, TIGHT } from "./pair.ts";
import { add } from "../reference/add.ts";
import { Rng } from "../reference/random.ts";

const WGSL = elementwiseWgsl(
  `@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read> delta: array<f32>;`,
  "x[i] += delta[i];",
);

/**
 * Compiles the residual add for `n` elements. Bindings: `x (n)` (read and written), `delta (n)`.
 *
 * @example
 * ```ts ignore
 * const residual = await addKernel(gpu, 288);
 * await gpu.submit(residual.bind({ x, delta: attentionOut }));
 * ```
 */
export function addKernel(gpu: Gpu, n: number): Promise<Kernel<"x" | "delta">> {
  return compileElementwise(gpu, `add ${n}`, WGSL, n, ["x", "delta"]);
}

// ─── Registry entry: this kernel against its reference (collected in `pairs.ts`) ───

/** The residual add, `x += delta`, in place. */
export const ADD_PAIR: KernelPair<{ n: number }, { x: Float32Array; delta: Float32Array }> = {
  family: "add",
  describe: ({ n }) => `${n}`,
  inputs({ n }) {
    const rng = new Rng(n + 11);
    return { x: rng.uniformArray(n), delta: rng.uniformArray(n) };
  },
  reference: (_, { x, delta }) => add(x, delta),
  conformance: [{ n: 1 }, { n: 257 }, { n: 288 }, { n: 2048 }],
  bench: { quick: [{ n: 288 }], full: [{ n: 2048 }] },
  bytes: ({ n }) => 4 * 3 * n,
  flops: ({ n }) => n,
  tolerance: TIGHT,
  variants: [{
    name: "default",
    record: async (gpu, { n }, { x, delta }, buffers) =>
      (await addKernel(gpu, n)).bind({ x: buffers.output(n, x), delta: buffers.input(delta) }),
  }],
};
