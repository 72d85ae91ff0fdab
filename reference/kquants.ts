/**
 * ggml's K-quants, the formats of most GGUF files people download (`Q4_K_M`, `Q5_K_M`), in
 * their exact byte layouts. Each stores super-blocks of {@linkcode K_SUPER_BLOCK} = 256 values:
 *
 * - `q4_k` (`block_q4_K`, 144 bytes): f16 `d`, f16 `dmin`, 12 bytes of packed 6-bit scales
 *   and mins for 8 sub-blocks of 32, then 128 bytes of 4-bit quants. Value =
 *   `(d·sc)·q − dmin·m`. Quant byte `32c + l` holds value `64c + l` (sub-block `2c`) in its low
 *   nibble and value `64c + 32 + l` (sub-block `2c + 1`) in its high nibble.
 * - `q5_k` (`block_q5_K`, 176 bytes): `d`, `dmin`, the same 12 scale bytes, 32 bytes `qh` of
 *   fifth bits, then `q4_k`'s 128 nibble bytes: value `64c + l` adds `16·bit(qh[l], 2c)`, value
 *   `64c + 32 + l` adds `16·bit(qh[l], 2c + 1)`.
 * - `q6_k` (`block_q6_K`, 210 bytes): 128 bytes `ql` of low nibbles, 64 bytes `qh` of high
 *   2-bit pairs, 16 `int8` scales (one per 16 values), then f16 `d`. Value = `(d·sc)·(q − 32)`.
 *   In each half `h` (128 values), `ql[64h + l]` holds values `l` (low nibble) and `l + 64`
 *   (high); `ql[64h + 32 + l]` values `l + 32` and `l + 96`; `qh[32h + l]` bits `2k..2k+1` are
 *   value `l + 32k`'s high bits.
 *
 * Sub-block `j`'s 6-bit scale and min (`get_scale_min_k4`): for `j < 4`, `scales[j] & 63` and
 * `scales[j + 4] & 63`; otherwise the low nibble (scale) and high nibble (min) of
 * `scales[j + 4]`, with bits 4–5 from the top two bits of `scales[j − 4]` (scale) and
 * `scales[j]` (min).
 *
 * Dequantization is bit-exact with ggml's `dequantize_row_q*_K` and gguf-py's `quants.py`
 * (float32 products in their order). Quantization follows ggml's reference quantizers
 * (`quantize_row_q4_K_ref`, `_q5_K_ref`, `_q6_K_ref`: a weighted search for each sub-block's
 * scale and min, then 6-bit or int8 scales relative to the super-block's f16 `d`), in float32
 * arithmetic; it may differ from ggml in the last bit of a search, never in the layout.
 *
 * @module
 */
import { checkInteger, checkLength } from "./checks.ts";
import { F16_MAX, f32ToF16Bits, fromF16 } from "./f16.ts";

/** A K-quant format. */
export type KQuantFormat = "q4_k" | "q5_k" | "q6_k";

/** Every {@linkcode KQuantFormat}, widest last. */
export const K_QUANT_FORMATS: readonly KQuantFormat[] = ["q4_k", "q5_k", "q6_k"];

/** Values per K-quant super-block (ggml's `QK_K`). */
export const K_SUPER_BLOCK = 256;

/** Bytes per super-block, by format (`sizeof(block_q4_K)` etc.). */
export const K_BLOCK_BYTES: Readonly<Record<KQuantFormat, number>> = {
  q4_k: 144,
  q5_k: 176,
  q6_k: 210,
};

/** ggml's type ids of the K-quant formats (`GGML_TYPE_Q4_K` = 12, …). */
export const K_QUANT_GGML_TYPES: Readonly<Record<KQuantFormat, number>> = {
  q4_k: 12,
  q5_k: 13,
  q6_k: 14,
};

/**
 * Whether `format` is a K-quant format.
 *
 * @example
 * ```ts
 * import { isKQuantFormat } from "./kquants.ts";
 * if (!isKQuantFormat("q6_k") || isKQuantFormat("q4_0")) throw new Error("wrong");
 * ```
 */
export function isKQuantFormat(format: string): format is KQuantFormat {
  return (K_QUANT_FORMATS as readonly string[]).includes(format);
}

/**
 * Bytes that `count` values take in `format`; throws unless `count` is a multiple of 256.
 *
 * @example
 * ```ts
 * import { kQuantBytes } from "./kquants.ts";
 * if (kQuantBytes("q6_k", 512) !== 420) throw new Error("wrong");
 * ```
 */
export function kQuantBytes(format: KQuantFormat, count: number): number {
  checkKQuantFormat(format);
  checkInteger(`${format} value count`, count, 0);
  if (count % K_SUPER_BLOCK !== 0) {
    throw new RangeError(
      `${format}: value count must be a multiple of the ${K_SUPER_BLOCK}-value super-block, got ${count}`,
    );
  }
  return (count / K_SUPER_BLOCK) * K_BLOCK_BYTES[format];
}

/**
 * Sub-block `j`'s (0..7) 6-bit scale and min from the 12 scale bytes of a `q4_k`/`q5_k`
 * super-block starting at `at` (ggml's `get_scale_min_k4`).
 *
 * @example
 * ```ts
 * import { kQuantScaleMin } from "./kquants.ts";
 * const scales = new Uint8Array(12);
 * scales[0] = 0xc5; // sub-block 0's scale 5; its top bits are sub-block 4's scale bits 4-5
 * scales[8] = 0x21; // sub-block 4: scale low nibble 1, min low nibble 2
 * const [sc, m] = kQuantScaleMin(scales, 0, 4);
 * if (sc !== 0x31 || m !== 2 || kQuantScaleMin(scales, 0, 0)[0] !== 5) throw new Error("wrong");
 * ```
 */
export function kQuantScaleMin(bytes: Uint8Array, at: number, j: number): [number, number] {
  if (j < 4) return [bytes[at + j] & 63, bytes[at + j + 4] & 63];
  return [
    (bytes[at + j + 4] & 0xf) | ((bytes[at + j - 4] >> 6) << 4),
    (bytes[at + j + 4] >> 4) | ((bytes[at + j] >> 6) << 4),
  ];
}

/**
 * Reads `count` values stored in `format` from `bytes` (which must hold exactly that many),
 * bit-exactly as ggml and gguf-py do.
 *
 * @example
 * ```ts
 * import { dequantizeKQuant } from "./kquants.ts";
 * const block = new Uint8Array(210); // q6_k: every quant 33 (ql 1, qh 2), scales 2, d 0.25
 * block.fill(0x11, 0, 128);
 * block.fill(0xaa, 128, 192);
 * block.fill(2, 192, 208);
 * block[209] = 0x34; // f16 0x3400 = 0.25
 * if (dequantizeKQuant(block, "q6_k", 256).some((v) => v !== 0.5)) throw new Error("wrong");
 * ```
 */
export function dequantizeKQuant(
  bytes: Uint8Array,
  format: KQuantFormat,
  count: number,
): Float32Array {
  checkLength(`${format} bytes for ${count} values`, bytes, kQuantBytes(format, count));
  const out = new Float32Array(count);
  const blockBytes = K_BLOCK_BYTES[format];
  for (let b = 0; b < count / K_SUPER_BLOCK; b++) {
    dequantizeKBlock(bytes, format, b * blockBytes, out, b * K_SUPER_BLOCK);
  }
  return out;
}

/**
 * Dequantizes the one super-block of `format` at byte `at` of `bytes` into 256 values of
 * `out` from `to`.
 *
 * @example
 * ```ts
 * import { dequantizeKBlock } from "./kquants.ts";
 * const block = new Uint8Array(144); // q4_k: d = 1, dmin = 0, sub-block 0 scale 1, quants 3
 * block[1] = 0x3c;
 * block[4] = 1;
 * block.fill(0x33, 16);
 * const out = new Float32Array(256);
 * dequantizeKBlock(block, "q4_k", 0, out, 0);
 * if (out[0] !== 3 || out[31] !== 3 || out[32] !== 0) throw new Error("wrong");
 * ```
 */
export function dequantizeKBlock(
  bytes: Uint8Array,
  format: KQuantFormat,
  at: number,
  out: Float32Array,
  to: number,
): void {
  const f16 = f16Table();
  if (format === "q6_k") {
    const d = f16[bytes[at + 208] | (bytes[at + 209] << 8)];
    for (let h = 0; h < 2; h++) {
      const ql = at + 64 * h;
      const qh = at + 128 + 32 * h;
      const sc = at + 192 + 8 * h;
      const o = to + 128 * h;
      for (let l = 0; l < 32; l++) {
        const s = l >> 4;
        const high = bytes[qh + l];
        const q1 = ((bytes[ql + l] & 0xf) | ((high & 3) << 4)) - 32;
        const q2 = ((bytes[ql + l + 32] & 0xf) | (((high >> 2) & 3) << 4)) - 32;
        const q3 = ((bytes[ql + l] >> 4) | (((high >> 4) & 3) << 4)) - 32;
        const q4 = ((bytes[ql + l + 32] >> 4) | (((high >> 6) & 3) << 4)) - 32;
        out[o + l] = Math.fround(d * ((bytes[sc + s] << 24) >> 24)) * q1;
        out[o + l + 32] = Math.fround(d * ((bytes[sc + s + 2] << 24) >> 24)) * q2;
        out[o + l + 64] = Math.fround(d * ((bytes[sc + s + 4] << 24) >> 24)) * q3;
        out[o + l + 96] = Math.fround(d * ((bytes[sc + s + 6] << 24) >> 24)) * q4;
      }
    }
    return;
  }
  const d = f16[bytes[at] | (bytes[at + 1] << 8)];
  const dmin = f16[bytes[at + 2] | (bytes[at + 3] << 8)];
  const five = format === "q5_k";
  const qh = at + 16;
  const qs = at + (five ? 48 : 16);
  for (let c = 0; c < 4; c++) {
    const [sc1, m1] = kQuantScaleMin(bytes, at + 4, 2 * c);
    const [sc2, m2] = kQuantScaleMin(bytes, at + 4, 2 * c + 1);
    const d1 = Math.fround(d * sc1);
    const min1 = Math.fround(dmin * m1);
    const d2 = Math.fround(d * sc2);
    const min2 = Math.fround(dmin * m2);
    const o = to + 64 * c;
    for (let l = 0; l < 32; l++) {
      const byte = bytes[qs + 32 * c + l];
      let lo = byte & 0xf;
      let hi = byte >> 4;
      if (five) {
        const bits = bytes[qh + l] >> (2 * c);
        lo |= (bits & 1) << 4;
        hi |= (bits & 2) << 3;
      }
      // Each product rounds to float32 before the subtraction, as in ggml and numpy.
      out[o + l] = Math.fround(d1 * lo) - min1;
      out[o + 32 + l] = Math.fround(d2 * hi) - min2;
    }
  }
}

/**
 * Stores `values` in `format` (ggml's reference quantizers; see the module documentation).
 * Throws, naming the index, on a non-finite value, on a super-block whose scale would overflow
 * f16, and unless the count is a multiple of 256.
 *
 * @example
 * ```ts
 * import { dequantizeKQuant, quantizeKQuant } from "./kquants.ts";
 * const x = Float32Array.from({ length: 256 }, (_, i) => Math.sin(i));
 * const y = dequantizeKQuant(quantizeKQuant(x, "q6_k"), "q6_k", 256);
 * if (x.some((v, i) => Math.abs(v - y[i]) > 0.02)) throw new Error("wrong");
 * ```
 */
export function quantizeKQuant(values: ArrayLike<number>, format: KQuantFormat): Uint8Array {
  const bytes = new Uint8Array(kQuantBytes(format, values.length));
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i])) {
      throw new RangeError(`${format} value ${i}: expected a finite number, got ${values[i]}`);
    }
  }
  const x = Float32Array.from(values);
  const blockBytes = K_BLOCK_BYTES[format];
  for (let b = 0; b < values.length / K_SUPER_BLOCK; b++) {
    const block = x.subarray(b * K_SUPER_BLOCK, (b + 1) * K_SUPER_BLOCK);
    const out = bytes.subarray(b * blockBytes, (b + 1) * blockBytes);
    if (format === "q6_k") quantizeBlockQ6K(block, out, b);
    else quantizeBlockQ45K(block, out, format, b);
  }
  return bytes;
}

/**
 * `out = W · x` with `w: (outDim, inDim)` stored in `format` (rows of whole super-blocks):
 * each weight dequantized exactly, products accumulated in double precision, the oracle for
 * the K-quant kernels.
 *
 * @example
 * ```ts
 * import { matvecKQuant, quantizeKQuant } from "./kquants.ts";
 * const w = quantizeKQuant(new Float32Array(512).fill(0.5), "q4_k"); // (2, 256)
 * const y = matvecKQuant(w, "q4_k", new Float32Array(256).fill(1), 2, 256);
 * if (Math.abs(y[0] - 128) > 0.5 || Math.abs(y[1] - 128) > 0.5) throw new Error("wrong");
 * ```
 */
export function matvecKQuant(
  w: Uint8Array,
  format: KQuantFormat,
  x: Float32Array,
  outDim: number,
  inDim: number,
): Float32Array {
  checkInteger("outDim", outDim);
  checkInteger("inDim", inDim);
  const rowBytes = kQuantBytes(format, inDim);
  checkLength(
    `matvecKQuant w (${outDim} rows of ${rowBytes} ${format} bytes)`,
    w,
    outDim * rowBytes,
  );
  checkLength("matvecKQuant x (inDim)", x, inDim);
  const out = new Float32Array(outDim);
  const row = new Float32Array(inDim);
  const blockBytes = K_BLOCK_BYTES[format];
  for (let r = 0; r < outDim; r++) {
    for (let b = 0; b < inDim / K_SUPER_BLOCK; b++) {
      dequantizeKBlock(w, format, r * rowBytes + b * blockBytes, row, b * K_SUPER_BLOCK);
    }
    let sum = 0;
    for (let c = 0; c < inDim; c++) sum += row[c] * x[c];
    out[r] = sum;
  }
  return out;
}

/**
 * Per-value bound on `|x − dequantize(quantize(x))|` given the stored super-blocks `bytes` of
 * `values`: each value is within half a step of its sub-block's grid (plus float32 rounding,
 * 2⁻²⁰ relative), or, where the 6-bit (int8 for `q6_k`) scales leave it outside the grid's
 * range, within its distance to the range's nearer end. A test that this holds checks that
 * every quant is the nearest one and sits where the layout says.
 *
 * @example
 * ```ts
 * import { dequantizeKQuant, kQuantErrorBound, quantizeKQuant } from "./kquants.ts";
 * const x = Float32Array.from({ length: 256 }, (_, i) => Math.cos(i));
 * const bytes = quantizeKQuant(x, "q4_k");
 * const y = dequantizeKQuant(bytes, "q4_k", 256);
 * const bound = kQuantErrorBound(x, bytes, "q4_k");
 * if (x.some((v, i) => Math.abs(v - y[i]) > bound[i])) throw new Error("wrong");
 * ```
 */
export function kQuantErrorBound(
  values: ArrayLike<number>,
  bytes: Uint8Array,
  format: KQuantFormat,
): Float64Array {
  checkLength(
    `${format} bytes for ${values.length} values`,
    bytes,
    kQuantBytes(format, values.length),
  );
  const f16 = f16Table();
  const bound = new Float64Array(values.length);
  const blockBytes = K_BLOCK_BYTES[format];
  const epsilon = 2 ** -20;
  for (let b = 0; b < values.length / K_SUPER_BLOCK; b++) {
    const at = b * blockBytes;
    const start = b * K_SUPER_BLOCK;
    if (format === "q6_k") {
      const d = f16[bytes[at + 208] | (bytes[at + 209] << 8)];
      for (let s = 0; s < 16; s++) {
        const step = Math.abs(d * ((bytes[at + 192 + s] << 24) >> 24));
        // Quants −32..31 reach from −32·step to 31·step (sign of the scale either way).
        for (let i = start + 16 * s; i < start + 16 * s + 16; i++) {
          const x = Math.abs(values[i]);
          const outside = Math.max(0, x - 31 * step);
          bound[i] = Math.max(step / 2, outside) + (x + step) * epsilon;
        }
      }
      continue;
    }
    const d = f16[bytes[at] | (bytes[at + 1] << 8)];
    const dmin = f16[bytes[at + 2] | (bytes[at + 3] << 8)];
    const top = format === "q5_k" ? 31 : 15;
    for (let j = 0; j < 8; j++) {
      const [sc, m] = kQuantScaleMin(bytes, at + 4, j);
      const step = d * sc;
      const lowest = -dmin * m;
      const highest = step * top + lowest;
      for (let i = start + 32 * j; i < start + 32 * j + 32; i++) {
        const x = values[i];
        const outside = Math.max(0, lowest - x, x - highest);
        bound[i] = Math.max(step / 2, outside) + (Math.abs(x) + Math.abs(lowest) + step) * epsilon;
      }
    }
  }
  return bound;
}

function checkKQuantFormat(format: KQuantFormat): void {
  if (!isKQuantFormat(format)) {
    throw new RangeError(
      `format: expected one of ${K_QUANT_FORMATS.join(", ")}, got "${format}"`,
    );
  }
}

let f16Values: Float32Array | undefined;

/** Every f16 bit pattern's value, built on first use. */
function f16Table(): Float32Array {
  f16Values ??= fromF16(Uint16Array.from({ length: 65536 }, (_, i) => i));
  return f16Values;
}

const fr = Math.fround;
/** ggml's `GROUP_MAX_EPS`: below it a group counts as all zero. */
const GROUP_MAX_EPS = fr(1e-15);

/** ggml's `nearest_int`: float32 round to nearest, ties to even (valid for |v| < 2²²). */
function nearestInt(v: number): number {
  return fr(fr(v) + 12582912) - 12582912;
}

function storeF16(value: number, what: string, bytes: Uint8Array, at: number): void {
  if (!(Math.abs(value) < 65520)) {
    throw new RangeError(
      `${what} ${value} exceeds f16's ${F16_MAX} (values too large to quantize)`,
    );
  }
  const bits = f32ToF16Bits(value);
  bytes[at] = bits & 0xff;
  bytes[at + 1] = bits >> 8;
}

/**
 * ggml's `make_qkx2_quants`: quants `0..nmax` and a scale and min for one sub-block, the
 * weighted least-squares best over `nstep + 1` trial scales. Returns `[scale, −min]`.
 */
function makeQkx2Quants(
  nmax: number,
  x: Float32Array,
  weights: Float32Array,
  quants: Uint8Array,
  rmin: number,
  rdelta: number,
  nstep: number,
): [number, number] {
  const n = x.length;
  let min = x[0];
  let max = x[0];
  let sumW = weights[0];
  let sumX = fr(sumW * x[0]);
  for (let i = 1; i < n; i++) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    sumW = fr(sumW + weights[i]);
    sumX = fr(sumX + fr(weights[i] * x[i]));
  }
  if (min > 0) min = 0;
  if (max === min) {
    quants.fill(0);
    return [0, -min];
  }
  let iscale = fr(nmax / fr(max - min));
  let scale = fr(1 / iscale);
  let bestError = 0;
  for (let i = 0; i < n; i++) {
    const l = Math.max(0, Math.min(nmax, nearestInt(fr(iscale * fr(x[i] - min)))));
    quants[i] = l;
    const diff = fr(fr(fr(scale * l) + min) - x[i]);
    bestError = fr(bestError + fr(weights[i] * fr(diff * diff)));
  }
  const trial = new Uint8Array(n);
  for (let is = 0; is <= nstep; is++) {
    iscale = fr(fr(fr(rmin + fr(rdelta * is)) + nmax) / fr(max - min));
    let sumL = 0;
    let sumL2 = 0;
    let sumXL = 0;
    for (let i = 0; i < n; i++) {
      const l = Math.max(0, Math.min(nmax, nearestInt(fr(iscale * fr(x[i] - min)))));
      trial[i] = l;
      const w = weights[i];
      sumL = fr(sumL + fr(w * l));
      sumL2 = fr(sumL2 + fr(fr(w * l) * l));
      sumXL = fr(sumXL + fr(fr(w * l) * x[i]));
    }
    const det = fr(fr(sumW * sumL2) - fr(sumL * sumL));
    if (det > 0) {
      let thisScale = fr(fr(fr(sumW * sumXL) - fr(sumX * sumL)) / det);
      let thisMin = fr(fr(fr(sumL2 * sumX) - fr(sumL * sumXL)) / det);
      if (thisMin > 0) {
        thisMin = 0;
        thisScale = fr(sumXL / sumL2);
      }
      let error = 0;
      for (let i = 0; i < n; i++) {
        const diff = fr(fr(fr(thisScale * trial[i]) + thisMin) - x[i]);
        error = fr(error + fr(weights[i] * fr(diff * diff)));
      }
      if (error < bestError) {
        quants.set(trial);
        bestError = error;
        scale = thisScale;
        min = thisMin;
      }
    }
  }
  return [scale, -min];
}

/** ggml's `quantize_row_q4_K_ref` / `quantize_row_q5_K_ref` for one super-block. */
function quantizeBlockQ45K(
  x: Float32Array,
  out: Uint8Array,
  format: KQuantFormat,
  block: number,
): void {
  const five = format === "q5_k";
  const nmax = five ? 31 : 15;
  const quants = new Uint8Array(K_SUPER_BLOCK);
  const scales = new Float32Array(8);
  const mins = new Float32Array(8);
  const weights = new Float32Array(32);
  let maxScale = 0;
  let maxMin = 0;
  for (let j = 0; j < 8; j++) {
    const sub = x.subarray(32 * j, 32 * j + 32);
    let sumX2 = 0;
    for (let l = 0; l < 32; l++) sumX2 = fr(sumX2 + fr(sub[l] * sub[l]));
    const average = fr(Math.sqrt(fr(sumX2 / 32)));
    for (let l = 0; l < 32; l++) weights[l] = fr(average + Math.abs(sub[l]));
    [scales[j], mins[j]] = makeQkx2Quants(
      nmax,
      sub,
      weights,
      quants.subarray(32 * j, 32 * j + 32),
      five ? -0.5 : -1,
      fr(0.1),
      five ? 15 : 20,
    );
    if (scales[j] > maxScale) maxScale = scales[j];
    if (mins[j] > maxMin) maxMin = mins[j];
  }
  const inverseScale = maxScale > 0 ? fr(63 / maxScale) : 0;
  const inverseMin = maxMin > 0 ? fr(63 / maxMin) : 0;
  for (let j = 0; j < 8; j++) {
    const ls = Math.min(63, nearestInt(fr(inverseScale * scales[j])) & 0xff);
    const lm = Math.min(63, nearestInt(fr(inverseMin * mins[j])) & 0xff);
    if (j < 4) {
      out[4 + j] = ls;
      out[4 + j + 4] = lm;
    } else {
      out[4 + j + 4] = (ls & 0xf) | ((lm & 0xf) << 4);
      out[4 + j - 4] |= (ls >> 4) << 6;
      out[4 + j] |= (lm >> 4) << 6;
    }
  }
  storeF16(fr(maxScale / 63), `${format} block ${block}: scale`, out, 0);
  storeF16(fr(maxMin / 63), `${format} block ${block}: min`, out, 2);
  const f16 = f16Table();
  const d = f16[out[0] | (out[1] << 8)];
  const dmin = f16[out[2] | (out[3] << 8)];
  for (let j = 0; j < 8; j++) {
    const [sc, m] = kQuantScaleMin(out, 4, j);
    const step = fr(d * sc);
    if (!step) continue;
    const offset = fr(dmin * m);
    for (let i = 32 * j; i < 32 * j + 32; i++) {
      quants[i] = Math.max(0, Math.min(nmax, nearestInt(fr(fr(x[i] + offset) / step))));
    }
  }
  const qs = five ? 48 : 16;
  for (let c = 0; c < 4; c++) {
    for (let l = 0; l < 32; l++) {
      let lo = quants[64 * c + l];
      let hi = quants[64 * c + 32 + l];
      if (five) {
        if (lo > 15) {
          lo -= 16;
          out[16 + l] |= 1 << (2 * c);
        }
        if (hi > 15) {
          hi -= 16;
          out[16 + l] |= 2 << (2 * c);
        }
      }
      out[qs + 32 * c + l] = lo | (hi << 4);
    }
  }
}

/**
 * ggml's `make_qx_quants` with `rmse_type` 1 (weights x²): signed quants `−nmax..nmax−1` and
 * the best of 19 trial scales. Writes quants offset by `nmax`; returns the scale.
 */
function makeQxQuants(nmax: number, x: Float32Array, quants: Uint8Array): number {
  const n = x.length;
  let max = 0;
  let amax = 0;
  for (let i = 0; i < n; i++) {
    const ax = Math.abs(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  if (amax < GROUP_MAX_EPS) {
    quants.fill(0);
    return 0;
  }
  const clamp = (l: number) => Math.max(-nmax, Math.min(nmax - 1, l));
  const sums = (iscale: number): [number, number] => {
    let sumLX = 0;
    let sumL2 = 0;
    for (let i = 0; i < n; i++) {
      const l = clamp(nearestInt(fr(iscale * x[i])));
      const w = fr(x[i] * x[i]);
      sumLX = fr(sumLX + fr(fr(w * x[i]) * l));
      sumL2 = fr(sumL2 + fr(fr(w * l) * l));
    }
    return [sumLX, sumL2];
  };
  const store = (iscale: number) => {
    for (let i = 0; i < n; i++) quants[i] = nmax + clamp(nearestInt(fr(iscale * x[i])));
  };
  let iscale = fr(-nmax / max);
  store(iscale);
  let [sumLX, sumL2] = sums(iscale);
  let scale = sumL2 ? fr(sumLX / sumL2) : 0;
  let best = fr(scale * sumLX);
  for (let is = -9; is <= 9; is++) {
    if (is === 0) continue;
    iscale = fr(-fr(nmax + fr(fr(0.1) * is)) / max);
    [sumLX, sumL2] = sums(iscale);
    if (sumL2 > 0 && fr(sumLX * sumLX) > fr(best * sumL2)) {
      store(iscale);
      scale = fr(sumLX / sumL2);
      best = fr(scale * sumLX);
    }
  }
  return scale;
}

/** ggml's `quantize_row_q6_K_ref` for one super-block. */
function quantizeBlockQ6K(x: Float32Array, out: Uint8Array, block: number): void {
  const quants = new Uint8Array(K_SUPER_BLOCK);
  const scales = new Float32Array(16);
  let maxScale = 0;
  let maxAbsScale = 0;
  for (let s = 0; s < 16; s++) {
    scales[s] = makeQxQuants(32, x.subarray(16 * s, 16 * s + 16), quants.subarray(16 * s));
    if (Math.abs(scales[s]) > maxAbsScale) {
      maxAbsScale = Math.abs(scales[s]);
      maxScale = scales[s];
    }
  }
  if (maxAbsScale < GROUP_MAX_EPS) {
    out.fill(0);
    return;
  }
  const iscale = fr(-128 / maxScale);
  storeF16(fr(1 / iscale), `q6_k block ${block}: scale`, out, 208);
  for (let s = 0; s < 16; s++) {
    out[192 + s] = Math.min(127, nearestInt(fr(iscale * scales[s]))) & 0xff;
  }
  const d = f16Table()[out[208] | (out[209] << 8)];
  for (let s = 0; s < 16; s++) {
    const step = fr(d * ((out[192 + s] << 24) >> 24));
    if (!step) continue;
    for (let i = 16 * s; i < 16 * s + 16; i++) {
      quants[i] = Math.max(-32, Math.min(31, nearestInt(fr(x[i] / step)))) + 32;
    }
  }
  for (let h = 0; h < 2; h++) {
    for (let l = 0; l < 32; l++) {
      const q = (k: number) => quants[128 * h + 32 * k + l];
      out[64 * h + l] = (q(0) & 0xf) | ((q(2) & 0xf) << 4);
      out[64 * h + 32 + l] = (q(1) & 0xf) | ((q(3) & 0xf) << 4);
      out[128 + 32 * h + l] = (q(0) >> 4) | ((q(1) >> 4) << 2) | ((q(2) >> 4) << 4) |
        ((q(3) >> 4) << 6);
    }
  }
}
