/**
 * Products of Q8_0/Q4_0 weights with activations quantized to 8 bits, as llama.cpp computes them
 * (`ggml_vec_dot_q8_0_q8_0`, `ggml_vec_dot_q4_0_q8_0`): the activation vector is quantized once
 * per projection into blocks of 32 `int8` with one scale each, every block's dot product is an
 * exact integer sum, and the two block scales are applied once per block.
 *
 * The activations' scale is kept in float32 (llama.cpp rounds it to f16): `d = max|x| / 127`,
 * quant `q = round(x · (1/d))`, halves away from zero, as `quantize_row_q8_0_ref`.
 *
 * Error against the product with float activations ({@linkcode q8ActivationErrorBound}): each
 * activation moves by at most half a step, `|x − q·d| ≤ d/2 · (1 + 2⁻²⁰)`, so output `r` moves by
 * at most `Σ_b d_b/2 · Σ_{j in b} |w_rj|` (the dequantized weights), plus float32 rounding of
 * the per-block sums. For values spread evenly in [−m, m] the expected error is far smaller:
 * the steps' errors are independent, uniform on ±d/2, so the NMSE is about `(d²/12) / E[x²]` =
 * `1/(127²·4)` ≈ 1.6e-5 for a block whose largest magnitude is m.
 *
 * @module
 */
import { checkInteger, checkLength } from "./checks.ts";
import { fromF16 } from "./f16.ts";
import { formatBytes, QUANT_BLOCK } from "./quantize.ts";

/** An activation vector quantized to Q8 blocks. */
export interface Q8Activations {
  /** The quants, `inDim` of them. */
  quants: Int8Array;
  /** One float32 scale per block of 32. */
  scales: Float32Array;
  /** Each block's sum of quants (Q4_0's `−8` offset is applied through it). */
  sums: Int32Array;
}

/** Weight formats with integer products over Q8 activations. */
export type Q8WeightFormat = "q8_0" | "q4_0";

/**
 * Quantizes `x` (a whole number of 32-value blocks) to Q8 blocks.
 *
 * @example
 * ```ts
 * import { quantizeActivations } from "./q8_activations.ts";
 * const q = quantizeActivations(Float32Array.from({ length: 32 }, (_, i) => i - 16));
 * if (q.quants[0] !== -127 || q.scales[0] !== Math.fround(16 / 127)) throw new Error("wrong");
 * ```
 */
export function quantizeActivations(x: Float32Array): Q8Activations {
  if (x.length % QUANT_BLOCK !== 0) {
    throw new RangeError(
      `quantizeActivations x: expected a multiple of ${QUANT_BLOCK} values, got ${x.length}`,
    );
  }
  const blocks = x.length / QUANT_BLOCK;
  const quants = new Int8Array(x.length);
  const scales = new Float32Array(blocks);
  const sums = new Int32Array(blocks);
  for (let b = 0; b < blocks; b++) {
    const start = b * QUANT_BLOCK;
    let amax = 0;
    for (let j = start; j < start + QUANT_BLOCK; j++) amax = Math.max(amax, Math.abs(x[j]));
    if (!Number.isFinite(amax)) {
      throw new RangeError(`quantizeActivations x: block ${b} holds a non-finite value`);
    }
    const d = Math.fround(amax / 127);
    const inverse = d ? Math.fround(1 / d) : 0;
    let sum = 0;
    for (let j = start; j < start + QUANT_BLOCK; j++) {
      const v = Math.fround(x[j] * inverse);
      // halves away from zero; |v| <= 127 up to rounding, clamped so the quant fits int8
      const q = Math.max(-127, Math.min(127, v < 0 ? -Math.round(-v) : Math.round(v)));
      quants[j] = q;
      sum += q;
    }
    scales[b] = d;
    sums[b] = sum;
  }
  return { quants, scales, sums };
}

let f16Table: Float32Array | undefined;

/**
 * `out = W · x` for `W (outDim, inDim)` stored as Q8_0 or Q4_0 in GGUF's bytes and `x` already
 * quantized ({@linkcode quantizeActivations}): per block an exact integer sum, times both scales;
 * the blocks summed in float64. This is the oracle of the GPU's integer-dot kernels and the CPU
 * decoder's quantized product.
 *
 * @example
 * ```ts
 * import { quantize } from "./quantize.ts";
 * import { matvecQ8Activations, quantizeActivations } from "./q8_activations.ts";
 * const w = quantize(new Float32Array(32).fill(127 / 128), "q8_0"); // quants 127, d = 1/128
 * const y = matvecQ8Activations(w, "q8_0", quantizeActivations(new Float32Array(32).fill(1)), 1, 32);
 * if (Math.abs(y[0] - 32 * 127 / 128) > 1e-4) throw new Error("wrong");
 * ```
 */
export function matvecQ8Activations(
  w: Uint8Array,
  format: Q8WeightFormat,
  x: Q8Activations,
  outDim: number,
  inDim: number,
  out: Float32Array = new Float32Array(outDim),
): Float32Array {
  checkInteger("outDim", outDim);
  checkInteger("inDim", inDim);
  if (format !== "q8_0" && format !== "q4_0") {
    throw new RangeError(`matvecQ8Activations format: expected q8_0 or q4_0, got "${format}"`);
  }
  const rowBytes = formatBytes(format, inDim);
  checkLength(`matvecQ8Activations w (${outDim} rows of ${rowBytes} bytes)`, w, outDim * rowBytes);
  checkLength("matvecQ8Activations x (inDim quants)", x.quants, inDim);
  checkLength("matvecQ8Activations out (outDim)", out, outDim);
  f16Table ??= fromF16(Uint16Array.from({ length: 65536 }, (_, i) => i));
  const table = f16Table;
  const { quants: xq, scales: xd, sums } = x;
  const blocks = inDim / QUANT_BLOCK;
  // Each block's integer dot product in int32 (`| 0`: at most 32·127·127 in magnitude), then
  // times both scales. The plain 32-step loops keep V8 on int32 arithmetic: twice as fast as an
  // unrolled float accumulation, and as fast as the f32 matvec on matrices that fit in cache.
  return format === "q8_0"
    ? dotQ8_0(w, table, xq, xd, outDim, blocks, out)
    : dotQ4_0(w, table, xq, xd, sums, outDim, blocks, out);
}

// One function per format: V8 then optimizes each loop for its own element types.
function dotQ8_0(
  w: Uint8Array,
  table: Float32Array,
  xq: Int8Array,
  xd: Float32Array,
  outDim: number,
  blocks: number,
  out: Float32Array,
): Float32Array {
  const signed = new Int8Array(w.buffer, w.byteOffset, w.byteLength);
  for (let r = 0, at = 0; r < outDim; r++) {
    let acc = 0;
    for (let b = 0; b < blocks; b++, at += 34) {
      const q = at + 2;
      const c = b * 32;
      let dot = 0;
      for (let j = 0; j < 32; j += 2) {
        dot = (dot + signed[q + j] * xq[c + j] + signed[q + j + 1] * xq[c + j + 1]) | 0;
      }
      acc += table[w[at] | (w[at + 1] << 8)] * xd[b] * dot;
    }
    out[r] = acc;
  }
  return out;
}

function dotQ4_0(
  w: Uint8Array,
  table: Float32Array,
  xq: Int8Array,
  xd: Float32Array,
  sums: Q8Activations["sums"],
  outDim: number,
  blocks: number,
  out: Float32Array,
): Float32Array {
  for (let r = 0, at = 0; r < outDim; r++) {
    let acc = 0;
    for (let b = 0; b < blocks; b++, at += 18) {
      const q = at + 2;
      const c = b * 32;
      let dot = 0;
      // byte j holds quant j (low nibble) and quant j + 16 (high nibble), each offset by 8
      for (let j = 0; j < 16; j++) {
        const byte = w[q + j];
        dot = (dot + (byte & 15) * xq[c + j] + (byte >> 4) * xq[c + 16 + j]) | 0;
      }
      acc += table[w[at] | (w[at + 1] << 8)] * xd[b] * (dot - 8 * sums[b]);
    }
    out[r] = acc;
  }
  return out;
}

/**
 * The largest change Q8 activations can make to each output of `W · x` (`W` dequantized, as
 * floats): `Σ_b (d_b/2)(1 + 2⁻²⁰) Σ_{j in b} |w_rj|`, with `d_b` block `b`'s activation scale.
 *
 * @example
 * ```ts
 * import { q8ActivationErrorBound } from "./q8_activations.ts";
 * const bound = q8ActivationErrorBound(new Float32Array(32).fill(1), new Float32Array(32).fill(127), 1, 32);
 * if (Math.abs(bound[0] - 16 * (1 + 2 ** -20)) > 1e-9) throw new Error("wrong");
 * ```
 */
export function q8ActivationErrorBound(
  w: Float32Array,
  x: Float32Array,
  outDim: number,
  inDim: number,
): Float64Array {
  checkLength("q8ActivationErrorBound w", w, outDim * inDim);
  checkLength("q8ActivationErrorBound x", x, inDim);
  const { scales } = quantizeActivations(x);
  const bound = new Float64Array(outDim);
  for (let r = 0; r < outDim; r++) {
    let sum = 0;
    for (let c = 0; c < inDim; c++) {
      sum += Math.abs(w[r * inDim + c]) * scales[Math.floor(c / QUANT_BLOCK)] / 2;
    }
    bound[r] = sum * (1 + 2 ** -20);
  }
  return bound;
}
