/**
 * The residual connection: elementwise `x + delta`.
 *
 * @module
 */
import { checkLength } from "./checks.ts";

/**
 * `x + delta`, elementwise; returns a new array (the `gpu/add.ts` kernel adds in place).
 *
 * @example
 * ```ts
 * import { add } from "./add.ts";
 * if (add(new Float32Array([1, 2]), new Float32Array([3, -2])).join() !== "4,0") throw new Error("wrong");
 * ```
 */
export function add(x: Float32Array, delta: Float32Array): Float32Array {
  checkLength("add delta (length of x)", delta, x.length);
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = x[i] + delta[i];
  return out;
}
