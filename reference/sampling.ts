/**
 * Choosing the next token from logits: argmax, temperature, top-k and top-p (nucleus), seeded.
 *
 * @module
 */
import { Rng } from "./random.ts";
import { softmax } from "./softmax.ts";
import { gumbelFixed, gumbelKey, NOISE_FRACTION_BITS, noiseBits } from "./_gumbel.ts";

/**
 * Index of the largest value; ties go to the lowest index. NaN logits are an error.
 *
 * @example
 * ```ts
 * import { argmax } from "./sampling.ts";
 * if (argmax(new Float32Array([1, 3, 3])) !== 1) throw new Error("wrong");
 * ```
 */
export function argmax(logits: ArrayLike<number>): number {
  if (logits.length === 0) throw new RangeError("argmax: expected at least one logit, got none");
  let best = 0;
  for (let i = 0; i < logits.length; i++) {
    if (Number.isNaN(logits[i])) throw new RangeError(`argmax: logit ${i} is NaN`);
    if (logits[i] > logits[best]) best = i;
  }
  return best;
}

/**
 * Probabilities `softmax(logits / temperature)`; `temperature` must be > 0.
 *
 * @example
 * ```ts
 * import { temperatureSoftmax } from "./sampling.ts";
 * const p = temperatureSoftmax(new Float32Array([0, 0]), 0.5);
 * if (p[0] !== 0.5) throw new Error("wrong");
 * ```
 */
export function temperatureSoftmax(logits: Float32Array, temperature: number): Float32Array {
  if (!(temperature > 0) || !Number.isFinite(temperature)) {
    throw new RangeError(`temperature: expected a finite number > 0, got ${temperature}`);
  }
  return softmax(logits.map((x) => x / temperature));
}

/**
 * Token ids of the `k` most probable entries, most probable first (ties: lower id first).
 *
 * @example
 * ```ts
 * import { topK } from "./sampling.ts";
 * if (topK(new Float32Array([0.1, 0.6, 0.3]), 2).join() !== "1,2") throw new Error("wrong");
 * ```
 */
export function topK(probs: Float32Array, k: number): number[] {
  if (!Number.isInteger(k) || k < 1) {
    throw new RangeError(`top-k: expected an integer >= 1, got ${k}`);
  }
  return rankByProbability(probs).slice(0, k);
}

/**
 * The nucleus: ids, most probable first (ties: lower id first), up to and including the first
 * whose cumulative probability exceeds `p` (llama2.c's `cumulative > topp`: at an exact tie one
 * more id is kept). `p` must be in (0, 1]; 1 keeps every id.
 *
 * @example
 * ```ts
 * import { topP } from "./sampling.ts";
 * if (topP(new Float32Array([0.1, 0.6, 0.3]), 0.7).join() !== "1,2") throw new Error("wrong");
 * // 0.5 + 0.25 does not exceed 0.75: the third id is kept too
 * if (topP(new Float32Array([0.25, 0.5, 0.25]), 0.75).join() !== "1,0,2") throw new Error("wrong");
 * ```
 */
export function topP(probs: ArrayLike<number>, p: number): number[] {
  if (!(p > 0 && p <= 1)) throw new RangeError(`top-p: expected a value in (0, 1], got ${p}`);
  return nucleus(rankByProbability(probs), probs, p);
}

function nucleus(ranked: readonly number[], probs: ArrayLike<number>, p: number): number[] {
  if (p === 1) return [...ranked];
  const kept: number[] = [];
  let cumulative = 0;
  for (const id of ranked) {
    kept.push(id);
    cumulative += probs[id];
    if (cumulative > p) break;
  }
  return kept;
}

/** How to choose a token; temperature 0 (the default) is greedy argmax. */
export interface SamplingOptions {
  /** Logit divisor: 0 for greedy, higher for more random. */
  temperature?: number;
  /** Keep only the `topK` most probable tokens. */
  topK?: number;
  /** Keep the nucleus: the most probable tokens until their mass exceeds `topP`, in (0, 1]. */
  topP?: number;
}

/**
 * Draws a token id from `logits`: greedy at temperature 0, otherwise in llama.cpp's default
 * order (its sampler chain: top-k, top-p, then temperature): top-k keeps the `topK` largest
 * logits; top-p keeps the nucleus of `softmax(logits)` over that set (temperature 1, the set's
 * probabilities renormalized; see {@linkcode topP} for its stop rule); only then is the token
 * drawn, using `rng`, from `softmax(logits / temperature)` over what was kept. (Hugging Face
 * divides by the temperature first, so there top-p's nucleus depends on the temperature; here,
 * as in llama.cpp, it does not.)
 *
 * @example
 * ```ts
 * import { sample } from "./sampling.ts";
 * import { Rng } from "./random.ts";
 * const logits = new Float32Array([0, 5, 1]);
 * if (sample(logits, { temperature: 0 }, new Rng(1)) !== 1) throw new Error("wrong");
 * // softmax(logits) puts 0.976 on id 1: top-p 0.9 keeps it alone, whatever the temperature
 * if (sample(logits, { temperature: 100, topP: 0.9 }, new Rng(1)) !== 1) throw new Error("wrong");
 * ```
 */
export function sample(logits: Float32Array, options: SamplingOptions, rng: Rng): number {
  const temperature = options.temperature ?? 0;
  if (!(temperature >= 0) || !Number.isFinite(temperature)) {
    throw new RangeError(`temperature: expected a finite number >= 0, got ${temperature}`);
  }
  if (options.topP !== undefined && !(options.topP > 0 && options.topP <= 1)) {
    throw new RangeError(`top-p: expected a value in (0, 1], got ${options.topP}`);
  }
  // Non-finite logits follow argmax's contract (and the Gumbel kernel's): NaN is an error, the
  // first +Infinity wins, a row of -Infinity gives id 0.
  const best = argmax(logits);
  if (temperature === 0 || !Number.isFinite(logits[best])) return best;
  // Ranked by logit (the order of the probabilities at any temperature), ties lower id first.
  let candidates = rankByProbability(logits);
  if (options.topK !== undefined) candidates = topK(logits, options.topK);
  if (options.topP !== undefined) {
    const unit = new Float64Array(logits.length); // softmax(logits) over the candidates
    let total = 0;
    for (const id of candidates) total += unit[id] = Math.exp(logits[id] - logits[best]);
    for (const id of candidates) unit[id] /= total;
    candidates = nucleus(candidates, unit, options.topP);
  }
  const weights = new Float64Array(logits.length); // softmax(logits / T), unnormalized
  let mass = 0;
  for (const id of candidates) {
    mass += weights[id] = Math.exp((logits[id] - logits[best]) / temperature);
  }
  let r = rng.next() * mass;
  for (const id of candidates) {
    r -= weights[id];
    if (r < 0) return id;
  }
  return candidates[candidates.length - 1]; // rounding left r a hair above zero
}

/**
 * A seeded sampler: the same seed and logits give the same tokens on every run.
 *
 * @example
 * ```ts
 * import { Sampler } from "./sampling.ts";
 * const logits = new Float32Array([1, 1, 1, 1]);
 * const a = new Sampler({ temperature: 1, seed: 7 });
 * const b = new Sampler({ temperature: 1, seed: 7 });
 * if (a.sample(logits) !== b.sample(logits)) throw new Error("not repeatable");
 * ```
 */
export class Sampler {
  /** The options every draw uses. */
  readonly options: Readonly<SamplingOptions>;
  #rng: Rng;

  /** Creates a sampler; `seed` defaults to 0. */
  constructor(options: SamplingOptions & { seed?: number } = {}) {
    const { seed = 0, ...rest } = options;
    sample(new Float32Array([0]), rest, new Rng(0)); // validates options up front
    this.options = rest;
    this.#rng = new Rng(seed);
  }

  /** Draws the next token id. */
  sample(logits: Float32Array): number {
    return sample(logits, this.options, this.#rng);
  }
}

function rankByProbability(probs: ArrayLike<number>): number[] {
  const ids = Array.from({ length: probs.length }, (_, i) => i);
  return ids.sort((a, b) => probs[b] - probs[a] || a - b);
}

/**
 * Temperatures a Gumbel draw accepts besides 0: far beyond any useful range, and within it
 * `1 / T` and the scaled logits stay normal f32 numbers on every adapter.
 *
 * @example
 * ```ts
 * import { GUMBEL_TEMPERATURE_RANGE } from "./sampling.ts";
 * const [low, high] = GUMBEL_TEMPERATURE_RANGE;
 * if (!(low <= 0.8 && 0.8 <= high)) throw new Error("wrong");
 * ```
 */
export const GUMBEL_TEMPERATURE_RANGE: readonly [number, number] = [1e-30, 1e30];

/**
 * Standard Gumbel noise for token `id` at position `pos` under `seed`: a pure function of the
 * three, computed in integer arithmetic only, so the GPU kernel draws bit-identical numbers
 * without sharing any generator state. 32 hashed bits give `u = (2·(bits >> 9) + 1) / 2^24`,
 * strictly inside (0, 1); the noise is `−ln(−ln u)` to within 2^-15, a multiple of 2^-16 in
 * [−2.812, 16.636] (never infinite or NaN).
 *
 * @example
 * ```ts
 * import { gumbelNoise } from "./sampling.ts";
 * // seed 0, position 0, token 0 hash to 0 bits: u = 2^-24, −ln u = 24 ln 2, noise −ln(24 ln 2)
 * if (Math.abs(gumbelNoise(0, 0, 0) - -2.81154) > 2 ** -15) throw new Error("wrong");
 * ```
 */
export function gumbelNoise(seed: number, pos: number, id: number): number {
  return gumbelFixed(noiseBits(seed, pos, id)) / 2 ** NOISE_FRACTION_BITS;
}

/**
 * Temperature sampling by the Gumbel-max trick: `argmax(logits / temperature + g)` with
 * {@linkcode gumbelNoise} draws from `softmax(logits / temperature)`, and needs no sort or
 * prefix sum, so the GPU does it in the same pass as greedy argmax and chooses the same token.
 * The sum is taken exactly as the kernel takes it: `(logit − max) / T` in two f32 steps, clamped
 * below at −30000 (a probability of e^-30000), to 2^-16, plus the noise, compared as integers
 * (ties to the lowest id). A `-Infinity` logit loses to every finite one, `+Infinity` beats
 * them; all `-Infinity` gives id 0, as {@linkcode argmax} does. NaN logits are an error.
 * Temperature 0 is plain argmax; otherwise it must lie in {@linkcode GUMBEL_TEMPERATURE_RANGE}.
 *
 * @example
 * ```ts
 * import { gumbelSample } from "./sampling.ts";
 * const logits = new Float32Array([0, 3, 1]);
 * if (gumbelSample(logits, 0, 1, 0) !== 1) throw new Error("wrong");
 * // a logit 100 above the others at T = 1 beats noise that never exceeds 16.7 − (−2.9)
 * if (gumbelSample(new Float32Array([0, 100, 0]), 1, 7, 3) !== 1) throw new Error("wrong");
 * ```
 */
export function gumbelSample(
  logits: Float32Array,
  temperature: number,
  seed: number,
  pos: number,
): number {
  const [low, high] = GUMBEL_TEMPERATURE_RANGE;
  if (!(temperature === 0 || (temperature >= low && temperature <= high))) {
    throw new RangeError(
      `temperature: expected 0 or a number in [${low}, ${high}], got ${temperature}`,
    );
  }
  if (temperature === 0) return argmax(logits);
  if (logits.length === 0) throw new RangeError("argmax: expected at least one logit, got none");
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) {
    if (Number.isNaN(logits[i])) throw new RangeError(`argmax: logit ${i} is NaN`);
    if (Number.isFinite(logits[i]) && logits[i] > max) max = logits[i];
  }
  const inverseTemperature = Math.fround(1 / temperature);
  let best = 0;
  let bestKey = -Infinity;
  for (let i = 0; i < logits.length; i++) {
    const logit = logits[i];
    const key = Number.isFinite(logit)
      ? gumbelKey(logit, max, inverseTemperature, gumbelFixed(noiseBits(seed, pos, i)))
      : logit; // ±Infinity: above or below every finite key
    if (key > bestKey || (i === 0 && key === -Infinity)) {
      best = i;
      bestKey = key;
    }
  }
  return best;
}
