/**
 * Tensor storage formats and their byte layouts, exactly as GGUF (ggml) stores them, so files
 * interoperate with llama.cpp:
 *
 * - `f32`: 4 bytes per value, little-endian IEEE binary32;
 * - `f16`: 2 bytes per value, little-endian IEEE binary16 (see `f16.ts`);
 * - `q8_0`: blocks of 32 values in 34 bytes: an f16 scale `d`, then 32 `int8` quants `q`;
 *   value = `q·d`, with `d = max|x| / 127` (ggml's `quantize_row_q8_0_ref`, rounding half away
 *   from zero);
 * - `q4_0`: blocks of 32 values in 18 bytes: an f16 scale `d`, then 16 bytes whose low nibbles
 *   hold values 0..15 and high nibbles values 16..31; value = `(q − 8)·d`, with `d = m / −8`
 *   where `m` is the block's value of largest magnitude, sign kept (ggml's
 *   `quantize_row_q4_0_ref`);
 * - `q6_k`, `q5_k`, `q4_k`: ggml's K-quants, super-blocks of 256 values in 210, 176 and 144
 *   bytes (see `kquants.ts`).
 *
 * Quantize-then-dequantize error, per value (see {@linkcode quantizationErrorBound}), with `d`
 * the float32 scale, `d16` its stored f16 rounding and `ε = 2⁻²⁰` covering float32 arithmetic:
 *
 * - `f16`: `|x|·2⁻¹¹` for `|x| ≥ 2⁻¹⁴`, else `2⁻²⁵`;
 * - `q8_0`: `d·(1/2 + ε) + 127·|d − d16|`: half a step, plus the scale's rounding on the
 *   largest quant;
 * - `q4_0`: `|d|·(1 + ε) + 8·|d − d16|`: half a step, except that a value within half a step of
 *   `−m` clamps to quant 15 and may be off by a whole step;
 * - K-quants: half a step of each sub-block's stored scale, or the distance to its grid's range
 *   where the 6-bit scales leave a value outside (`kQuantErrorBound`).
 *
 * @module
 */
import { checkInteger, checkLength } from "./checks.ts";
import { F16_MAX, f32ToF16Bits, fromF16 } from "./f16.ts";
import {
  dequantizeKQuant,
  isKQuantFormat,
  K_BLOCK_BYTES,
  K_SUPER_BLOCK,
  kQuantErrorBound,
  type KQuantFormat,
  matvecKQuant,
  quantizeKQuant,
} from "./kquants.ts";

/** How a tensor's values are stored. */
export type TensorFormat = "f32" | "f16" | "q8_0" | "q4_0" | KQuantFormat;

/** Every {@linkcode TensorFormat}: the element and 32-value formats widest first, then the K-quants. */
export const TENSOR_FORMATS: readonly TensorFormat[] = [
  "f32",
  "f16",
  "q8_0",
  "q4_0",
  "q6_k",
  "q5_k",
  "q4_k",
];

/** Values per block of the 32-value block formats (`q8_0`, `q4_0`). */
export const QUANT_BLOCK = 32;

/** Bytes per block of 32 values, by format (of the formats that are not K-quants). */
const BLOCK_BYTES: Record<"f32" | "f16" | "q8_0" | "q4_0", number> = {
  f32: 128,
  f16: 64,
  q8_0: 34,
  q4_0: 18,
};

/**
 * Whether `format` stores blocks (of {@linkcode formatBlockValues} values: counts, and a
 * matrix's rows, must be whole blocks).
 */
export function isBlockFormat(format: TensorFormat): boolean {
  return format === "q8_0" || format === "q4_0" || isKQuantFormat(format);
}

/**
 * Values per block of `format`: 1 for `f32`/`f16`, 32 for `q8_0`/`q4_0`, 256 for the K-quants.
 *
 * @example
 * ```ts
 * import { formatBlockValues } from "./quantize.ts";
 * if (formatBlockValues("q4_k") !== 256 || formatBlockValues("q8_0") !== 32) throw new Error("wrong");
 * ```
 */
export function formatBlockValues(format: TensorFormat): number {
  checkFormat(format);
  return isKQuantFormat(format) ? K_SUPER_BLOCK : isBlockFormat(format) ? QUANT_BLOCK : 1;
}

/**
 * Bytes that `count` values take in `format`. Throws for a block format unless `count` is a
 * multiple of 32.
 *
 * @example
 * ```ts
 * import { formatBytes } from "./quantize.ts";
 * if (formatBytes("q4_0", 64) !== 36 || formatBytes("f16", 3) !== 6) throw new Error("wrong");
 * ```
 */
export function formatBytes(format: TensorFormat, count: number): number {
  checkFormat(format);
  checkInteger(`${format} value count`, count, 0);
  if (isKQuantFormat(format)) {
    checkBlocks(format, count);
    return (count / K_SUPER_BLOCK) * K_BLOCK_BYTES[format];
  }
  if (isBlockFormat(format)) {
    checkBlocks(format, count);
    return (count / QUANT_BLOCK) * BLOCK_BYTES[format];
  }
  return count * (format === "f32" ? 4 : 2);
}

/**
 * Average bytes per value in `format` (4, 2, 1.0625, 0.5625; K-quants 0.8203, 0.6875, 0.5625).
 *
 * @example
 * ```ts
 * import { bytesPerValue } from "./quantize.ts";
 * if (bytesPerValue("q8_0") !== 34 / 32) throw new Error("wrong");
 * ```
 */
export function bytesPerValue(format: TensorFormat): number {
  checkFormat(format);
  return isKQuantFormat(format)
    ? K_BLOCK_BYTES[format] / K_SUPER_BLOCK
    : BLOCK_BYTES[format] / QUANT_BLOCK;
}

/**
 * Stores `values` in `format`'s byte layout. Throws, naming the index, on a non-finite value
 * or one whose format would overflow to infinity (|x| ≥ 65520 in f16; a block scale above
 * f16's 65504 in a block format), and for a block format unless the count is a multiple of its
 * block (32 values, 256 for the K-quants).
 *
 * @example
 * ```ts
 * import { dequantize, quantize } from "./quantize.ts";
 * const x = Float32Array.from({ length: 32 }, (_, i) => i - 16);
 * const bytes = quantize(x, "q8_0");
 * const y = dequantize(bytes, "q8_0", 32);
 * if (bytes.length !== 34 || Math.abs(y[3] - x[3]) > 0.07) throw new Error("wrong");
 * ```
 */
export function quantize(values: ArrayLike<number>, format: TensorFormat): Uint8Array {
  if (isKQuantFormat(format)) return quantizeKQuant(values, format);
  const bytes = new Uint8Array(formatBytes(format, values.length));
  checkFinite(values, format);
  switch (format) {
    case "f32":
      new Float32Array(bytes.buffer).set(values);
      break;
    case "f16":
      new Uint16Array(bytes.buffer).set(toF16Checked(values));
      break;
    case "q8_0":
      quantizeQ8_0(values, bytes);
      break;
    case "q4_0":
      quantizeQ4_0(values, bytes);
      break;
  }
  return bytes;
}

/**
 * Reads `count` values stored in `format` from `bytes` (which must hold exactly that many).
 *
 * @example
 * ```ts
 * import { dequantize } from "./quantize.ts";
 * const block = new Uint8Array(18); // q4_0: scale 0.5 (f16 0x3800), all quants 8 + 1
 * block[1] = 0x38;
 * block.fill(0x99, 2);
 * if (dequantize(block, "q4_0", 32).some((v) => v !== 0.5)) throw new Error("wrong");
 * ```
 */
export function dequantize(bytes: Uint8Array, format: TensorFormat, count: number): Float32Array {
  checkLength(`${format} bytes for ${count} values`, bytes, formatBytes(format, count));
  if (isKQuantFormat(format)) return dequantizeKQuant(bytes, format, count);
  switch (format) {
    case "f32":
      return new Float32Array(bytes.slice().buffer);
    case "f16":
      return fromF16(new Uint16Array(bytes.slice().buffer));
    case "q8_0":
    case "q4_0": {
      const out = new Float32Array(count);
      const decode = format === "q8_0" ? dequantizeBlockQ8_0 : dequantizeBlockQ4_0;
      for (let b = 0; b < count / QUANT_BLOCK; b++) {
        decode(bytes, b * BLOCK_BYTES[format], out, b * QUANT_BLOCK);
      }
      return out;
    }
  }
}

/**
 * Index of the first of `count` values stored in `format` that would dequantize to infinity or
 * NaN (a block's first value when its f16 scale is not finite), or −1: the check stored weights
 * need, without dequantizing them (every quant is a small integer, so a finite scale gives a
 * finite value).
 *
 * @example
 * ```ts
 * import { firstNonFinite, quantize } from "./quantize.ts";
 * const bytes = quantize(new Float32Array(64).fill(1), "q8_0");
 * bytes[35] = 0x7c; // block 1's scale: f16 0x7c00, infinity
 * if (firstNonFinite(bytes, "q8_0", 64) !== 32) throw new Error("wrong");
 * ```
 */
export function firstNonFinite(bytes: Uint8Array, format: TensorFormat, count: number): number {
  checkLength(`${format} bytes for ${count} values`, bytes, formatBytes(format, count));
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (format === "f32") {
    for (let i = 0; i < count; i++) if (!Number.isFinite(view.getFloat32(4 * i, true))) return i;
    return -1;
  }
  const infiniteF16 = (at: number) => (view.getUint16(at, true) & 0x7c00) === 0x7c00;
  if (format === "f16") {
    for (let i = 0; i < count; i++) if (infiniteF16(2 * i)) return i;
    return -1;
  }
  const values = formatBlockValues(format);
  const blockBytes = formatBytes(format, values);
  // Where each block keeps its f16 scales: d (and dmin) first, but Q6_K's d last.
  const scales = format === "q6_k" ? [208] : format === "q4_k" || format === "q5_k" ? [0, 2] : [0];
  for (let b = 0; b < count / values; b++) {
    if (scales.some((at) => infiniteF16(b * blockBytes + at))) return b * values;
  }
  return -1;
}

/**
 * Per-value bound on `|x − dequantize(quantize(x))|` for `values` stored in `format` (the
 * module documentation derives each).
 *
 * @example
 * ```ts
 * import { dequantize, quantize, quantizationErrorBound } from "./quantize.ts";
 * const x = Float32Array.from({ length: 32 }, (_, i) => Math.sin(i));
 * const y = dequantize(quantize(x, "q4_0"), "q4_0", 32);
 * const bound = quantizationErrorBound(x, "q4_0");
 * if (x.some((v, i) => Math.abs(v - y[i]) > bound[i])) throw new Error("wrong");
 * ```
 */
export function quantizationErrorBound(
  values: ArrayLike<number>,
  format: TensorFormat,
): Float64Array {
  formatBytes(format, values.length);
  // The K-quants' scales come out of a search: the bound follows the scales it stores.
  if (isKQuantFormat(format)) return kQuantErrorBound(values, quantize(values, format), format);
  const bound = new Float64Array(values.length);
  if (format === "f16") {
    for (let i = 0; i < values.length; i++) {
      const a = Math.abs(values[i]);
      bound[i] = a >= 2 ** -14 ? a * 2 ** -11 : 2 ** -25;
    }
  } else if (isBlockFormat(format)) {
    const epsilon = 2 ** -20;
    for (let start = 0; start < values.length; start += QUANT_BLOCK) {
      const { amax } = blockExtremes(values, start);
      const d = Math.fround(amax / (format === "q8_0" ? 127 : 8));
      const scaleError = Math.abs(d - f16Value(f32ToF16Bits(d)));
      const blockBound = format === "q8_0"
        ? d * (0.5 + epsilon) + 127 * scaleError
        : d * (1 + epsilon) + 8 * scaleError;
      bound.fill(blockBound, start, start + QUANT_BLOCK);
    }
  }
  return bound;
}

/**
 * `out = W · x` with `w: (outDim, inDim)` stored in `format` (rows of `inDim` values, each row
 * a whole number of blocks): dequantizes each weight and accumulates in double precision, the
 * oracle for the quantized kernels.
 *
 * @example
 * ```ts
 * import { matvecQuantized, quantize } from "./quantize.ts";
 * const w = quantize(new Float32Array(64).fill(-0.5), "q4_0"); // (2, 32): d = 1/16, exact
 * const y = matvecQuantized(w, "q4_0", new Float32Array(32).fill(1), 2, 32);
 * if (y[0] !== -16 || y[1] !== -16) throw new Error("wrong");
 * ```
 */
export function matvecQuantized(
  w: Uint8Array,
  format: TensorFormat,
  x: Float32Array,
  outDim: number,
  inDim: number,
): Float32Array {
  checkInteger("outDim", outDim);
  checkInteger("inDim", inDim);
  if (isKQuantFormat(format)) return matvecKQuant(w, format, x, outDim, inDim);
  const rowBytes = formatBytes(format, inDim);
  checkLength(
    `matvecQuantized w (${outDim} rows of ${rowBytes} ${format} bytes)`,
    w,
    outDim * rowBytes,
  );
  checkLength("matvecQuantized x (inDim)", x, inDim);
  const out = new Float32Array(outDim);
  const row = new Float32Array(inDim);
  // Whole-matrix views for the element formats (copied once if the bytes are unaligned).
  const aligned = w.byteOffset % 4 === 0 ? w : w.slice();
  const floats = format === "f32"
    ? new Float32Array(aligned.buffer, aligned.byteOffset, outDim * inDim)
    : undefined;
  const halves = format === "f16"
    ? new Uint16Array(aligned.buffer, aligned.byteOffset, outDim * inDim)
    : undefined;
  f16Table ??= fromF16(Uint16Array.from({ length: 65536 }, (_, i) => i));
  const signed = format === "q8_0"
    ? new Int8Array(w.buffer, w.byteOffset, w.byteLength)
    : undefined;
  for (let r = 0; r < outDim; r++) {
    const rowStart = r * rowBytes;
    if (floats) {
      row.set(floats.subarray(r * inDim, (r + 1) * inDim));
    } else if (halves) {
      const table = f16Table!;
      for (let c = 0; c < inDim; c++) row[c] = table[halves[r * inDim + c]];
    } else {
      // Each block's sum of quant·x, then times its scale: q·d is exact in float32 (at most
      // 8 + 11 significant bits), so this is the dequantized product summed in f64.
      let sum = 0;
      for (let b = 0; b < inDim / QUANT_BLOCK; b++) {
        const at = rowStart + b * BLOCK_BYTES[format];
        const d = f16Table![w[at] | (w[at + 1] << 8)];
        const x0 = b * QUANT_BLOCK;
        let blockSum = 0;
        if (format === "q8_0") {
          for (let j = 0; j < QUANT_BLOCK; j++) blockSum += signed![at + 2 + j] * x[x0 + j];
        } else {
          for (let j = 0; j < QUANT_BLOCK / 2; j++) {
            const byte = w[at + 2 + j];
            blockSum += ((byte & 15) - 8) * x[x0 + j] + ((byte >> 4) - 8) * x[x0 + 16 + j];
          }
        }
        sum += d * blockSum;
      }
      out[r] = sum;
      continue;
    }
    let sum = 0;
    for (let c = 0; c < inDim; c++) sum += row[c] * x[c];
    out[r] = sum;
  }
  return out;
}

function checkFormat(format: TensorFormat): void {
  if (!TENSOR_FORMATS.includes(format)) {
    throw new RangeError(`format: expected one of ${TENSOR_FORMATS.join(", ")}, got "${format}"`);
  }
}

function checkBlocks(format: TensorFormat, count: number): void {
  const block = formatBlockValues(format);
  if (count % block !== 0) {
    throw new RangeError(
      `${format}: value count must be a multiple of the ${block}-value block, got ${count}`,
    );
  }
}

function checkFinite(values: ArrayLike<number>, format: TensorFormat): void {
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i])) {
      throw new RangeError(`${format} value ${i}: expected a finite number, got ${values[i]}`);
    }
  }
}

function toF16Checked(values: ArrayLike<number>): Uint16Array {
  for (let i = 0; i < values.length; i++) {
    if (Math.abs(values[i]) >= 65520) {
      throw new RangeError(
        `f16 value ${i}: expected a magnitude below 65520 (f16 max ${F16_MAX}), got ${values[i]}`,
      );
    }
  }
  return Uint16Array.from(values, f32ToF16Bits);
}

let f16Table: Float32Array | undefined;

/** The value of f16 bits, from a 65536-entry table built on first use. */
function f16Value(bits: number): number {
  f16Table ??= fromF16(Uint16Array.from({ length: 65536 }, (_, i) => i));
  return f16Table[bits];
}

/** The largest magnitude in the block at `start`, and the value that has it (sign kept). */
function blockExtremes(values: ArrayLike<number>, start: number): { amax: number; max: number } {
  let amax = 0;
  let max = 0;
  for (let j = start; j < start + QUANT_BLOCK; j++) {
    if (Math.abs(values[j]) > amax) {
      amax = Math.abs(values[j]);
      max = values[j];
    }
  }
  return { amax, max };
}

function storeScale(format: TensorFormat, d: number, block: number, bytes: Uint8Array, at: number) {
  if (Math.abs(d) >= 65520) {
    throw new RangeError(
      `${format} block ${block}: scale ${d} exceeds f16's ${F16_MAX} (values too large to quantize)`,
    );
  }
  const bits = f32ToF16Bits(d);
  bytes[at] = bits & 0xff;
  bytes[at + 1] = bits >> 8;
}

/** ggml's `roundf`: to nearest, halves away from zero. */
function roundHalfAway(v: number): number {
  return v < 0 ? -Math.round(-v) : Math.round(v);
}

function quantizeQ8_0(values: ArrayLike<number>, bytes: Uint8Array): void {
  for (let b = 0; b < values.length / QUANT_BLOCK; b++) {
    const start = b * QUANT_BLOCK;
    const at = b * BLOCK_BYTES.q8_0;
    const d = Math.fround(blockExtremes(values, start).amax / 127);
    const inverse = d ? Math.fround(1 / d) : 0;
    storeScale("q8_0", d, b, bytes, at);
    for (let j = 0; j < QUANT_BLOCK; j++) {
      bytes[at + 2 + j] = roundHalfAway(Math.fround(values[start + j] * inverse)) & 0xff;
    }
  }
}

function quantizeQ4_0(values: ArrayLike<number>, bytes: Uint8Array): void {
  const half = QUANT_BLOCK / 2;
  for (let b = 0; b < values.length / QUANT_BLOCK; b++) {
    const start = b * QUANT_BLOCK;
    const at = b * BLOCK_BYTES.q4_0;
    const d = Math.fround(blockExtremes(values, start).max / -8);
    const inverse = d ? Math.fround(1 / d) : 0;
    storeScale("q4_0", d, b, bytes, at);
    const quant = (v: number) =>
      Math.min(15, Math.trunc(Math.fround(Math.fround(v * inverse) + 8.5)));
    for (let j = 0; j < half; j++) {
      bytes[at + 2 + j] = quant(values[start + j]) | (quant(values[start + half + j]) << 4);
    }
  }
}

function dequantizeBlockQ8_0(bytes: Uint8Array, at: number, out: Float32Array, to: number): void {
  const d = f16Value(bytes[at] | (bytes[at + 1] << 8));
  for (let j = 0; j < QUANT_BLOCK; j++) out[to + j] = ((bytes[at + 2 + j] << 24) >> 24) * d;
}

function dequantizeBlockQ4_0(bytes: Uint8Array, at: number, out: Float32Array, to: number): void {
  const d = f16Value(bytes[at] | (bytes[at + 1] << 8));
  const half = QUANT_BLOCK / 2;
  for (let j = 0; j < half; j++) {
    const byte = bytes[at + 2 + j];
    out[to + j] = ((byte & 0x0f) - 8) * d;
    out[to + half + j] = ((byte >> 4) - 8) * d;
  }
}
