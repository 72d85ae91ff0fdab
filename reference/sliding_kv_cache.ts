/**
 * Sliding-window attention and its ring-buffer KV cache, as in Mistral: each token attends to
 * itself and the `window − 1` tokens before it, so the cache never needs more than `window`
 * positions, written round-robin.
 *
 * @module
 */
import { checkHeads, checkInteger, checkLength } from "./checks.ts";
import { type AttentionShape, decodeAttention, windowStart } from "./attention.ts";
import { kvCacheBytesPerToken } from "./kv_cache.ts";

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
 * Attention of one new token at `pos` against a ring, the contract of the sliding-window
 * attention kernel: `q: (nHeads·headDim)`; `keyRing, valueRing: (ringSize, nKvHeads·headDim)`
 * holding position `p` at row `p % ringSize` for every `p` in `windowStart(pos, window)..pos`.
 * Returns `(nHeads·headDim)`: {@linkcode decodeAttention} over exactly those positions. The ring
 * must hold the positions seen, `min(window, pos + 1)` (a run shorter than the window needs a
 * ring only as long as the run); it may be longer (e.g. so that a step can write several
 * positions before any of them is read).
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
  ringSize: number = window,
): Float32Array {
  checkHeads(shape.nHeads, shape.nKvHeads, shape.headDim);
  checkInteger("window", window);
  checkInteger("pos", pos, 0);
  const seen = Math.min(window, pos + 1);
  if (!Number.isInteger(ringSize) || ringSize < seen) {
    throw new RangeError(
      `ringSize: expected an integer >= the ${seen} positions seen at pos ${pos} (window ${window}), got ${ringSize}`,
    );
  }
  const kvDim = shape.nKvHeads * shape.headDim;
  checkLength(
    "slidingWindowAttention keyRing (ringSize*nKvHeads*headDim)",
    keyRing,
    ringSize * kvDim,
  );
  checkLength(
    "slidingWindowAttention valueRing (ringSize*nKvHeads*headDim)",
    valueRing,
    ringSize * kvDim,
  );
  const start = windowStart(pos, window);
  const count = pos - start + 1;
  const keys = new Float32Array(count * kvDim);
  const values = new Float32Array(count * kvDim);
  for (let t = start; t <= pos; t++) {
    const row = t % ringSize;
    keys.set(keyRing.subarray(row * kvDim, (row + 1) * kvDim), (t - start) * kvDim);
    values.set(valueRing.subarray(row * kvDim, (row + 1) * kvDim), (t - start) * kvDim);
  }
  return decodeAttention(q, keys, values, count - 1, shape);
}
