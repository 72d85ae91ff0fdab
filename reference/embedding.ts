/**
 * Token embedding lookup.
 *
 * @module
 */
import { checkInteger } from "./checks.ts";

/**
 * Rows of `table: (vocabSize, dim)` for each token id, as `(tokens.length, dim)`.
 *
 * @example
 * ```ts
 * import { embedding } from "./embedding.ts";
 * const table = new Float32Array([0, 0, 1, 1, 2, 2]); // vocab 3, dim 2
 * if (embedding(table, [2, 1], 2).join() !== "2,2,1,1") throw new Error("wrong");
 * ```
 */
export function embedding(
  table: Float32Array,
  tokens: ArrayLike<number>,
  dim: number,
): Float32Array {
  checkInteger("embedding dim", dim);
  if (table.length % dim !== 0 || table.length === 0) {
    throw new RangeError(
      `embedding table: expected a multiple of dim ${dim}, got length ${table.length}`,
    );
  }
  const vocabSize = table.length / dim;
  const out = new Float32Array(tokens.length * dim);
  for (let t = 0; t < tokens.length; t++) {
    const token = tokens[t];
    if (!Number.isInteger(token) || token < 0 || token >= vocabSize) {
      throw new RangeError(
        `embedding token ${t}: expected an id in [0, ${vocabSize}), got ${token}`,
      );
    }
    out.set(table.subarray(token * dim, (token + 1) * dim), t * dim);
  }
  return out;
}
