/**
 * Weight layouts of the fused projections (see `projection.ts`), built once on the CPU: the
 * RMSNorm weight folded into W's columns, W1 and W3 interleaved row by row, and Q, K, V
 * concatenated in rotation pairs so that each unit of the fused kernel owns two adjacent rows.
 *
 * @module
 */
import type { RopeLayout } from "../../reference/rope.ts";

function checkLength(what: string, w: Float32Array, expected: number): void {
  if (w.length !== expected) {
    throw new RangeError(`${what}: expected ${expected} floats, got ${w.length}`);
  }
}

/**
 * `W · diag(norm)`: `out[r, c] = w[r, c] · norm[c]`, so that `W · (norm ⊙ x̂) = out · x̂`.
 *
 * @example
 * ```ts
 * import { foldNormWeight } from "./fused_weights.ts";
 * const w = foldNormWeight(new Float32Array([1, 2, 3, 4]), 2, new Float32Array([10, 100]));
 * if (w.join() !== "10,200,30,400") throw new Error("wrong");
 * ```
 */
export function foldNormWeight(w: Float32Array, inDim: number, norm: Float32Array): Float32Array {
  checkLength("norm weight", norm, inDim);
  if (w.length % inDim !== 0) {
    throw new RangeError(`weights: expected a multiple of ${inDim} floats, got ${w.length}`);
  }
  const out = new Float32Array(w.length);
  for (let at = 0; at < w.length; at += inDim) {
    for (let c = 0; c < inDim; c++) out[at + c] = w[at + c] * norm[c];
  }
  return out;
}

/**
 * W1 and W3 `(hidden, dim)` interleaved: rows `w1[0], w3[0], w1[1], w3[1], ...`, the layout of
 * the `siluMul` projection epilogue; the norm weight folded in when given.
 *
 * @example
 * ```ts
 * import { interleaveGateUp } from "./fused_weights.ts";
 * const w = interleaveGateUp(new Float32Array([1, 2]), new Float32Array([3, 4]), 1);
 * if (w.join() !== "1,3,2,4") throw new Error("wrong");
 * ```
 */
export function interleaveGateUp(
  w1: Float32Array,
  w3: Float32Array,
  dim: number,
  norm?: Float32Array,
): Float32Array {
  checkLength("w3", w3, w1.length);
  const hidden = w1.length / dim;
  if (!Number.isInteger(hidden)) {
    throw new RangeError(`w1: expected a multiple of ${dim} floats, got ${w1.length}`);
  }
  const out = new Float32Array(2 * w1.length);
  for (let r = 0; r < hidden; r++) {
    out.set(w1.subarray(r * dim, (r + 1) * dim), 2 * r * dim);
    out.set(w3.subarray(r * dim, (r + 1) * dim), (2 * r + 1) * dim);
  }
  return norm ? foldNormWeight(out, dim, norm) : out;
}

/** Shape of {@linkcode fuseQkv}. */
export interface QkvShape {
  /** Model width (columns of every matrix). */
  dim: number;
  /** Query heads. */
  nHeads: number;
  /** Key/value heads. */
  nKvHeads: number;
  /** Features per head (even). */
  headDim: number;
  /** RoPE pairing; `"interleaved"` by default. */
  layout?: RopeLayout;
}

/**
 * Q, K and V weights as the `qkvRope` epilogue reads them: each rotation pair of Q, then of K,
 * as two adjacent rows, then V's rows in order; the norm weight folded in when given.
 *
 * @example
 * ```ts
 * import { fuseQkv } from "./fused_weights.ts";
 * // one head of 4 features, "half" layout: pairs (0, 2) and (1, 3)
 * const q = new Float32Array([0, 1, 2, 3]);
 * const w = fuseQkv(q, q, q, { dim: 1, nHeads: 1, nKvHeads: 1, headDim: 4, layout: "half" });
 * if (w.join() !== "0,2,1,3,0,2,1,3,0,1,2,3") throw new Error("wrong");
 * ```
 */
export function fuseQkv(
  wq: Float32Array,
  wk: Float32Array,
  wv: Float32Array,
  shape: QkvShape,
  norm?: Float32Array,
): Float32Array {
  const { dim, nHeads, nKvHeads, headDim, layout = "interleaved" } = shape;
  if (headDim % 2 !== 0) throw new RangeError(`headDim: expected an even number, got ${headDim}`);
  const qDim = nHeads * headDim;
  const kvDim = nKvHeads * headDim;
  checkLength("wq", wq, qDim * dim);
  checkLength("wk", wk, kvDim * dim);
  checkLength("wv", wv, kvDim * dim);
  const out = new Float32Array((qDim + 2 * kvDim) * dim);
  let row = 0;
  const copy = (w: Float32Array, r: number) =>
    out.set(w.subarray(r * dim, (r + 1) * dim), dim * row++);
  const half = headDim / 2;
  for (const [w, width] of [[wq, qDim], [wk, kvDim]] as const) {
    for (let start = 0; start < width; start += headDim) {
      for (let i = 0; i < half; i++) {
        const a = layout === "half" ? start + i : start + 2 * i;
        copy(w, a);
        copy(w, layout === "half" ? a + half : a + 1);
      }
    }
  }
  for (let r = 0; r < kvDim; r++) copy(wv, r);
  return norm ? foldNormWeight(out, dim, norm) : out;
}
