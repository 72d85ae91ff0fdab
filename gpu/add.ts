/**
 * The residual connection, in place: `x[i] += delta[i]`.
 *
 * @module
 */
import type { Gpu } from "./device.ts";
import { compileElementwise, elementwiseWgsl, type Kernel } from "./kernel.ts";

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
