/**
 * The SwiGLU gate, fused and in place: `gate[i] = silu(gate[i]) · up[i]`, between the
 * `w1`/`w3` and `w2` projections of the feed-forward block.
 *
 * @module
 */
import type { Gpu } from "./device.ts";
import { compileElementwise, elementwiseWgsl, type Kernel } from "./kernel.ts";
import { type KernelPair, TIGHT } from "./pair.ts";
import { Rng } from "../reference/random.ts";
import { siluMul } from "../reference/swiglu.ts";

const WGSL = elementwiseWgsl(
  `@group(0) @binding(0) var<storage, read_write> gate: array<f32>;
@group(0) @binding(1) var<storage, read> up: array<f32>;`,
  "let g = gate[i];\n  gate[i] = g / (1.0 + exp(-g)) * up[i];",
);

/**
 * Compiles the SwiGLU gate for `n` elements. Bindings: `gate (n)` (read and written), `up (n)`.
 *
 * @example
 * ```ts ignore
 * const gate = await siluMulKernel(gpu, 768);
 * await gpu.submit(gate.bind({ gate: hidden1, up: hidden3 }));
 * ```
 */
export function siluMulKernel(gpu: Gpu, n: number): Promise<Kernel<"gate" | "up">> {
  return compileElementwise(gpu, `siluMul ${n}`, WGSL, n, ["gate", "up"]);
}

// ─── Registry entry: this kernel against its reference (collected in `pairs.ts`) ───

/** SwiGLU's gating, `gate = silu(gate) ⊙ up`, in place; gate in [-4, 4]. */
export const SILU_MUL_PAIR: KernelPair<{ n: number }, { gate: Float32Array; up: Float32Array }> = {
  family: "siluMul",
  describe: ({ n }) => `${n}`,
  inputs({ n }) {
    const rng = new Rng(n + 5);
    return { gate: rng.uniformArray(n).map((v) => v * 4), up: rng.uniformArray(n) };
  },
  reference: (_, { gate, up }) => siluMul(gate, up),
  conformance: [{ n: 1 }, { n: 7 }, { n: 4099 }, { n: 768 }, { n: 5632 }],
  bench: { quick: [{ n: 768 }], full: [{ n: 5632 }] },
  bytes: ({ n }) => 4 * 3 * n,
  flops: ({ n }) => 5 * n, // negate, exp, add, divide, multiply
  tolerance: TIGHT,
  variants: [{
    name: "default",
    record: async (gpu, { n }, { gate, up }, buffers) =>
      (await siluMulKernel(gpu, n)).bind({ gate: buffers.output(n, gate), up: buffers.input(up) }),
  }],
};
