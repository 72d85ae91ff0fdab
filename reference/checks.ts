// Input checks shared by the reference functions: each names what is wrong, expected vs got.

/** Throws unless `n` is an integer ≥ `min` (1 by default). */
export function checkInteger(what: string, n: number, min = 1): void {
  if (!Number.isInteger(n) || n < min) {
    throw new RangeError(`${what}: expected an integer >= ${min}, got ${n}`);
  }
}

/** Throws unless `array` holds exactly `expected` elements. */
export function checkLength(what: string, array: ArrayLike<number>, expected: number): void {
  if (array.length !== expected) {
    throw new RangeError(`${what}: expected length ${expected}, got ${array.length}`);
  }
}

/** Throws unless `array` holds at least `minimum` elements. */
export function checkMinLength(what: string, array: ArrayLike<number>, minimum: number): void {
  if (array.length < minimum) {
    throw new RangeError(`${what}: expected length >= ${minimum}, got ${array.length}`);
  }
}

/** Throws unless the head counts are positive and `nHeads` is a multiple of `nKvHeads`. */
export function checkHeads(nHeads: number, nKvHeads: number, headDim: number): void {
  checkInteger("nHeads", nHeads);
  checkInteger("nKvHeads", nKvHeads);
  checkInteger("headDim", headDim);
  if (nHeads % nKvHeads !== 0) {
    throw new RangeError(
      `nHeads (${nHeads}) must be divisible by nKvHeads (${nKvHeads}): ` +
        `each key/value head serves a whole group of query heads`,
    );
  }
}
