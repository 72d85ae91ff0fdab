/**
 * Choosing the next token from logits: argmax, temperature, top-k and top-p (nucleus), seeded.
 *
 * @module
 */
import { Rng } from "./random.ts";
import { softmax } from "./softmax.ts";

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
 * The nucleus: the smallest set of ids, most probable first, whose probabilities sum to at
 * least `p` (ties: lower id first). `p` must be in (0, 1].
 *
 * @example
 * ```ts
 * import { topP } from "./sampling.ts";
 * if (topP(new Float32Array([0.1, 0.6, 0.3]), 0.7).join() !== "1,2") throw new Error("wrong");
 * ```
 */
export function topP(probs: Float32Array, p: number): number[] {
  if (!(p > 0 && p <= 1)) throw new RangeError(`top-p: expected a value in (0, 1], got ${p}`);
  const ranked = rankByProbability(probs);
  const kept: number[] = [];
  let mass = 0;
  for (const id of ranked) {
    kept.push(id);
    mass += probs[id];
    // 1e-6 slack: float32 probabilities rarely sum to exactly 1, and p = 1 must keep them all.
    if (mass >= p - 1e-6 && p < 1) break;
  }
  return kept;
}

/** How to choose a token; temperature 0 (the default) is greedy argmax. */
export interface SamplingOptions {
  /** Logit divisor: 0 for greedy, higher for more random. */
  temperature?: number;
  /** Keep only the `topK` most probable tokens. */
  topK?: number;
  /** Keep only the smallest set of tokens whose mass reaches `topP`, in (0, 1]. */
  topP?: number;
}

/**
 * Draws a token id from `logits`: greedy at temperature 0, otherwise from
 * `softmax(logits / temperature)` restricted by top-k then top-p and renormalized, using `rng`.
 *
 * @example
 * ```ts
 * import { sample } from "./sampling.ts";
 * import { Rng } from "./random.ts";
 * const logits = new Float32Array([0, 5, 1]);
 * if (sample(logits, { temperature: 0 }, new Rng(1)) !== 1) throw new Error("wrong");
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
  if (temperature === 0) return argmax(logits);
  const probs = temperatureSoftmax(logits, temperature);
  let candidates = options.topK !== undefined
    ? topK(probs, options.topK)
    : rankByProbability(probs);
  if (options.topP !== undefined) {
    const nucleus = new Set(topP(probs, options.topP));
    candidates = candidates.filter((id) => nucleus.has(id));
  }
  let mass = 0;
  for (const id of candidates) mass += probs[id];
  let r = rng.next() * mass;
  for (const id of candidates) {
    r -= probs[id];
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

function rankByProbability(probs: Float32Array): number[] {
  const ids = Array.from(probs.keys());
  return ids.sort((a, b) => probs[b] - probs[a] || a - b);
}

/** A 32-bit integer hash (lowbias32): the noise stream of {@linkcode gumbelSample}. */
function mix32(x: number): number {
  x >>>= 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d) >>> 0;
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b) >>> 0;
  x ^= x >>> 16;
  return x >>> 0;
}

/**
 * Standard Gumbel noise for token `id` at position `pos` under `seed`: a pure function of the
 * three, so the GPU kernel draws the very same numbers without sharing any generator state.
 *
 * @example
 * ```ts
 * import { gumbelNoise } from "./sampling.ts";
 * if (gumbelNoise(1, 2, 3) !== gumbelNoise(1, 2, 3)) throw new Error("not repeatable");
 * ```
 */
export function gumbelNoise(seed: number, pos: number, id: number): number {
  const bits = mix32(id ^ mix32(pos ^ mix32(seed)));
  const u = ((bits >>> 8) + 0.5) / 16777216; // 24 bits, strictly inside (0, 1)
  return -Math.log(-Math.log(u));
}

/**
 * Temperature sampling by the Gumbel-max trick: `argmax(logits / temperature + g)` with
 * {@linkcode gumbelNoise} draws exactly from `softmax(logits / temperature)`, and needs no
 * sort or prefix sum, so the GPU can do it in the same pass as greedy argmax. Temperature 0 is
 * plain argmax.
 *
 * @example
 * ```ts
 * import { argmax, gumbelSample } from "./sampling.ts";
 * const logits = new Float32Array([0, 3, 1]);
 * if (gumbelSample(logits, 0, 1, 0) !== argmax(logits)) throw new Error("wrong");
 * ```
 */
export function gumbelSample(
  logits: Float32Array,
  temperature: number,
  seed: number,
  pos: number,
): number {
  if (!(temperature >= 0) || !Number.isFinite(temperature)) {
    throw new RangeError(`temperature: expected a finite number >= 0, got ${temperature}`);
  }
  if (temperature === 0) return argmax(logits);
  const perturbed = new Float64Array(logits.length);
  for (let i = 0; i < logits.length; i++) {
    perturbed[i] = logits[i] / temperature + gumbelNoise(seed, pos, i);
  }
  return argmax(perturbed);
}
