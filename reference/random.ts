/**
 * A small seeded pseudo-random generator for reproducible test data, benchmarks and sampling.
 *
 * @module
 */

/**
 * Seeded PRNG (SplitMix32 state update, Mulberry32-style output): the same seed gives the same
 * stream on every platform, which makes tests, benchmarks and sampled text repeatable.
 *
 * @example
 * ```ts
 * import { Rng } from "./random.ts";
 * const a = new Rng(42).uniformArray(4);
 * const b = new Rng(42).uniformArray(4);
 * if (a.join() !== b.join()) throw new Error("not repeatable");
 * ```
 */
export class Rng {
  #state: number;
  #spareNormal: number | undefined;

  /** Creates a generator from an integer seed (any 32-bit value). */
  constructor(seed: number) {
    if (!Number.isFinite(seed)) throw new RangeError(`seed: expected a finite number, got ${seed}`);
    this.#state = seed >>> 0;
  }

  /** Next 32-bit unsigned integer. */
  nextUint32(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let z = this.#state;
    z = Math.imul(z ^ (z >>> 15), z | 1);
    z ^= z + Math.imul(z ^ (z >>> 7), z | 61);
    return (z ^ (z >>> 14)) >>> 0;
  }

  /** Uniform float in [0, 1). */
  next(): number {
    return this.nextUint32() / 4294967296;
  }

  /** Uniform float in [lo, hi); [-1, 1) by default. */
  uniform(lo = -1, hi = 1): number {
    return lo + (hi - lo) * this.next();
  }

  /** Standard normal sample (Box–Muller), times `std` plus `mean`. */
  normal(mean = 0, std = 1): number {
    if (this.#spareNormal !== undefined) {
      const z = this.#spareNormal;
      this.#spareNormal = undefined;
      return mean + std * z;
    }
    const u1 = 1 - this.next(); // in (0, 1]: log stays finite
    const u2 = this.next();
    const r = Math.sqrt(-2 * Math.log(u1));
    this.#spareNormal = r * Math.sin(2 * Math.PI * u2);
    return mean + std * r * Math.cos(2 * Math.PI * u2);
  }

  /** A new array of `n` uniform values in [lo, hi); [-1, 1) by default. */
  uniformArray(n: number, lo = -1, hi = 1): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = this.uniform(lo, hi);
    return out;
  }

  /** A new array of `n` normal values with the given mean and standard deviation. */
  normalArray(n: number, mean = 0, std = 1): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = this.normal(mean, std);
    return out;
  }
}
