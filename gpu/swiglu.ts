/**
 * The SwiGLU gate, fused and in place: `gate[i] = silu(gate[i]) · up[i]`, between the
 * `w1`/`w3` and `w2` projections of the feed-forward block.
 *
 * @module
 */
import type { Gpu } from "./device.ts";
import { compileElementwise, elementwiseWgsl, type Kernel } from "./kernel.ts";

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
