/**
 * llama2.c checkpoints: the legacy format (seven int32 header fields; negative vocab size for a
 * separate classifier; an unused RoPE table) and the versioned format (`ak42` magic, version 1,
 * fp32). Reading validates everything and names the file in every error.
 *
 * @module
 */
import { headDim, type LlamaConfig, makeConfig } from "../config.ts";
import { readBoundedFile } from "./_file.ts";
import { checkWeightsFitMemory } from "../memory.ts";
import {
  checkWeights,
  layerTensorSizes,
  type LayerWeights,
  type LlamaWeights,
  parameterCount,
} from "../weights.ts";

/** The two fp32 layouts llama2.c writes. */
export type CheckpointFormat = "legacy" | "v1";

/** A checkpoint read into memory. */
export interface Checkpoint {
  /** Which layout the file used. */
  format: CheckpointFormat;
  /** The configuration from its header (RoPE theta and eps at llama2.c's defaults). */
  config: LlamaConfig;
  /** The weights, views into the file's bytes. */
  weights: LlamaWeights;
}

/** `ak42` read as a little-endian uint32. */
export const CHECKPOINT_MAGIC = 0x616b3432;
const LEGACY_HEADER_BYTES = 7 * 4;
const V1_HEADER_BYTES = 256;
const LAYER_ORDER: (keyof LayerWeights)[] = [
  "attentionNorm",
  "wq",
  "wk",
  "wv",
  "wo",
  "ffnNorm",
  "w1",
  "w2",
  "w3",
];
const V1_LAYER_ORDER: (keyof LayerWeights)[] = ["wq", "wk", "wv", "wo", "w1", "w2", "w3"];

/**
 * Parses a checkpoint from its bytes; `source` (the file name) prefixes every error. Rejects a
 * wrong magic or version, a size other than the header implies (expected vs actual bytes),
 * inconsistent dimensions, and NaN or Inf weights.
 *
 * @example
 * ```ts
 * import { makeConfig } from "../config.ts";
 * import { randomWeights } from "../weights.ts";
 * import { parseCheckpoint, serializeCheckpoint } from "./llama2c.ts";
 * const config = makeConfig({ dim: 8, hiddenDim: 12, nLayers: 1, nHeads: 2, nKvHeads: 1, vocabSize: 5, maxSeqLen: 4 });
 * const bytes = serializeCheckpoint(config, randomWeights(config), "v1");
 * if (parseCheckpoint(bytes).config.dim !== 8) throw new Error("wrong");
 * ```
 */
export function parseCheckpoint(bytes: Uint8Array, source = "checkpoint"): Checkpoint {
  const layout = checkpointLayout(bytes, source);
  checkSize(bytes.byteLength, layout, source);
  const { config } = layout;
  const take = floatReader(floatView(bytes, layout.headerBytes, layout.floats));
  const sizes = layerTensorSizes(config);
  let weights: LlamaWeights;
  if (layout.format === "legacy") {
    const tokenEmbedding = take(config.vocabSize * config.dim);
    const perLayer = Object.fromEntries(
      LAYER_ORDER.map((name) => [name, take(config.nLayers * sizes[name])]),
    );
    const finalNorm = take(config.dim);
    take(config.maxSeqLen * headDim(config)); // freq_cis_real and _imag, unused
    const classifier = config.sharedClassifier
      ? tokenEmbedding
      : take(config.vocabSize * config.dim);
    weights = { tokenEmbedding, layers: splitLayers(config, perLayer), finalNorm, classifier };
  } else {
    const attentionNorm = take(config.nLayers * config.dim);
    const ffnNorm = take(config.nLayers * config.dim);
    const finalNorm = take(config.dim);
    const tokenEmbedding = take(config.vocabSize * config.dim);
    const perLayer: Record<string, Float32Array> = { attentionNorm, ffnNorm };
    for (const name of V1_LAYER_ORDER) perLayer[name] = take(config.nLayers * sizes[name]);
    const classifier = config.sharedClassifier
      ? tokenEmbedding
      : take(config.vocabSize * config.dim);
    weights = { tokenEmbedding, layers: splitLayers(config, perLayer), finalNorm, classifier };
  }
  checkWeights(config, weights, source);
  return { format: layout.format, config, weights };
}

/** What a checkpoint's header says: its format, configuration and size. */
export interface CheckpointLayout {
  /** Which layout the file uses. */
  format: CheckpointFormat;
  /** The configuration from the header. */
  config: LlamaConfig;
  /** Bytes before the first float. */
  headerBytes: number;
  /** Floats after the header (the legacy RoPE table included). */
  floats: number;
  /** The file's size the header implies: `headerBytes + 4·floats`. */
  expectedBytes: number;
}

/** The most bytes {@linkcode checkpointLayout} reads: the version 1 header. */
export const CHECKPOINT_HEADER_BYTES: number = V1_HEADER_BYTES;

/**
 * Reads a checkpoint's header (the first {@linkcode CHECKPOINT_HEADER_BYTES} bytes suffice) and
 * validates it, without the weights: the format, the configuration and the file size it
 * implies. Errors name `source` and the field.
 *
 * @example
 * ```ts
 * import { makeConfig } from "../config.ts";
 * import { randomWeights } from "../weights.ts";
 * import { checkpointLayout, serializeCheckpoint } from "./llama2c.ts";
 * const config = makeConfig({ dim: 8, hiddenDim: 12, nLayers: 1, nHeads: 2, nKvHeads: 1, vocabSize: 5, maxSeqLen: 4 });
 * const bytes = serializeCheckpoint(config, randomWeights(config), "v1");
 * if (checkpointLayout(bytes.subarray(0, 256)).expectedBytes !== bytes.length) throw new Error("wrong");
 * ```
 */
export function checkpointLayout(header: Uint8Array, source = "checkpoint"): CheckpointLayout {
  if (header.byteLength < LEGACY_HEADER_BYTES) {
    throw new RangeError(
      `${source}: ${header.byteLength} bytes is too short for a llama2.c header (${LEGACY_HEADER_BYTES} bytes)`,
    );
  }
  const view = new DataView(header.buffer, header.byteOffset, header.byteLength);
  const magic = view.getUint32(0, true);
  const layout = (format: CheckpointFormat, config: LlamaConfig, headerBytes: number) => {
    const ropeTableFloats = format === "legacy" ? config.maxSeqLen * headDim(config) : 0;
    const floats = parameterCount(config) + ropeTableFloats;
    return { format, config, headerBytes, floats, expectedBytes: headerBytes + 4 * floats };
  };
  if (magic === CHECKPOINT_MAGIC) {
    if (header.byteLength < V1_HEADER_BYTES) {
      throw new RangeError(
        `${source}: ${header.byteLength} bytes is too short for a version 1 header (${V1_HEADER_BYTES} bytes)`,
      );
    }
    const version = view.getInt32(4, true);
    if (version !== 1) {
      throw new RangeError(
        `${source}: unsupported checkpoint version ${version} (only version 1, fp32, is supported)`,
      );
    }
    const sharedFlag = view.getUint8(8 + 7 * 4);
    if (sharedFlag > 1) {
      throw new RangeError(`${source}: shared-classifier flag must be 0 or 1, got ${sharedFlag}`);
    }
    const config = makeConfig(
      { ...headerFields(view, 8), sharedClassifier: sharedFlag === 1 },
      source,
    );
    return layout("v1", config, V1_HEADER_BYTES);
  }
  // A legacy file starts with dim, a small integer; four ASCII letters/digits are a magic.
  const text = String.fromCharCode(...header.subarray(0, 4)).split("").reverse().join("");
  if (/^[A-Za-z0-9]{4}$/.test(text)) {
    throw new RangeError(
      `${source}: wrong magic "${text}" (expected "ak42" for a versioned checkpoint)`,
    );
  }
  const raw = headerFields(view, 0);
  const sharedClassifier = raw.vocabSize > 0;
  const config = makeConfig(
    { ...raw, vocabSize: Math.abs(raw.vocabSize), sharedClassifier },
    source,
  );
  return layout("legacy", config, LEGACY_HEADER_BYTES);
}

function headerFields(view: DataView, offset: number) {
  const read = (i: number) => view.getInt32(offset + 4 * i, true);
  return {
    dim: read(0),
    hiddenDim: read(1),
    nLayers: read(2),
    nHeads: read(3),
    nKvHeads: read(4),
    vocabSize: read(5),
    maxSeqLen: read(6),
  };
}

function checkSize(byteLength: number, layout: CheckpointLayout, source: string): void {
  const expected = layout.expectedBytes;
  if (byteLength !== expected) {
    const problem = byteLength < expected ? "truncated" : "longer than its header implies";
    const format = layout.format === "legacy" ? "legacy" : "version 1";
    throw new RangeError(
      `${source}: ${format} checkpoint is ${problem}: expected ${expected} bytes, got ${byteLength}`,
    );
  }
}

function floatView(bytes: Uint8Array, offset: number, floats: number): Float32Array {
  const start = bytes.byteOffset + offset;
  if (start % 4 === 0) return new Float32Array(bytes.buffer, start, floats);
  return new Float32Array(bytes.slice(offset, offset + floats * 4).buffer); // unaligned: copy
}

/** Reads consecutive tensors: each call returns the next `n` floats as a view. */
function floatReader(data: Float32Array): (n: number) => Float32Array {
  let at = 0;
  return (n) => data.subarray(at, at += n);
}

function splitLayers(config: LlamaConfig, perLayer: Record<string, Float32Array>): LayerWeights[] {
  const sizes = layerTensorSizes(config);
  return Array.from({ length: config.nLayers }, (_, l) =>
    Object.fromEntries(
      LAYER_ORDER.map((
        name,
      ) => [name, perLayer[name].subarray(l * sizes[name], (l + 1) * sizes[name])]),
    ) as unknown as LayerWeights);
}

/**
 * Writes a checkpoint in llama2.c's legacy or version 1 layout (llama2.c's `run` reads the
 * legacy one). The legacy RoPE table is written as llama2.c's exporter wrote it.
 *
 * @example
 * ```ts
 * import { makeConfig } from "../config.ts";
 * import { randomWeights } from "../weights.ts";
 * import { serializeCheckpoint } from "./llama2c.ts";
 * const config = makeConfig({ dim: 8, hiddenDim: 12, nLayers: 1, nHeads: 2, nKvHeads: 1, vocabSize: 5, maxSeqLen: 4 });
 * const bytes = serializeCheckpoint(config, randomWeights(config), "legacy");
 * if (new Int32Array(bytes.buffer, 0, 7)[0] !== 8) throw new Error("wrong");
 * ```
 */
export function serializeCheckpoint(
  config: LlamaConfig,
  weights: LlamaWeights,
  format: CheckpointFormat,
): Uint8Array {
  checkWeights(config, weights);
  const ropeTableFloats = format === "legacy" ? config.maxSeqLen * headDim(config) : 0;
  const headerBytes = format === "legacy" ? LEGACY_HEADER_BYTES : V1_HEADER_BYTES;
  const bytes = new Uint8Array(headerBytes + (parameterCount(config) + ropeTableFloats) * 4);
  const view = new DataView(bytes.buffer);
  const fields = [
    config.dim,
    config.hiddenDim,
    config.nLayers,
    config.nHeads,
    config.nKvHeads,
    config.vocabSize,
    config.maxSeqLen,
  ];
  let fieldOffset = 0;
  if (format === "legacy") {
    fields[5] = config.sharedClassifier ? config.vocabSize : -config.vocabSize;
  } else {
    view.setUint32(0, CHECKPOINT_MAGIC, true);
    view.setInt32(4, 1, true);
    view.setUint8(8 + 7 * 4, config.sharedClassifier ? 1 : 0);
    fieldOffset = 8;
  }
  fields.forEach((value, i) => view.setInt32(fieldOffset + 4 * i, value, true));
  const data = new Float32Array(bytes.buffer, headerBytes);
  let at = 0;
  const put = (tensor: Float32Array) => {
    data.set(tensor, at);
    at += tensor.length;
  };
  const allLayers = (name: keyof LayerWeights) =>
    weights.layers.forEach((layer) => put(layer[name]));
  if (format === "legacy") {
    put(weights.tokenEmbedding);
    LAYER_ORDER.forEach(allLayers);
    put(weights.finalNorm);
    const half = headDim(config) / 2;
    const real = new Float32Array(config.maxSeqLen * half);
    const imag = new Float32Array(config.maxSeqLen * half);
    for (let pos = 0; pos < config.maxSeqLen; pos++) {
      for (let i = 0; i < half; i++) {
        const angle = pos * Math.pow(config.ropeTheta, (-2 * i) / headDim(config));
        real[pos * half + i] = Math.cos(angle);
        imag[pos * half + i] = Math.sin(angle);
      }
    }
    put(real);
    put(imag);
  } else {
    allLayers("attentionNorm");
    allLayers("ffnNorm");
    put(weights.finalNorm);
    put(weights.tokenEmbedding);
    V1_LAYER_ORDER.forEach(allLayers);
  }
  if (!config.sharedClassifier) put(weights.classifier);
  return bytes;
}

/**
 * Reads and parses a checkpoint file (needs `--allow-read`); errors name the path. Before
 * reading the weights it requires a regular file (not a device or a pipe), checks the size
 * the header implies against the file's, and that the weights fit in memory (with
 * `--allow-sys=systemMemoryInfo`).
 *
 * @example
 * ```ts ignore
 * const { config, weights } = await readCheckpoint("stories260K.bin");
 * ```
 */
export async function readCheckpoint(path: string): Promise<Checkpoint> {
  const bytes = await readBoundedFile(path, "checkpoint", (header, size) => {
    const layout = checkpointLayout(header, path);
    checkSize(size, layout, path);
    checkWeightsFitMemory(layout.config, path);
    return layout.expectedBytes;
  }, CHECKPOINT_HEADER_BYTES);
  return parseCheckpoint(bytes, path);
}
