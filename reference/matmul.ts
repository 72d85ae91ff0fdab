/**
 * Matrix–vector and matrix–matrix products, the bulk of a LLaMA forward pass.
 *
 * @module
 */
import { checkInteger, checkLength } from "./checks.ts";

/**
 * `out = W · x`, with `w: (outDim, inDim)` row-major and `x: (inDim)`; returns `(outDim)`.
 * Sums in double precision so the reference is tighter than any float32 kernel it checks.
 *
 * @example
 * ```ts
 * import { matvec } from "./matmul.ts";
 * const w = new Float32Array([1, 2, 3, 4, 5, 6]); // (2, 3)
 * const y = matvec(w, new Float32Array([1, 0, -1]), 2, 3);
 * if (y[0] !== -2 || y[1] !== -2) throw new Error("wrong");
 * ```
 */
export function matvec(
  w: Float32Array,
  x: Float32Array,
  outDim: number,
  inDim: number,
): Float32Array {
  checkInteger("outDim", outDim);
  checkInteger("inDim", inDim);
  checkLength("matvec w (outDim*inDim)", w, outDim * inDim);
  checkLength("matvec x (inDim)", x, inDim);
  const out = new Float32Array(outDim);
  for (let r = 0; r < outDim; r++) {
    let sum = 0;
    const row = r * inDim;
    for (let c = 0; c < inDim; c++) sum += w[row + c] * x[c];
    out[r] = sum;
  }
  return out;
}

/**
 * Row-wise `out[t] = W · x[t]` for `rows` input vectors at once: `w: (outDim, inDim)`,
 * `x: (rows, inDim)`, result `(rows, outDim)`. This is `X · Wᵀ`, the layout of every
 * projection in a prefill or a batched step. Each row of W is read once and used for every
 * input row while it is in cache, so `rows` inputs cost one pass over W, not `rows` passes;
 * each output sums in the same order as {@linkcode matvec}.
 *
 * @example
 * ```ts
 * import { matmul } from "./matmul.ts";
 * const w = new Float32Array([1, 0, 0, 1]); // identity (2, 2)
 * const y = matmul(w, new Float32Array([1, 2, 3, 4]), 2, 2, 2);
 * if (y.join() !== "1,2,3,4") throw new Error("wrong");
 * ```
 */
export function matmul(
  w: Float32Array,
  x: Float32Array,
  rows: number,
  outDim: number,
  inDim: number,
): Float32Array {
  checkInteger("rows", rows);
  checkInteger("outDim", outDim);
  checkInteger("inDim", inDim);
  checkLength("matmul w (outDim*inDim)", w, outDim * inDim);
  checkLength("matmul x (rows*inDim)", x, rows * inDim);
  const out = new Float32Array(rows * outDim);
  for (let r = 0; r < outDim; r++) {
    const row = r * inDim;
    for (let t = 0; t < rows; t++) {
      const input = t * inDim;
      let sum = 0;
      for (let c = 0; c < inDim; c++) sum += w[row + c] * x[input + c];
      out[t * outDim + r] = sum;
    }
  }
  return out;
}
