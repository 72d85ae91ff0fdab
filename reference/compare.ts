/**
 * Error metrics for comparing a result against its reference.
 *
 * @module
 */
import { checkLength } from "./checks.ts";

/** How far `actual` is from `expected`. */
export interface ErrorStats {
  /** Normalized mean squared error `Σ(a−b)² / Σb²` (0 when both are all zero). */
  nmse: number;
  /** Largest `|a−b|`. */
  maxAbsError: number;
  /** Index of the first NaN or ±Infinity in `actual`, or -1 if none. */
  firstNonFinite: number;
}

/**
 * Compares `actual` against `expected` element by element.
 *
 * @example
 * ```ts
 * import { compare } from "./compare.ts";
 * const s = compare(new Float32Array([1, 2]), new Float32Array([1, 2.5]));
 * if (s.maxAbsError !== 0.5 || s.firstNonFinite !== -1) throw new Error("wrong");
 * ```
 */
export function compare(actual: ArrayLike<number>, expected: ArrayLike<number>): ErrorStats {
  checkLength("compare actual (expected length)", actual, expected.length);
  let squaredError = 0;
  let squaredNorm = 0;
  let maxAbsError = 0;
  let firstNonFinite = -1;
  for (let i = 0; i < expected.length; i++) {
    if (!Number.isFinite(actual[i]) && firstNonFinite < 0) firstNonFinite = i;
    const diff = actual[i] - expected[i];
    squaredError += diff * diff;
    squaredNorm += expected[i] * expected[i];
    maxAbsError = Math.max(maxAbsError, Math.abs(diff));
  }
  const nmse = squaredNorm === 0 ? (squaredError === 0 ? 0 : Infinity) : squaredError / squaredNorm;
  return { nmse: firstNonFinite >= 0 ? NaN : nmse, maxAbsError, firstNonFinite };
}
