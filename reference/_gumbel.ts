// Gumbel noise in integer arithmetic only, so that the WGSL twin in gpu/_gumbel.ts computes the
// very same bits: u32 multiplies, shifts and compares are exact on every adapter, where WGSL's
// `log` is approximate and a compiler may fuse a multiply and an add into an FMA.

/** Fraction bits of the fixed-point noise: `gumbelNoise = gumbelFixed(bits) / 2^16`. */
export const NOISE_FRACTION_BITS = 16;

/** Fraction bits of {@linkcode log2Fixed}'s result. */
export const LOG2_FRACTION_BITS = 26;

/** A 32-bit integer hash (lowbias32): the noise stream. */
export function mix32(x: number): number {
  x >>>= 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d) >>> 0;
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b) >>> 0;
  x ^= x >>> 16;
  return x >>> 0;
}

/** The 32 random bits of token `id` at position `pos` under `seed`. */
export function noiseBits(seed: number, pos: number, id: number): number {
  return mix32(id ^ mix32(pos ^ mix32(seed)));
}

/** High 32 bits of the 64-bit product of two u32s, from 16-bit halves (WGSL has no u64). */
export function mulHigh(a: number, b: number): number {
  const al = a & 0xffff, ah = a >>> 16, bl = b & 0xffff, bh = b >>> 16;
  const ll = al * bl, lh = al * bh, hl = ah * bl, hh = ah * bh; // each < 2^32
  const mid = (ll >>> 16) + (lh & 0xffff) + (hl & 0xffff);
  return (hh + (lh >>> 16) + (hl >>> 16) + (mid >>> 16)) >>> 0;
}

/**
 * `log2(x)` for a u32 `x >= 1`, in fixed point with 26 fraction bits (truncated): the integer
 * part from the leading zeros, each fraction bit from squaring the mantissa.
 */
export function log2Fixed(x: number): number {
  const lead = Math.clz32(x);
  let y = (x << lead) >>> 0; // the mantissa in Q1.31: [2^31, 2^32)
  let fraction = 0;
  for (let bit = LOG2_FRACTION_BITS - 1; bit >= 0; bit--) {
    const square = mulHigh(y, y); // (y / 2^31)² = square / 2^30
    if (square >= 0x80000000) {
      fraction |= 1 << bit;
      y = square;
    } else {
      y = (square << 1) >>> 0;
    }
  }
  return (((31 - lead) << LOG2_FRACTION_BITS) | fraction) >>> 0;
}

const LN2_Q32 = 2977044472; // round(ln 2 · 2^32)
const MINUS_LN_LN2_Q16 = 24020; // round(−ln(ln 2) · 2^16)

/**
 * Standard Gumbel noise `−ln(−ln u)` from 32 random bits, times 2^16 to within 2, as an integer
 * in [−184256, 1090226] (the ends of u). `u = (2·(bits >> 9) + 1) / 2^24`: 23 bits, strictly inside (0, 1), so
 * `−ln u > 0` and the noise is always finite.
 */
export function gumbelFixed(bits: number): number {
  const q = (((bits >>> 9) << 1) | 1) >>> 0; // u · 2^24, odd, in [1, 2^24 − 1]
  const c = 16777216 - q; // (1 − u) · 2^24, odd, >= 1
  let minusLog2A: number; // −log2(a) · 2^26 with a = −ln u, up to a constant below
  let offset = 0;
  if (c < 32768) {
    // u > 1 − 2^-9: a = −ln(1 − t) for t = c / 2^24 by its series t + t²/2 + t³/3 (relative
    // error < t³/4), as s = a · 2^40. A difference of two logs would lose a's precision here.
    const c2 = c * c;
    const s = c * 65536 + (c2 >>> 9) + Math.floor(mulHigh(c2, c) / 3);
    minusLog2A = (40 << LOG2_FRACTION_BITS >>> 0) - log2Fixed(s);
  } else {
    // a = A · ln 2 / 2^26 with A = −log2(u) · 2^26, so −log2(a) = 26 − log2(A) − log2(ln 2),
    // and −ln(a) = ln 2 · (26 − log2 A) − ln(ln 2).
    const a = (24 << LOG2_FRACTION_BITS) - log2Fixed(q);
    minusLog2A = (26 << LOG2_FRACTION_BITS) - log2Fixed(a);
    offset = MINUS_LN_LN2_Q16;
  }
  // −ln a = ln 2 · (−log2 a): from 26 to 16 fraction bits, truncated toward zero.
  const scaled = mulHigh(Math.abs(minusLog2A), LN2_Q32) >>> (LOG2_FRACTION_BITS -
    NOISE_FRACTION_BITS);
  return (minusLog2A < 0 ? -scaled : scaled) + offset;
}

/** Perturbed values below −30000 (in units of `logit / temperature`) are clamped there. */
export const PERTURBED_FLOOR = 30000;

/**
 * The Gumbel-max key of a finite logit: `(logit − max) / T` in the f32 steps the GPU takes
 * (`fround(fround(logit − max) · invT)`), clamped below at −30000, to 16 fraction bits
 * (truncated), plus the fixed-point noise. An i32.
 */
export function gumbelKey(
  logit: number,
  max: number,
  inverseTemperature: number,
  noise: number,
): number {
  const difference = Math.fround(logit - max);
  const x = Math.fround(difference * inverseTemperature);
  const floor = -PERTURBED_FLOOR * 65536;
  const fixed = Number.isFinite(x) && x >= -PERTURBED_FLOOR ? Math.trunc(x * 65536) : floor;
  return fixed + noise;
}
