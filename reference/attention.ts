/**
 * Causal scaled-dot-product attention with multi-head, grouped-query and multi-query variants.
 *
 * Query head `h` reads key/value head `floor(h / (nHeads / nKvHeads))`: with `nKvHeads = nHeads`
 * this is multi-head attention (MHA), with `nKvHeads = 1` multi-query attention (MQA), and in
 * between grouped-query attention (GQA).
 *
 * @module
 */
import { checkHeads, checkInteger, checkLength, checkMinLength } from "./checks.ts";
import { softmax } from "./softmax.ts";

/** Head layout of an attention layer. */
export interface AttentionShape {
  /** Number of query heads. */
  nHeads: number;
  /** Number of key/value heads; divides `nHeads`. */
  nKvHeads: number;
  /** Features per head. */
  headDim: number;
}

/**
 * The first position a token at `pos` sees under a sliding window of `window` positions (itself
 * and the `window − 1` before it): `max(0, pos − window + 1)`; 0 without a window (`Infinity`).
 *
 * @example
 * ```ts
 * import { windowStart } from "./attention.ts";
 * if (windowStart(10, 4) !== 7 || windowStart(2, 4) !== 0 || windowStart(9, Infinity) !== 0) throw new Error("wrong");
 * ```
 */
export function windowStart(pos: number, window: number): number {
  return Math.max(0, pos - window + 1);
}

function checkWindow(window: number): void {
  if (window !== Infinity && (!Number.isInteger(window) || window < 1)) {
    throw new RangeError(`window: expected an integer >= 1 or Infinity, got ${window}`);
  }
}

/**
 * Full causal attention over a sequence of `seqLen` tokens: `q: (seqLen, nHeads·headDim)`,
 * `k, v: (seqLen, nKvHeads·headDim)`; returns `(seqLen, nHeads·headDim)`. Token `t` attends to
 * tokens `0..t`: scores `q·k / sqrt(headDim)`, masked above the diagonal, softmax, weighted sum
 * of values. With a sliding `window` (Mistral's), token `t` sees only `windowStart(t, window)..t`.
 *
 * @example
 * ```ts
 * import { attention } from "./attention.ts";
 * const shape = { nHeads: 1, nKvHeads: 1, headDim: 1 };
 * // the first token can only see itself
 * const out = attention(new Float32Array([1, 1]), new Float32Array([1, 2]), new Float32Array([5, 7]), 2, shape);
 * if (out[0] !== 5) throw new Error("wrong");
 * ```
 */
export function attention(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  seqLen: number,
  shape: AttentionShape,
  window: number = Infinity,
): Float32Array {
  const { nHeads, nKvHeads, headDim } = shape;
  checkHeads(nHeads, nKvHeads, headDim);
  checkInteger("seqLen", seqLen);
  checkWindow(window);
  const qDim = nHeads * headDim;
  const kvDim = nKvHeads * headDim;
  checkLength("attention q (seqLen*nHeads*headDim)", q, seqLen * qDim);
  checkLength("attention k (seqLen*nKvHeads*headDim)", k, seqLen * kvDim);
  checkLength("attention v (seqLen*nKvHeads*headDim)", v, seqLen * kvDim);
  const group = nHeads / nKvHeads;
  const scale = 1 / Math.sqrt(headDim);
  const out = new Float32Array(seqLen * qDim);
  for (let h = 0; h < nHeads; h++) {
    const kvHead = Math.floor(h / group);
    // Scores for all (query, key) pairs of this head, future (and out-of-window) keys masked.
    const scores = new Float32Array(seqLen * seqLen);
    for (let i = 0; i < seqLen; i++) {
      for (let j = 0; j < seqLen; j++) {
        scores[i * seqLen + j] = j > i || j < windowStart(i, window)
          ? -Infinity
          : dot(q, i * qDim + h * headDim, k, j * kvDim + kvHead * headDim, headDim) * scale;
      }
    }
    const weights = softmax(scores, seqLen);
    for (let i = 0; i < seqLen; i++) {
      for (let d = 0; d < headDim; d++) {
        let sum = 0;
        for (let j = windowStart(i, window); j <= i; j++) {
          sum += weights[i * seqLen + j] * v[j * kvDim + kvHead * headDim + d];
        }
        out[i * qDim + h * headDim + d] = sum;
      }
    }
  }
  return out;
}

/**
 * Attention of one new token at position `pos` against a KV cache: `q: (nHeads·headDim)`,
 * `keys, values: (≥ pos+1, nKvHeads·headDim)` holding positions `0..pos`; returns
 * `(nHeads·headDim)`. This is the decode path: each step reads the cache instead of
 * recomputing keys and values of the whole prefix.
 *
 * @example
 * ```ts
 * import { decodeAttention } from "./attention.ts";
 * const shape = { nHeads: 1, nKvHeads: 1, headDim: 1 };
 * // equal scores: the mean of the values
 * const out = decodeAttention(new Float32Array([0]), new Float32Array([1, 2]), new Float32Array([5, 7]), 1, shape);
 * if (out[0] !== 6) throw new Error("wrong");
 * ```
 */
export function decodeAttention(
  q: Float32Array,
  keys: Float32Array,
  values: Float32Array,
  pos: number,
  shape: AttentionShape,
): Float32Array {
  const { nHeads, nKvHeads, headDim } = shape;
  checkHeads(nHeads, nKvHeads, headDim);
  checkInteger("pos", pos, 0);
  const kvDim = nKvHeads * headDim;
  checkLength("decodeAttention q (nHeads*headDim)", q, nHeads * headDim);
  checkMinLength("decodeAttention keys ((pos+1)*nKvHeads*headDim)", keys, (pos + 1) * kvDim);
  checkMinLength("decodeAttention values ((pos+1)*nKvHeads*headDim)", values, (pos + 1) * kvDim);
  const group = nHeads / nKvHeads;
  const scale = 1 / Math.sqrt(headDim);
  const out = new Float32Array(nHeads * headDim);
  for (let h = 0; h < nHeads; h++) {
    const kvOffset = Math.floor(h / group) * headDim;
    const scores = new Float32Array(pos + 1);
    for (let t = 0; t <= pos; t++) {
      scores[t] = dot(q, h * headDim, keys, t * kvDim + kvOffset, headDim) * scale;
    }
    const weights = softmax(scores);
    for (let t = 0; t <= pos; t++) {
      for (let d = 0; d < headDim; d++) {
        out[h * headDim + d] += weights[t] * values[t * kvDim + kvOffset + d];
      }
    }
  }
  return out;
}

/**
 * Attention of `rows` new tokens against a KV cache, row `t` at position `startPos + t`
 * attending to positions `0..startPos + t`: `q: (rows, nHeads·headDim)`, `keyCache, valueCache:
 * (≥ startPos + rows, nKvHeads·headDim)`; returns `(rows, nHeads·headDim)`. The contract of the
 * `gpu/attention.ts` kernel: prefill (`rows` = prompt length) and decode (`rows` = 1) alike.
 * With a sliding `window`, position `p` sees only `windowStart(p, window)..p`.
 *
 * @example
 * ```ts
 * import { cachedAttention } from "./attention.ts";
 * const shape = { nHeads: 1, nKvHeads: 1, headDim: 1 };
 * const keys = new Float32Array([0, 0]), values = new Float32Array([5, 7]);
 * // row 0 (position 0) sees only value 5; row 1 the mean of 5 and 7
 * const out = cachedAttention(new Float32Array([1, 1]), keys, values, 0, 2, shape);
 * if (out.join() !== "5,6") throw new Error("wrong");
 * ```
 */
export function cachedAttention(
  q: Float32Array,
  keyCache: Float32Array,
  valueCache: Float32Array,
  startPos: number,
  rows: number,
  shape: AttentionShape,
  window: number = Infinity,
): Float32Array {
  checkHeads(shape.nHeads, shape.nKvHeads, shape.headDim);
  checkInteger("cachedAttention rows", rows);
  checkInteger("cachedAttention startPos", startPos, 0);
  checkWindow(window);
  const width = shape.nHeads * shape.headDim;
  const kvDim = shape.nKvHeads * shape.headDim;
  checkLength("cachedAttention q (rows*nHeads*headDim)", q, rows * width);
  const out = new Float32Array(rows * width);
  for (let t = 0; t < rows; t++) {
    const row = q.subarray(t * width, (t + 1) * width);
    const pos = startPos + t;
    const first = windowStart(pos, window) * kvDim;
    const keys = keyCache.subarray(first), values = valueCache.subarray(first);
    out.set(decodeAttention(row, keys, values, pos - first / kvDim, shape), t * width);
  }
  return out;
}

/**
 * Repeats each of the `nKvHeads` heads of `kv: (seqLen, nKvHeads·headDim)` `repeats` times,
 * giving `(seqLen, nKvHeads·repeats·headDim)`: how grouped-query attention reduces to multi-head
 * attention on paper. Kernels never do this copy; it exists to state and test the equivalence.
 *
 * @example
 * ```ts
 * import { repeatKvHeads } from "./attention.ts";
 * const out = repeatKvHeads(new Float32Array([1, 2]), 1, 2, 1, 2);
 * if (out.join() !== "1,1,2,2") throw new Error("wrong");
 * ```
 */
export function repeatKvHeads(
  kv: Float32Array,
  seqLen: number,
  nKvHeads: number,
  headDim: number,
  repeats: number,
): Float32Array {
  checkInteger("repeats", repeats);
  checkLength("repeatKvHeads kv (seqLen*nKvHeads*headDim)", kv, seqLen * nKvHeads * headDim);
  const out = new Float32Array(kv.length * repeats);
  for (let t = 0; t < seqLen; t++) {
    for (let h = 0; h < nKvHeads; h++) {
      const head = kv.subarray((t * nKvHeads + h) * headDim, (t * nKvHeads + h + 1) * headDim);
      for (let r = 0; r < repeats; r++) {
        out.set(head, ((t * nKvHeads + h) * repeats + r) * headDim);
      }
    }
  }
  return out;
}

function dot(
  a: Float32Array,
  aOffset: number,
  b: Float32Array,
  bOffset: number,
  n: number,
): number {
  let sum = 0;
  for (let i = 0; i < n; i++) sum += a[aOffset + i] * b[bOffset + i];
  return sum;
}
