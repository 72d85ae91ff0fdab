/**
 * Sliding-window attention and its ring-buffer KV cache, as in Mistral: each token attends to
 * itself and the `window − 1` tokens before it, so the cache never needs more than `window`
 * positions, written round-robin.
 *
 * @module
 */
import { checkHeads, checkInteger, checkLength } from "./_checks.ts";
import { type AttentionShape, decodeAttention } from "./attention.ts";
import { kvCacheBytesPerToken } from "./kv_cache.ts";
import { softmax } from "./softmax.ts";

/** Dimensions of a {@linkcode SlidingKvCache}. */
export interface SlidingKvCacheShape {
  /** Transformer layers, each with its own ring. */
  nLayers: number;
  /** Key/value heads per layer. */
  nKvHeads: number;
  /** Features per head. */
  headDim: number;
  /** Positions a token sees, itself included; the ring holds this many. */
  window: number;
}

/**
 * The first position a token at `pos` sees under a sliding window: `max(0, pos − window + 1)`.
 *
 * @example
 * ```ts
 * import { windowStart } from "./sliding_kv_cache.ts";
 * if (windowStart(10, 4) !== 7 || windowStart(2, 4) !== 0) throw new Error("wrong");
 * ```
 */
export function windowStart(pos: number, window: number): number {
  return Math.max(0, pos - window + 1);
}

/**
 * Per-layer key and value rings, each `(window, nKvHeads·headDim)` row-major float32: position
 * `pos` lives in row `pos % window`, overwriting the position `window` before it, which no later
 * token sees.
 *
 * @example
 * ```ts
 * import { SlidingKvCache } from "./sliding_kv_cache.ts";
 * const cache = new SlidingKvCache({ nLayers: 1, nKvHeads: 1, headDim: 1, window: 2 });
 * cache.write(0, 5, new Float32Array([9]), new Float32Array([8]));
 * if (cache.keys[0][1] !== 9 || cache.bytes !== 16) throw new Error("wrong");
 * ```
 */
export class SlidingKvCache {
  /** The cache's dimensions. */
  readonly shape: Readonly<SlidingKvCacheShape>;
  /** Features of one position's keys (or values): `nKvHeads·headDim`. */
  readonly kvDim: number;
  /** Key rings per layer, `(window, kvDim)`. */
  readonly keys: Float32Array[];
  /** Value rings per layer, `(window, kvDim)`. */
  readonly values: Float32Array[];

  /** Allocates zeroed rings. */
  constructor(shape: SlidingKvCacheShape) {
    checkInteger("nLayers", shape.nLayers);
    checkHeads(shape.nKvHeads, shape.nKvHeads, shape.headDim);
    checkInteger("window", shape.window);
    this.shape = { ...shape };
    this.kvDim = shape.nKvHeads * shape.headDim;
    const size = shape.window * this.kvDim;
    this.keys = Array.from({ length: shape.nLayers }, () => new Float32Array(size));
    this.values = Array.from({ length: shape.nLayers }, () => new Float32Array(size));
  }

  /** Stores position `pos`'s key and value vectors (each `kvDim`) in `layer`'s ring. */
  write(layer: number, pos: number, key: Float32Array, value: Float32Array): void {
    if (!Number.isInteger(layer) || layer < 0 || layer >= this.shape.nLayers) {
      throw new RangeError(
        `SlidingKvCache layer: expected an integer in [0, ${this.shape.nLayers}), got ${layer}`,
      );
    }
    checkInteger("SlidingKvCache position", pos, 0);
    checkLength("SlidingKvCache key (nKvHeads*headDim)", key, this.kvDim);
    checkLength("SlidingKvCache value (nKvHeads*headDim)", value, this.kvDim);
    const row = pos % this.shape.window;
    this.keys[layer].set(key, row * this.kvDim);
    this.values[layer].set(value, row * this.kvDim);
  }

  /** Bytes per cached position (keys and values of all layers). */
  get bytesPerToken(): number {
    return kvCacheBytesPerToken(this.shape);
  }

  /** Bytes of the rings: `window` positions, however long the sequence grows. */
  get bytes(): number {
    return this.bytesPerToken * this.shape.window;
  }
}

/**
 * Attention of one new token at `pos` against a ring of `window` positions, the contract of the
 * sliding-window attention kernel: `q: (nHeads·headDim)`; `keyRing, valueRing:
 * (window, nKvHeads·headDim)` holding positions `windowStart(pos)..pos` at rows `p % window`.
 * Returns `(nHeads·headDim)`: {@linkcode decodeAttention} over exactly those positions.
 *
 * @example
 * ```ts
 * import { slidingWindowAttention } from "./sliding_kv_cache.ts";
 * const shape = { nHeads: 1, nKvHeads: 1, headDim: 1 };
 * // window 2 at position 3: rows 1 (pos 3) and 0 (pos 2); equal scores give the mean
 * const out = slidingWindowAttention(new Float32Array([0]), new Float32Array([1, 1]), new Float32Array([4, 6]), 3, 2, shape);
 * if (out[0] !== 5) throw new Error("wrong");
 * ```
 */
export function slidingWindowAttention(
  q: Float32Array,
  keyRing: Float32Array,
  valueRing: Float32Array,
  pos: number,
  window: number,
  shape: AttentionShape,
): Float32Array {
  checkHeads(shape.nHeads, shape.nKvHeads, shape.headDim);
  checkInteger("window", window);
  checkInteger("pos", pos, 0);
  const kvDim = shape.nKvHeads * shape.headDim;
  checkLength("slidingWindowAttention keyRing (window*nKvHeads*headDim)", keyRing, window * kvDim);
  checkLength(
    "slidingWindowAttention valueRing (window*nKvHeads*headDim)",
    valueRing,
    window * kvDim,
  );
  const start = windowStart(pos, window);
  const count = pos - start + 1;
  const keys = new Float32Array(count * kvDim);
  const values = new Float32Array(count * kvDim);
  for (let t = start; t <= pos; t++) {
    const row = t % window;
    keys.set(keyRing.subarray(row * kvDim, (row + 1) * kvDim), (t - start) * kvDim);
    values.set(valueRing.subarray(row * kvDim, (row + 1) * kvDim), (t - start) * kvDim);
  }
  return decodeAttention(q, keys, values, count - 1, shape);
}

/**
 * Causal attention over a whole sequence with a sliding window (the recompute and prefill
 * path): like `attention`, but token `t` sees only tokens `windowStart(t, window)..t`.
 * `q: (seqLen, nHeads·headDim)`, `k, v: (seqLen, nKvHeads·headDim)`; returns
 * `(seqLen, nHeads·headDim)`.
 *
 * @example
 * ```ts
 * import { windowedAttention } from "./sliding_kv_cache.ts";
 * const shape = { nHeads: 1, nKvHeads: 1, headDim: 1 };
 * // a window of 1: every token sees only its own value
 * const out = windowedAttention(new Float32Array([1, 1, 1]), new Float32Array([1, 2, 3]), new Float32Array([5, 6, 7]), 3, 1, shape);
 * if (out.join() !== "5,6,7") throw new Error("wrong");
 * ```
 */
export function windowedAttention(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  seqLen: number,
  window: number,
  shape: AttentionShape,
): Float32Array {
  const { nHeads, nKvHeads, headDim } = shape;
  checkHeads(nHeads, nKvHeads, headDim);
  checkInteger("seqLen", seqLen);
  checkInteger("window", window);
  const qDim = nHeads * headDim;
  const kvDim = nKvHeads * headDim;
  checkLength("windowedAttention q (seqLen*nHeads*headDim)", q, seqLen * qDim);
  checkLength("windowedAttention k (seqLen*nKvHeads*headDim)", k, seqLen * kvDim);
  checkLength("windowedAttention v (seqLen*nKvHeads*headDim)", v, seqLen * kvDim);
  const group = nHeads / nKvHeads;
  const scale = 1 / Math.sqrt(headDim);
  const out = new Float32Array(seqLen * qDim);
  for (let t = 0; t < seqLen; t++) {
    const start = windowStart(t, window);
    for (let h = 0; h < nHeads; h++) {
      const qOffset = t * qDim + h * headDim;
      const kvOffset = Math.floor(h / group) * headDim;
      const scores = new Float32Array(t - start + 1);
      for (let j = start; j <= t; j++) {
        let dot = 0;
        for (let d = 0; d < headDim; d++) dot += q[qOffset + d] * k[j * kvDim + kvOffset + d];
        scores[j - start] = dot * scale;
      }
      const weights = softmax(scores);
      for (let j = start; j <= t; j++) {
        for (let d = 0; d < headDim; d++) {
          out[qOffset + d] += weights[j - start] * v[j * kvDim + kvOffset + d];
        }
      }
    }
  }
  return out;
}
