/**
 * Rotary positional embedding (RoPE): rotates pairs of query/key features by an angle
 * proportional to the token's position, so that q(m)·k(n) depends only on m − n.
 *
 * @module
 */
import { checkInteger } from "./checks.ts";

/** Default RoPE base, as in LLaMA 1/2. */
export const DEFAULT_ROPE_THETA = 10000;

/**
 * Which features form a rotated pair.
 * - `"interleaved"`: adjacent pairs (2i, 2i+1), as in Meta's reference code and llama2.c.
 * - `"half"`: pairs (i, i + headDim/2), the "rotate half" layout of Hugging Face checkpoints.
 */
export type RopeLayout = "interleaved" | "half";

/** Options of {@linkcode rope}. */
export interface RopeOptions {
  /** Frequency base; 10000 by default. */
  theta?: number;
  /** Pairing of features; `"interleaved"` by default. */
  layout?: RopeLayout;
  /**
   * Linear RoPE scaling ("position interpolation"): positions are divided by this factor before
   * they turn, as llama.cpp does for `rope.scaling.type` `linear`; 1 (none) by default.
   */
  linearScaling?: number;
}

/**
 * The per-pair rotation frequencies `theta^(-2i/headDim)` for `i < headDim/2`.
 *
 * @example
 * ```ts
 * import { ropeFrequencies } from "./rope.ts";
 * const f = ropeFrequencies(4, 100);
 * if (f[0] !== 1 || Math.abs(f[1] - 0.1) > 1e-7) throw new Error("wrong");
 * ```
 */
export function ropeFrequencies(headDim: number, theta: number = DEFAULT_ROPE_THETA): Float32Array {
  checkRopeShape(headDim, theta);
  const freqs = new Float32Array(headDim / 2);
  for (let i = 0; i < headDim / 2; i++) freqs[i] = Math.pow(theta, (-2 * i) / headDim);
  return freqs;
}

/**
 * Applies RoPE at position `pos` to every head of `x` (length a multiple of `headDim`: a query
 * or key vector of one token, all heads side by side). Returns a new array.
 *
 * @example
 * ```ts
 * import { rope } from "./rope.ts";
 * // at position 0 nothing turns
 * const x = new Float32Array([1, 2, 3, 4]);
 * if (rope(x, 0, 4).join() !== "1,2,3,4") throw new Error("wrong");
 * ```
 */
export function rope(
  x: Float32Array,
  pos: number,
  headDim: number,
  options: RopeOptions = {},
): Float32Array {
  const { theta = DEFAULT_ROPE_THETA, layout = "interleaved", linearScaling = 1 } = options;
  checkRopeShape(headDim, theta, linearScaling);
  checkInteger("rope pos", pos, 0);
  if (x.length % headDim !== 0) {
    throw new RangeError(
      `rope x: expected a multiple of headDim ${headDim}, got length ${x.length}`,
    );
  }
  if (layout !== "interleaved" && layout !== "half") {
    throw new RangeError(`rope layout: expected "interleaved" or "half", got ${String(layout)}`);
  }
  const half = headDim / 2;
  const out = new Float32Array(x.length);
  for (let head = 0; head < x.length; head += headDim) {
    for (let i = 0; i < half; i++) {
      const angle = (pos / linearScaling) * Math.pow(theta, (-2 * i) / headDim);
      const cos = Math.cos(angle);
      const sin = Math.sin(angle);
      const a = layout === "interleaved" ? head + 2 * i : head + i;
      const b = layout === "interleaved" ? a + 1 : a + half;
      out[a] = x[a] * cos - x[b] * sin;
      out[b] = x[a] * sin + x[b] * cos;
    }
  }
  return out;
}

/**
 * Applies RoPE to `rows` consecutive tokens, row `t` at position `startPos + t`: `x` is
 * `(rows, width)` with `width` a multiple of `headDim` (all heads side by side). Returns a new
 * array. The contract of the `gpu/rope.ts` kernel (which reads `startPos` from the state buffer).
 *
 * @example
 * ```ts
 * import { rope, ropeRows } from "./rope.ts";
 * const x = new Float32Array([1, 2, 3, 4]); // two tokens of one head of 2
 * const y = ropeRows(x, 5, 2, 2);
 * if (y[2] !== rope(x.subarray(2), 6, 2)[0]) throw new Error("wrong");
 * ```
 */
export function ropeRows(
  x: Float32Array,
  startPos: number,
  rows: number,
  headDim: number,
  options: RopeOptions = {},
): Float32Array {
  checkInteger("ropeRows rows", rows);
  checkInteger("ropeRows startPos", startPos, 0);
  if (x.length % rows !== 0) {
    throw new RangeError(`ropeRows x: expected a multiple of rows ${rows}, got length ${x.length}`);
  }
  const width = x.length / rows;
  const out = new Float32Array(x.length);
  for (let t = 0; t < rows; t++) {
    out.set(
      rope(x.subarray(t * width, (t + 1) * width), startPos + t, headDim, options),
      t * width,
    );
  }
  return out;
}

function checkRopeShape(headDim: number, theta: number, linearScaling = 1): void {
  checkInteger("rope headDim", headDim);
  if (headDim % 2 !== 0) {
    throw new RangeError(
      `rope headDim: expected an even number (features rotate in pairs), got ${headDim}`,
    );
  }
  if (!(theta > 0) || !Number.isFinite(theta)) {
    throw new RangeError(`rope theta: expected a finite number > 0, got ${theta}`);
  }
  if (!(linearScaling > 0) || !Number.isFinite(linearScaling)) {
    throw new RangeError(
      `rope linearScaling: expected a finite number > 0, got ${linearScaling}`,
    );
  }
}

/**
 * The rotation table `(maxSeqLen, headDim/2)` of `(cos, sin)` pairs of
 * `(pos / linearScaling) · freq_i`, computed in double precision: kernels look angles up instead
 * of evaluating `sin`/`cos` of large arguments in float32 (and a scaled model needs only its
 * table scaled).
 *
 * @example
 * ```ts
 * import { ropeTable } from "./rope.ts";
 * const table = ropeTable(4, 2); // positions 0 and 1, two pairs each
 * if (table[0] !== 1 || table[1] !== 0 || Math.abs(table[4] - Math.cos(1)) > 1e-7) throw new Error("wrong");
 * ```
 */
export function ropeTable(
  headDim: number,
  maxSeqLen: number,
  theta: number = DEFAULT_ROPE_THETA,
  linearScaling = 1,
): Float32Array {
  checkRopeShape(headDim, theta, linearScaling);
  checkInteger("rope maxSeqLen", maxSeqLen);
  const half = headDim / 2;
  const table = new Float32Array(maxSeqLen * headDim);
  for (let pos = 0; pos < maxSeqLen; pos++) {
    for (let i = 0; i < half; i++) {
      const angle = (pos / linearScaling) * Math.pow(theta, (-2 * i) / headDim);
      table[(pos * half + i) * 2] = Math.cos(angle);
      table[(pos * half + i) * 2 + 1] = Math.sin(angle);
    }
  }
  return table;
}
