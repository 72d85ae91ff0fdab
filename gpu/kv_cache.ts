/**
 * KV-cache append: writes the keys and values of `rows` tokens, `(rows, kvDim)` each, into the
 * per-layer caches `(maxSeqLen, kvDim)` at positions `state.pos + row`. Rows past `maxSeqLen`
 * are dropped (callers check the length before submitting).
 *
 * @module
 */
import { type Gpu, GpuError } from "./device.ts";
import { compileElementwise, elementwiseWgsl, type Kernel } from "./kernel.ts";
import type { KvFormat } from "../reference/kv_cache.ts";
import { batchRowWords } from "./batch_rows.ts";
import { EXACT, type KernelPair } from "./pair.ts";
import { createState } from "./state.ts";
import { Rng } from "../reference/random.ts";

export type { KvFormat };
import { toF16 } from "../reference/f16.ts";
import { dequantize, QUANT_BLOCK, quantize } from "../reference/quantize.ts";
import { STATE, stateBinding } from "./state.ts";
import { BATCH_ROW, batchRowsBinding } from "./batch_rows.ts";
import { EXACT_FLOAT_WGSL } from "./_exact_float.ts";

const WGSL = elementwiseWgsl(
  `override KV_DIM: u32;
override MAX_SEQ: u32;
@group(0) @binding(0) var<storage, read> k: array<f32>;
@group(0) @binding(1) var<storage, read> v: array<f32>;
@group(0) @binding(2) var<storage, read_write> keyCache: array<f32>;
@group(0) @binding(3) var<storage, read_write> valueCache: array<f32>;
${stateBinding(4)}`,
  `let pos = state[${STATE.pos}u] + i / KV_DIM;
  if (pos >= MAX_SEQ) { return; }
  let at = pos * KV_DIM + i % KV_DIM;
  keyCache[at] = k[i];
  valueCache[at] = v[i];`,
);

/** Shape of a {@linkcode kvAppendKernel}. */
export interface KvAppendShape {
  /** Tokens written at once. */
  rows: number;
  /** `nKvHeads · headDim`. */
  kvDim: number;
  /** Positions each cache holds. */
  maxSeqLen: number;
  /** How the cache stores keys and values (f32 by default; see {@linkcode kvCacheWords}). */
  format?: KvFormat;
}

/**
 * 32-bit words of one layer's key (or value) cache in `format`: f32 one per value; f16 two
 * values per word (low half first); Q8_0 the int8 quants, four per word, position after
 * position, then one word per 32-value block holding its f16-rounded scale as an f32 (so two
 * blocks never share a word: each append invocation owns its block). Q8_0 needs `kvDim` a
 * multiple of 32.
 *
 * @example
 * ```ts
 * import { kvCacheWords } from "./kv_cache.ts";
 * if (kvCacheWords("q8_0", 4, 64) !== 4 * 64 / 4 + 4 * 2) throw new Error("wrong");
 * ```
 */
export function kvCacheWords(format: KvFormat, maxSeqLen: number, kvDim: number): number {
  const values = maxSeqLen * kvDim;
  if (format === "f32") return values;
  if (kvDim % (format === "f16" ? 2 : QUANT_BLOCK) !== 0) {
    throw new GpuError(
      `KV cache ${format}`,
      `kvDim: expected a multiple of ${format === "f16" ? 2 : QUANT_BLOCK}, got ${kvDim}`,
    );
  }
  return format === "f16" ? values / 2 : values / 4 + values / QUANT_BLOCK;
}

/**
 * A cache's contents `(maxSeqLen, kvDim)` in the GPU layout of `format` (for uploads and
 * tests): each position quantized as the reference `KvCache` does.
 *
 * @example
 * ```ts
 * import { packKvCache } from "./kv_cache.ts";
 * if (packKvCache(new Float32Array([1, 2]), "f16", 2)[0] !== (0x4000 << 16 | 0x3c00)) throw new Error("wrong");
 * ```
 */
export function packKvCache(values: Float32Array, format: KvFormat, kvDim: number): Uint32Array {
  const maxSeqLen = values.length / kvDim;
  const words = new Uint32Array(kvCacheWords(format, maxSeqLen, kvDim));
  if (format === "f32") return new Uint32Array(values.slice().buffer);
  if (format === "f16") {
    const halves = toF16(values);
    for (let i = 0; i < words.length; i++) words[i] = halves[2 * i] | (halves[2 * i + 1] << 16);
    return words;
  }
  const bytes = new Uint8Array(words.buffer);
  const scales = new Float32Array(words.buffer, values.length, values.length / QUANT_BLOCK);
  const blocks = quantize(values, "q8_0");
  for (let b = 0; b < values.length / QUANT_BLOCK; b++) {
    const block = blocks.subarray(b * 34, b * 34 + 34);
    bytes.set(block.subarray(2), b * QUANT_BLOCK);
    scales[b] = dequantize(Uint8Array.of(block[0], block[1], 0, 0), "f16", 2)[0];
  }
  return words;
}

function appendWgsl(format: KvFormat): string {
  if (format === "f32") return WGSL;
  // Read as bits: the conversions below are integer arithmetic (_exact_float.ts), so the stored
  // halves, quants and scales are the CPU reference's on every GPU.
  const bindings = `override KV_DIM: u32;
override MAX_SEQ: u32;
@group(0) @binding(0) var<storage, read> k: array<u32>;
@group(0) @binding(1) var<storage, read> v: array<u32>;
@group(0) @binding(2) var<storage, read_write> keyCache: array<u32>;
@group(0) @binding(3) var<storage, read_write> valueCache: array<u32>;
${stateBinding(4)}
${EXACT_FLOAT_WGSL}`;
  if (format === "f16") {
    // Invocation i writes values 2i and 2i + 1: one word, no sharing.
    return elementwiseWgsl(
      bindings,
      `let first = 2u * i;
  let pos = state[${STATE.pos}u] + first / KV_DIM;
  if (pos >= MAX_SEQ) { return; }
  let at = (pos * KV_DIM + first % KV_DIM) / 2u;
  keyCache[at] = f16Bits(k[first]) | (f16Bits(k[first + 1u]) << 16u);
  valueCache[at] = f16Bits(v[first]) | (f16Bits(v[first + 1u]) << 16u);`,
    );
  }
  // Q8_0: invocation i quantizes block i of the new rows as ggml's quantize_row_q8_0_ref does:
  // d = max|x| / 127, quant = roundf(x · (1/d)), the scale stored f16-rounded (as an f32 word).
  // Division, roundf and the f16 rounding are exact, so quants on a rounding tie agree too.
  return elementwiseWgsl(
    bindings + `
fn quantizeBlock(src: u32, dst: u32, isKey: bool) {
  var amax = 0u; // |x| as bits: for non-negative floats integer order is numeric order
  for (var j = 0u; j < 32u; j++) {
    amax = max(amax, select(v[src + j], k[src + j], isKey) & 0x7fffffffu);
  }
  let d = exactDivide(amax, 0x42fe0000u); // 127.0
  let inverse = select(0u, exactDivide(0x3f800000u, d), d != 0u);
  // 1/d overflowing to infinity: ggml's roundf(x·inf) cast to int8 (and the reference) store 0.
  let zero = inverse >= 0x7f800000u;
  for (var w = 0u; w < 8u; w++) {
    var word = 0u;
    for (var b = 0u; b < 4u; b++) {
      let x = bitcast<f32>(select(v[src + 4u * w + b], k[src + 4u * w + b], isKey));
      let q = select(roundHalfAway(bitcast<u32>(x * bitcast<f32>(inverse))), 0, zero);
      word = word | ((u32(q) & 255u) << (8u * b));
    }
    if (isKey) { keyCache[dst / 4u + w] = word; } else { valueCache[dst / 4u + w] = word; }
  }
  let scale = f16ToF32Bits(f16Bits(d));
  let scaleAt = MAX_SEQ * KV_DIM / 4u + dst / 32u;
  if (isKey) { keyCache[scaleAt] = scale; } else { valueCache[scaleAt] = scale; }
}`,
    `let first = 32u * i;
  let pos = state[${STATE.pos}u] + first / KV_DIM;
  if (pos >= MAX_SEQ) { return; }
  let dst = pos * KV_DIM + first % KV_DIM;
  quantizeBlock(first, dst, true);
  quantizeBlock(first, dst, false);`,
  );
}

/**
 * Compiles the append. Bindings: `k, v (rows·kvDim)`, `keyCache, valueCache (maxSeqLen·kvDim)`,
 * `state` (u32; reads `pos`).
 *
 * @example
 * ```ts ignore
 * const append = await kvAppendKernel(gpu, { rows: 1, kvDim: 288, maxSeqLen: 256 });
 * await gpu.submit(append.bind({ k, v, keyCache, valueCache, state }));
 * ```
 */
export function kvAppendKernel(
  gpu: Gpu,
  shape: KvAppendShape,
): Promise<Kernel<"k" | "v" | "keyCache" | "valueCache" | "state">> {
  const { rows, kvDim, maxSeqLen, format = "f32" } = shape;
  kvCacheWords(format, 1, kvDim); // checks kvDim against the format
  const perInvocation = format === "f32" ? 1 : format === "f16" ? 2 : QUANT_BLOCK;
  return compileElementwise(
    gpu,
    `kvAppend ${format} ${rows}x${kvDim}`,
    appendWgsl(format),
    rows * kvDim / perInvocation,
    ["k", "v", "keyCache", "valueCache", "state"],
    { KV_DIM: kvDim, MAX_SEQ: maxSeqLen },
  );
}

const SCATTER_WGSL = elementwiseWgsl(
  `override KV_DIM: u32;
@group(0) @binding(0) var<storage, read> k: array<f32>;
@group(0) @binding(1) var<storage, read> v: array<f32>;
@group(0) @binding(2) var<storage, read_write> keyPool: array<f32>;
@group(0) @binding(3) var<storage, read_write> valuePool: array<f32>;
${batchRowsBinding(4)}`,
  `let at = batchRows[i / KV_DIM][${BATCH_ROW.slot}] * KV_DIM + i % KV_DIM;
  keyPool[at] = k[i];
  valuePool[at] = v[i];`,
);

/**
 * The KV write of batched decoding: each row's key and value, `(rows, kvDim)` each, go to the
 * pool row its entry in the step's row buffer names (`batch_rows.ts`), wherever its sequence's
 * layout put it. Bindings: `k, v`, `keyPool, valuePool (poolRows·kvDim)`, `rows`.
 *
 * @example
 * ```ts ignore
 * const write = await kvScatterKernel(gpu, { rows: 4, kvDim: 128 });
 * await gpu.submit(write.bind({ k, v, keyPool, valuePool, rows }));
 * ```
 */
export function kvScatterKernel(
  gpu: Gpu,
  shape: Omit<KvAppendShape, "maxSeqLen">,
): Promise<Kernel<"k" | "v" | "keyPool" | "valuePool" | "rows">> {
  const { rows, kvDim } = shape;
  return compileElementwise(
    gpu,
    `kvScatter ${rows}x${kvDim}`,
    SCATTER_WGSL,
    rows * kvDim,
    ["k", "v", "keyPool", "valuePool", "rows"],
    { KV_DIM: kvDim },
  );
}

// ─── Registry entries: these kernels against their reference (collected in `pairs.ts`) ───

/** Shape of the KV-cache append: `rows` tokens of `kvDim` written at `pos`. */
export interface KvAppendPairShape {
  /** Tokens (rows) in one call. */
  rows: number;
  /** Width of one key or value row. */
  kvDim: number;
  /** Positions each cache holds. */
  maxSeqLen: number;
  /** Position of the first row. */
  pos: number;
}

/** Appends `k, v (rows, kvDim)` to both caches at `state.pos`; rows past the end are dropped. */
export const KV_APPEND_PAIR: KernelPair<
  KvAppendPairShape,
  { k: Float32Array; v: Float32Array; keys: Float32Array; values: Float32Array }
> = {
  family: "kvAppend",
  describe: ({ rows, kvDim, maxSeqLen, pos }) => `${rows}x${kvDim} at ${pos} of ${maxSeqLen}`,
  inputs({ rows, kvDim, maxSeqLen, pos }) {
    const rng = new Rng(kvDim + pos);
    return {
      k: rng.uniformArray(rows * kvDim),
      v: rng.uniformArray(rows * kvDim),
      keys: rng.uniformArray(maxSeqLen * kvDim),
      values: rng.uniformArray(maxSeqLen * kvDim),
    };
  },
  reference({ rows, kvDim, maxSeqLen, pos }, { k, v, keys, values }) {
    const kept = Math.min(rows, maxSeqLen - pos) * kvDim;
    const out = new Float32Array(keys.length + values.length);
    out.set(keys);
    out.set(k.subarray(0, kept), pos * kvDim);
    out.set(values, keys.length);
    out.set(v.subarray(0, kept), keys.length + pos * kvDim);
    return out;
  },
  conformance: [
    { rows: 1, kvDim: 1, maxSeqLen: 1, pos: 0 },
    { rows: 7, kvDim: 33, maxSeqLen: 40, pos: 3 },
    { rows: 1, kvDim: 288, maxSeqLen: 16, pos: 15 },
    { rows: 3, kvDim: 256, maxSeqLen: 64, pos: 62 }, // the last row falls past maxSeqLen
  ],
  bench: {
    quick: [{ rows: 1, kvDim: 288, maxSeqLen: 256, pos: 255 }],
    full: [{ rows: 1, kvDim: 256, maxSeqLen: 2048, pos: 2047 }],
  },
  bytes: ({ rows, kvDim }) => 4 * 4 * rows * kvDim, // k and v read, written into the caches
  flops: () => 0,
  tolerance: EXACT,
  variants: [{
    name: "default",
    record: async (gpu, { rows, kvDim, maxSeqLen, pos }, { k, v, keys, values }, buffers) =>
      (await kvAppendKernel(gpu, { rows, kvDim, maxSeqLen })).bind({
        k: buffers.input(k),
        v: buffers.input(v),
        keyCache: buffers.output(keys.length, keys),
        valueCache: buffers.output(values.length, values),
        state: createState(gpu, { pos }),
      }),
  }],
};

/** Shape of the KV scatter: row `r`'s key and value to pool row `slots[r]`. */
export interface KvScatterPairShape {
  /** Each row's pool row. */
  slots: number[];
  /** Width of one key or value row. */
  kvDim: number;
  /** Rows of each pool. */
  poolRows: number;
}

/** Writes `k, v (rows, kvDim)` into both pools at each row's slot; other rows untouched. */
export const KV_SCATTER_PAIR: KernelPair<
  KvScatterPairShape,
  { k: Float32Array; v: Float32Array; keys: Float32Array; values: Float32Array }
> = {
  family: "kvScatter",
  describe: ({ slots, kvDim, poolRows }) =>
    `${slots.length}x${kvDim} to ${slots.join(",")} of ${poolRows}`,
  inputs({ slots, kvDim, poolRows }) {
    const rng = new Rng(kvDim + poolRows);
    return {
      k: rng.uniformArray(slots.length * kvDim),
      v: rng.uniformArray(slots.length * kvDim),
      keys: rng.uniformArray(poolRows * kvDim),
      values: rng.uniformArray(poolRows * kvDim),
    };
  },
  reference({ slots, kvDim }, { k, v, keys, values }) {
    const out = new Float32Array(keys.length + values.length);
    out.set(keys);
    out.set(values, keys.length);
    slots.forEach((slot, r) => {
      out.set(k.subarray(r * kvDim, (r + 1) * kvDim), slot * kvDim);
      out.set(v.subarray(r * kvDim, (r + 1) * kvDim), keys.length + slot * kvDim);
    });
    return out;
  },
  conformance: [
    { slots: [0], kvDim: 1, poolRows: 1 },
    { slots: [6, 2, 0, 4], kvDim: 33, poolRows: 8 },
    { slots: [130, 17, 64], kvDim: 256, poolRows: 160 },
  ],
  bench: {
    quick: [{ slots: [3, 0, 7, 5], kvDim: 288, poolRows: 8 }],
    full: [{ slots: Array.from({ length: 16 }, (_, r) => 257 * r), kvDim: 512, poolRows: 4096 }],
  },
  bytes: ({ slots, kvDim }) => 4 * 4 * slots.length * kvDim,
  flops: () => 0,
  tolerance: EXACT,
  variants: [{
    name: "default",
    record: async (gpu, { slots, kvDim }, { k, v, keys, values }, buffers) =>
      (await kvScatterKernel(gpu, { rows: slots.length, kvDim })).bind({
        k: buffers.input(k),
        v: buffers.input(v),
        keyPool: buffers.output(keys.length, keys),
        valuePool: buffers.output(values.length, values),
        rows: buffers.input(
          batchRowWords(slots.map((slot) => ({ pos: 0, slot, table: 0, start: 0 }))),
        ),
      }),
  }],
};
