/**
 * Numerically stable softmax.
 *
 * @module
 */

/**
 * Numerically stable softmax over each row of `x` (row length `rowLength`, the whole array by
 * default): the row maximum is subtracted before exponentiating, so large logits never overflow.
 * `-Infinity` is a weight of 0 (a mask); a row masked entirely has no distribution and gives all
 * zeros, as the GPU kernel does, rather than NaN.
 *
 * @example
 * ```ts
 * import { softmax } from "./softmax.ts";
 * const p = softmax(new Float32Array([1000, 1000]));
 * if (p[0] !== 0.5 || p[1] !== 0.5) throw new Error("wrong");
 * const masked = softmax(new Float32Array([-Infinity, -Infinity]));
 * if (masked[0] !== 0 || masked[1] !== 0) throw new Error("wrong");
 * ```
 */
export function softmax(x: Float32Array, rowLength: number = x.length): Float32Array {
  if (!Number.isInteger(rowLength) || rowLength < 1 || x.length % rowLength !== 0) {
    throw new RangeError(
      `softmax rowLength: expected a positive divisor of length ${x.length}, got ${rowLength}`,
    );
  }
  const out = new Float32Array(x.length);
  for (let row = 0; row < x.length; row += rowLength) {
    let max = -Infinity;
    for (let i = 0; i < rowLength; i++) max = Math.max(max, x[row + i]);
    if (max === -Infinity) continue; // masked entirely: zeros
    let sum = 0;
    const exps = new Float64Array(rowLength);
    for (let i = 0; i < rowLength; i++) {
      exps[i] = Math.exp(x[row + i] - max);
      sum += exps[i];
    }
    for (let i = 0; i < rowLength; i++) out[row + i] = exps[i] / sum;
  }
  return out;
}
