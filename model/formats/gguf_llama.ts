/**
 * LLaMA models in GGUF: the `llama` architecture's metadata and tensor names as llama.cpp
 * reads them, the SentencePiece vocabulary (pieces with `▁` for spaces, scores, token types),
 * and conversion of a llama2.c checkpoint into GGUF at any tensor format.
 *
 * @module
 */
import { type CheckpointFormat, readCheckpoint } from "./llama2c.ts";
import { readBoundedFile } from "./_file.ts";
import { checkFits } from "../memory.ts";
import { headDim, type LlamaConfig, makeConfig, type RopeScaling } from "../config.ts";
import {
  type GgufFile,
  type GgufTensor,
  type GgufValue,
  parseGguf,
  serializeGguf,
} from "./gguf.ts";
import { Tokenizer } from "./tokenizer.ts";
import { BOS, EOS } from "../config.ts";
import { checkWeights, type LayerWeights, type LlamaWeights, parameterCount } from "../weights.ts";
import {
  dequantizeWeights,
  matrixFormat,
  type StoredLayer,
  type StoredMatrix,
  storedWeightBytes,
  type StoredWeights,
  storeWeights,
} from "../precision.ts";
import {
  dequantize,
  firstNonFinite,
  quantize,
  type TensorFormat,
} from "../../reference/quantize.ts";

/** A LLaMA model read from GGUF, its weights dequantized to float32. */
export interface GgufModel {
  /** The configuration from the metadata. */
  config: LlamaConfig;
  /** The weights, dequantized to float32. */
  weights: LlamaWeights;
  /** The vocabulary, when the file has one. */
  tokenizer?: Tokenizer;
  /** The stored format of each tensor, by GGUF tensor name. */
  formats: Map<string, TensorFormat>;
  /** `general.name`, when present. */
  name?: string;
}

/** A LLaMA model read from GGUF with its matrices as stored: {@linkcode GgufModel}'s other fields. */
export interface GgufStoredModel extends Omit<GgufModel, "weights"> {
  /**
   * The matrices in their stored formats (views into the file's bytes, which a K-quant file
   * mixes: Q4_K_M holds Q6_K matrices too), the norm weights as float32. `format` is the format
   * of most parameters.
   */
  weights: StoredWeights;
}

/** Options of {@linkcode llamaToGguf}. */
export interface LlamaToGgufOptions {
  /**
   * Format of the matrices (default `f32`). Norm weights stay f32; a block format falls back for
   * a matrix whose rows are not whole blocks, as llama.cpp's converter does (`matrixFormat`:
   * a K-quant to Q8_0, the others to f16).
   */
  format?: TensorFormat;
  /** Vocabulary to embed (llama.cpp needs one; `generate` reads it). */
  tokenizer?: Tokenizer;
  /** `general.name`. */
  name?: string;
  /** Tensor data alignment (default 32). */
  alignment?: number;
}

/** llama.cpp's token types. */
const TOKEN_TYPE = { normal: 1, unknown: 2, control: 3, byte: 6 } as const;
/** ggml's file types (`general.file_type`) by the matrices' format. */
const FILE_TYPE: Record<TensorFormat, number> = {
  f32: 0,
  f16: 1,
  q4_0: 2,
  q8_0: 7,
  q4_k: 14, // MOSTLY_Q4_K_S: every matrix Q4_K
  q5_k: 16, // MOSTLY_Q5_K_S
  q6_k: 18, // MOSTLY_Q6_K
};
const SPACE_MARK = new TextEncoder().encode("\u2581");

const LAYER_TENSORS: [keyof LayerWeights, string][] = [
  ["attentionNorm", "attn_norm"],
  ["wq", "attn_q"],
  ["wk", "attn_k"],
  ["wv", "attn_v"],
  ["wo", "attn_output"],
  ["ffnNorm", "ffn_norm"],
  ["w1", "ffn_gate"],
  ["w2", "ffn_down"],
  ["w3", "ffn_up"],
];

/** GGUF dimensions (innermost first) of each tensor of `config`, by GGUF name. */
function tensorDims(config: LlamaConfig): Map<string, number[]> {
  const { dim, hiddenDim, vocabSize } = config;
  const qDim = config.nHeads * headDim(config);
  const kvDim = config.nKvHeads * headDim(config);
  const layer: Record<string, number[]> = {
    attn_norm: [dim],
    attn_q: [dim, qDim],
    attn_k: [dim, kvDim],
    attn_v: [dim, kvDim],
    attn_output: [qDim, dim],
    ffn_norm: [dim],
    ffn_gate: [dim, hiddenDim],
    ffn_down: [hiddenDim, dim],
    ffn_up: [dim, hiddenDim],
  };
  const dims = new Map<string, number[]>([["token_embd.weight", [dim, vocabSize]]]);
  for (let l = 0; l < config.nLayers; l++) {
    for (const [name, shape] of Object.entries(layer)) dims.set(`blk.${l}.${name}.weight`, shape);
  }
  dims.set("output_norm.weight", [dim]);
  if (!config.sharedClassifier) dims.set("output.weight", [dim, vocabSize]);
  return dims;
}

/**
 * Converts a model to a GGUF file llama.cpp can read: `llama` metadata, the vocabulary when
 * given, and the tensors in `options.format` (see {@linkcode LlamaToGgufOptions.format}).
 *
 * @example
 * ```ts
 * import { makeConfig } from "../config.ts";
 * import { randomWeights } from "../weights.ts";
 * import { llamaToGguf, parseGgufModel } from "./gguf_llama.ts";
 * const config = makeConfig({ dim: 32, hiddenDim: 64, nLayers: 1, nHeads: 4, nKvHeads: 2, vocabSize: 8, maxSeqLen: 16 });
 * const bytes = llamaToGguf(config, randomWeights(config, 1), { format: "q8_0" });
 * const model = parseGgufModel(bytes);
 * if (model.config.nKvHeads !== 2 || model.formats.get("blk.0.attn_q.weight") !== "q8_0") {
 *   throw new Error("wrong");
 * }
 * ```
 */
export function llamaToGguf(
  config: LlamaConfig,
  weights: LlamaWeights,
  options: LlamaToGgufOptions = {},
): Uint8Array {
  const format = options.format ?? "f32";
  checkWeights(config, weights);
  if (config.ropeLayout !== "interleaved") {
    throw new RangeError(
      `ropeLayout: GGUF llama models use "interleaved" RoPE, got "${config.ropeLayout}"`,
    );
  }
  if (config.slidingWindow !== undefined) {
    // llama.cpp's llama architecture has no sliding window: it would run full attention.
    throw new RangeError(
      `slidingWindow: GGUF llama models have no sliding window (llama.cpp would attend to every position), got ${config.slidingWindow}`,
    );
  }
  const u32 = (value: number): GgufValue => ({ type: "u32", value });
  const f32 = (value: number): GgufValue => ({ type: "f32", value });
  const metadata = new Map<string, GgufValue>([
    ["general.architecture", { type: "string", value: "llama" }],
    ["general.name", { type: "string", value: options.name ?? "llama" }],
    ["general.file_type", u32(FILE_TYPE[format])],
    ["llama.context_length", u32(config.maxSeqLen)],
    ["llama.embedding_length", u32(config.dim)],
    ["llama.block_count", u32(config.nLayers)],
    ["llama.feed_forward_length", u32(config.hiddenDim)],
    ["llama.attention.head_count", u32(config.nHeads)],
    ["llama.attention.head_count_kv", u32(config.nKvHeads)],
    ["llama.rope.dimension_count", u32(headDim(config))],
    ["llama.rope.freq_base", f32(config.ropeTheta)],
    ...(config.ropeScaling
      ? [
        ["llama.rope.scaling.type", { type: "string", value: config.ropeScaling.type }],
        ["llama.rope.scaling.factor", f32(config.ropeScaling.factor)],
      ] as [string, GgufValue][]
      : []),
    ["llama.attention.layer_norm_rms_epsilon", f32(config.normEps)],
    ["llama.vocab_size", u32(config.vocabSize)],
  ]);
  if (options.tokenizer) {
    const tokenizer = options.tokenizer;
    if (tokenizer.vocabSize !== config.vocabSize) {
      throw new RangeError(
        `tokenizer: expected ${config.vocabSize} tokens (the model's vocabulary), got ${tokenizer.vocabSize}`,
      );
    }
    const decoder = new TextDecoder();
    metadata.set("tokenizer.ggml.model", { type: "string", value: "llama" });
    metadata.set("tokenizer.ggml.tokens", {
      type: "array",
      itemType: "string",
      value: tokenizer.pieces.map((piece) =>
        decoder.decode(replaceBytes(piece, [0x20], SPACE_MARK))
      ),
    });
    metadata.set("tokenizer.ggml.scores", {
      type: "array",
      itemType: "f32",
      value: Array.from(tokenizer.scores),
    });
    metadata.set("tokenizer.ggml.token_type", {
      type: "array",
      itemType: "i32",
      value: tokenizer.pieces.map((piece, id) => tokenType(decoder.decode(piece), id)),
    });
    metadata.set("tokenizer.ggml.unknown_token_id", u32(0));
    metadata.set("tokenizer.ggml.bos_token_id", u32(BOS));
    metadata.set("tokenizer.ggml.eos_token_id", u32(EOS));
  }
  const arrays = new Map<string, Float32Array>([["token_embd.weight", weights.tokenEmbedding]]);
  weights.layers.forEach((layer, l) => {
    for (const [field, name] of LAYER_TENSORS) arrays.set(`blk.${l}.${name}.weight`, layer[field]);
  });
  arrays.set("output_norm.weight", weights.finalNorm);
  if (!config.sharedClassifier) arrays.set("output.weight", weights.classifier);
  const tensors: GgufTensor[] = [];
  for (const [name, dims] of tensorDims(config)) {
    const tensorFormat = dims.length === 1 ? "f32" : matrixFormat(format, dims[0]);
    tensors.push({
      name,
      dims,
      format: tensorFormat,
      data: quantize(arrays.get(name)!, tensorFormat),
    });
  }
  return serializeGguf({ metadata, tensors, alignment: options.alignment ?? 32 });
}

function tokenType(text: string, id: number): number {
  if (id === 0) return TOKEN_TYPE.unknown;
  if (id === BOS || id === EOS) return TOKEN_TYPE.control;
  return /^<0x[0-9A-F]{2}>$/.test(text) ? TOKEN_TYPE.byte : TOKEN_TYPE.normal;
}

function replaceBytes(bytes: Uint8Array, from: number[], to: Uint8Array): Uint8Array {
  const out: number[] = [];
  for (let i = 0; i < bytes.length; i++) {
    if (from.length === 1 && bytes[i] === from[0]) out.push(...to);
    else if (
      from.length === 3 && bytes[i] === from[0] && bytes[i + 1] === from[1] &&
      bytes[i + 2] === from[2]
    ) {
      out.push(...to);
      i += 2;
    } else out.push(bytes[i]);
  }
  return Uint8Array.from(out);
}

/**
 * Reads a GGUF `llama` model: configuration from the metadata, weights dequantized to float32,
 * and the vocabulary when present. Errors name `source` and the field or tensor.
 *
 * @example
 * ```ts
 * import { makeConfig } from "../config.ts";
 * import { randomWeights } from "../weights.ts";
 * import { llamaToGguf, parseGgufModel } from "./gguf_llama.ts";
 * const config = makeConfig({ dim: 32, hiddenDim: 64, nLayers: 1, nHeads: 4, nKvHeads: 4, vocabSize: 8, maxSeqLen: 16 });
 * const weights = randomWeights(config, 1);
 * const model = parseGgufModel(llamaToGguf(config, weights));
 * if (model.weights.layers[0].wq[5] !== weights.layers[0].wq[5]) throw new Error("wrong");
 * ```
 */
export function parseGgufModel(bytes: Uint8Array, source = "gguf"): GgufModel {
  return ggufToLlama(parseGguf(bytes, source), source);
}

/** {@linkcode parseGgufModel} on an already parsed file. */
export function ggufToLlama(file: GgufFile, source = "gguf"): GgufModel {
  const { weights: stored, ...model } = ggufToStored(file, source);
  const weights = dequantizeWeights(stored);
  checkWeights(model.config, weights, source);
  return { ...model, weights };
}

/** A reader of `file`'s metadata that checks each value's type, naming the key. */
function metadataGetter(file: GgufFile, source: string) {
  const meta = file.metadata;
  return (
    key: string,
    expected: "integer" | "number" | "string",
    required = true,
  ): number | string | undefined => {
    const entry = meta.get(key);
    if (entry === undefined) {
      if (required) throw new RangeError(`${source}: missing metadata ${key} (${expected})`);
      return undefined;
    }
    const value = entry.value;
    const ok = expected === "string"
      ? typeof value === "string"
      : typeof value === "number" && (expected === "number" || Number.isInteger(value));
    if (entry.type === "array" || !ok) {
      throw new RangeError(
        `${source}: metadata ${key}: expected ${
          expected === "integer" ? "an" : "a"
        } ${expected}, got ${
          entry.type === "array" ? "an array" : `${entry.type} ${quote(value)}`
        }`,
      );
    }
    return value as number | string;
  };
}

/**
 * The configuration of a GGUF `llama` file, from its metadata and tensor names alone (nothing
 * dequantized), with the checks that need only those.
 */
function ggufConfig(file: GgufFile, source: string): LlamaConfig {
  const meta = file.metadata;
  const get = metadataGetter(file, source);
  const architecture = get("general.architecture", "string");
  if (architecture !== "llama") {
    throw new RangeError(
      `${source}: general.architecture: expected "llama", got ${quote(architecture)}`,
    );
  }
  const int = (key: string) => get(key, "integer") as number;
  const tensors = new Map(file.tensors.map((t) => [t.name, t]));
  const embedding = tensors.get("token_embd.weight");
  const tokens = meta.get("tokenizer.ggml.tokens");
  const vocabSize = (get("llama.vocab_size", "integer", false) as number | undefined) ??
    (tokens?.type === "array" ? tokens.value.length : undefined) ?? embedding?.dims[1];
  if (vocabSize === undefined) {
    throw new RangeError(
      `${source}: missing metadata llama.vocab_size (and no tokenizer.ggml.tokens or token_embd.weight to infer it from)`,
    );
  }
  const ropeScaling = readRopeScaling(file, source);
  const config = makeConfig(
    {
      dim: int("llama.embedding_length"),
      hiddenDim: int("llama.feed_forward_length"),
      nLayers: int("llama.block_count"),
      nHeads: int("llama.attention.head_count"),
      nKvHeads: (get("llama.attention.head_count_kv", "integer", false) as number | undefined) ??
        int("llama.attention.head_count"),
      vocabSize,
      maxSeqLen: int("llama.context_length"),
      ropeTheta: shortestDecimal(
        (get("llama.rope.freq_base", "number", false) as number | undefined) ?? 10000,
      ),
      normEps: shortestDecimal(get("llama.attention.layer_norm_rms_epsilon", "number") as number),
      ropeLayout: "interleaved",
      sharedClassifier: !tensors.has("output.weight"),
      ...(ropeScaling ? { ropeScaling } : {}),
    },
    source,
  );
  if (tensors.has("rope_freqs.weight")) { // Llama 3.1's per-frequency factors
    throw new RangeError(
      `${source}: tensor rope_freqs.weight: RoPE frequency factors are not supported`,
    );
  }
  const ropeDims = get("llama.rope.dimension_count", "integer", false);
  if (ropeDims !== undefined && ropeDims !== headDim(config)) {
    throw new RangeError(
      `${source}: llama.rope.dimension_count: expected the head dimension ${
        headDim(config)
      }, got ${ropeDims}`,
    );
  }
  const needed = config.nLayers * LAYER_TENSORS.length + 2;
  if (needed > file.tensors.length) { // before listing the expected tensors
    throw new RangeError(
      `${source}: llama.block_count: ${config.nLayers} layers need at least ${needed} tensors, the file has ${file.tensors.length}`,
    );
  }
  return config;
}

/**
 * Reads a GGUF `llama` model as {@linkcode parseGgufModel} does, but keeps the matrices as
 * stored (views into `file`'s bytes, nothing dequantized but the norm weights). Every tensor's
 * block scales are checked finite.
 *
 * @example
 * ```ts
 * import { makeConfig } from "../config.ts";
 * import { randomWeights } from "../weights.ts";
 * import { ggufToStored, llamaToGguf } from "./gguf_llama.ts";
 * import { parseGguf } from "./gguf.ts";
 * const config = makeConfig({ dim: 256, hiddenDim: 256, nLayers: 1, nHeads: 8, nKvHeads: 8, vocabSize: 8, maxSeqLen: 16 });
 * const file = parseGguf(llamaToGguf(config, randomWeights(config, 1), { format: "q6_k" }));
 * const { weights } = ggufToStored(file);
 * if (weights.format !== "q6_k" || weights.layers[0].w2.bytes.length !== 256 * 210) throw new Error("wrong");
 * ```
 */
export function ggufToStored(file: GgufFile, source = "gguf"): GgufStoredModel {
  const config = ggufConfig(file, source);
  const get = metadataGetter(file, source);
  const tensors = new Map(file.tensors.map((t) => [t.name, t]));
  const formats = new Map<string, TensorFormat>();
  const expectedDims = tensorDims(config);
  const read = (name: string): GgufTensor => {
    const dims = expectedDims.get(name)!;
    const tensor = tensors.get(name);
    if (!tensor) throw new RangeError(`${source}: missing tensor ${name}`);
    if (tensor.dims.join() !== dims.join()) {
      throw new RangeError(
        `${source}: tensor ${name}: expected dims [${dims.join(", ")}], got [${
          tensor.dims.join(", ")
        }]`,
      );
    }
    const bad = firstNonFinite(tensor.data, tensor.format, dims.reduce((a, b) => a * b, 1));
    if (bad >= 0) {
      throw new RangeError(
        `${source}: tensor ${name} holds a non-finite ${tensor.format} value at index ${bad}`,
      );
    }
    formats.set(name, tensor.format);
    return tensor;
  };
  const vector = (name: string): Float32Array => {
    const { data, format, dims } = read(name);
    return dequantize(data, format, dims[0]);
  };
  const matrix = (name: string): StoredMatrix => {
    const { data, format, dims } = read(name);
    return { format, rows: dims[1], cols: dims[0], bytes: data };
  };
  const tokenEmbedding = matrix("token_embd.weight");
  const layers = Array.from({ length: config.nLayers }, (_, l) =>
    Object.fromEntries(
      LAYER_TENSORS.map(([field, name]) => {
        const full = `blk.${l}.${name}.weight`;
        return [field, expectedDims.get(full)!.length === 1 ? vector(full) : matrix(full)];
      }),
    ) as unknown as StoredLayer);
  const finalNorm = vector("output_norm.weight");
  const classifier = config.sharedClassifier ? tokenEmbedding : matrix("output.weight");
  const weights: StoredWeights = {
    format: predominantFormat([tokenEmbedding, classifier, ...layers.flatMap(layerMatrices)]),
    tokenEmbedding,
    layers,
    finalNorm,
    classifier,
  };
  const name = get("general.name", "string", false) as string | undefined;
  return { config, weights, tokenizer: readVocabulary(file, config, source), formats, name };
}

function layerMatrices(layer: StoredLayer): StoredMatrix[] {
  return LAYER_TENSORS.map(([field]) => layer[field]).filter((m): m is StoredMatrix =>
    !(m instanceof Float32Array)
  );
}

/** The format holding the most parameters of `matrices` (each counted once). */
function predominantFormat(matrices: StoredMatrix[]): TensorFormat {
  const counts = new Map<TensorFormat, number>();
  for (const m of new Set(matrices)) {
    counts.set(m.format, (counts.get(m.format) ?? 0) + m.rows * m.cols);
  }
  return [...counts].reduce((best, entry) => entry[1] > best[1] ? entry : best)[0];
}

/**
 * The RoPE scaling as llama.cpp reads it: `llama.rope.scaling.type` ("linear" when absent) and
 * the factor from `llama.rope.scaling.factor`, else the older `llama.rope.scale_linear` (0 or
 * absent: none). Linear scaling is returned (positions divided by the factor); "none" and a
 * factor of 0 or 1 give undefined; any other type (YaRN, LongRoPE) is refused naming the key.
 */
function readRopeScaling(file: GgufFile, source: string): RopeScaling | undefined {
  const typeKey = "llama.rope.scaling.type";
  const type = file.metadata.get(typeKey);
  if (type !== undefined && (type.type !== "string")) {
    throw new RangeError(`${source}: metadata ${typeKey}: expected a string, got ${type.type}`);
  }
  const method = (type?.value as string | undefined) ?? "linear";
  if (method !== "linear" && method !== "none") {
    throw new RangeError(
      `${source}: metadata ${typeKey}: RoPE scaling ${
        quote(method)
      } is not supported (expected "linear" or "none")`,
    );
  }
  const factorKey = ["llama.rope.scaling.factor", "llama.rope.scale_linear"].find((key) =>
    file.metadata.has(key)
  );
  if (factorKey === undefined) return undefined;
  const factor = file.metadata.get(factorKey)!;
  if (factor.type === "array" || typeof factor.value !== "number") {
    throw new RangeError(
      `${source}: metadata ${factorKey}: expected a number, got ${
        factor.type === "array" ? "an array" : `${factor.type} ${quote(factor.value)}`
      }`,
    );
  }
  if (!(factor.value >= 0) || !Number.isFinite(factor.value)) {
    throw new RangeError(
      `${source}: metadata ${factorKey}: expected a finite factor >= 0, got ${factor.value}`,
    );
  }
  if (method === "none" || factor.value === 0 || factor.value === 1) return undefined;
  return { type: "linear", factor: shortestDecimal(factor.value) };
}

function readVocabulary(
  file: GgufFile,
  config: LlamaConfig,
  source: string,
): Tokenizer | undefined {
  const tokens = file.metadata.get("tokenizer.ggml.tokens");
  if (tokens === undefined) return undefined;
  const model = file.metadata.get("tokenizer.ggml.model");
  if (model?.value !== "llama") {
    throw new RangeError(
      `${source}: tokenizer.ggml.model: expected "llama" (SentencePiece BPE), got ${
        model === undefined ? "none" : quote(model.value)
      }`,
    );
  }
  if (tokens.type !== "array" || tokens.itemType !== "string") {
    throw new RangeError(`${source}: tokenizer.ggml.tokens: expected an array of strings`);
  }
  if (tokens.value.length !== config.vocabSize) {
    throw new RangeError(
      `${source}: tokenizer.ggml.tokens: expected ${config.vocabSize} tokens (the model's vocabulary), got ${tokens.value.length}`,
    );
  }
  const scores = file.metadata.get("tokenizer.ggml.scores");
  if (
    scores === undefined || scores.type !== "array" || scores.itemType !== "f32" ||
    scores.value.length !== config.vocabSize
  ) {
    throw new RangeError(
      `${source}: tokenizer.ggml.scores: expected ${config.vocabSize} f32 scores, got ${
        scores === undefined
          ? "none"
          : scores.type === "array"
          ? `${scores.value.length} ${scores.itemType}`
          : scores.type
      }`,
    );
  }
  for (const [key, expected] of [["bos_token_id", BOS], ["eos_token_id", EOS]] as const) {
    const id = file.metadata.get(`tokenizer.ggml.${key}`)?.value;
    if (id !== undefined && id !== expected) {
      throw new RangeError(
        `${source}: tokenizer.ggml.${key}: expected ${expected} (llama2.c's), got ${String(id)}`,
      );
    }
  }
  const encoder = new TextEncoder();
  const space = Array.from(SPACE_MARK);
  const pieces = (tokens.value as string[]).map((text) =>
    replaceBytes(encoder.encode(text), space, Uint8Array.of(0x20))
  );
  const scoreValues = Float32Array.from(scores.value as number[]);
  const bad = scoreValues.findIndex((s) => !Number.isFinite(s));
  if (bad >= 0) {
    throw new RangeError(`${source}: tokenizer.ggml.scores[${bad}] is ${scoreValues[bad]}`);
  }
  // A loop, not Math.max(...pieces): spreading 128k arguments overflows the stack.
  const maxPieceBytes = pieces.reduce((most, piece) => Math.max(most, piece.length), 1);
  return new Tokenizer(pieces, scoreValues, maxPieceBytes);
}

/** A metadata value for an error message: one line, at most 64 characters of a string. */
function quote(value: unknown): string {
  return typeof value === "string" ? JSON.stringify(value.slice(0, 64)) : String(value);
}

/** The shortest decimal that is the same float32 (f32 metadata carry ~7 significant digits). */
function shortestDecimal(value: number): number {
  for (let digits = 1; digits <= 9; digits++) {
    const candidate = Number(value.toPrecision(digits));
    if (Math.fround(candidate) === value) return candidate;
  }
  return value;
}

/**
 * Whether `bytes` start with GGUF's magic (to tell a GGUF file from a llama2.c checkpoint).
 *
 * @example
 * ```ts
 * import { isGguf } from "./gguf_llama.ts";
 * if (!isGguf(new TextEncoder().encode("GGUF\x03\0\0\0")) || isGguf(new Uint8Array(2))) {
 *   throw new Error("wrong");
 * }
 * ```
 */
export function isGguf(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0x47 && bytes[1] === 0x47 && bytes[2] === 0x55 &&
    bytes[3] === 0x46;
}

/** A model file read from disk: a llama2.c checkpoint or a GGUF file. */
export interface ModelFile {
  /** `"gguf"`, or the llama2.c checkpoint layout. */
  format: "gguf" | CheckpointFormat;
  /** The configuration. */
  config: LlamaConfig;
  /** The weights, float32 (GGUF tensors dequantized). */
  weights: LlamaWeights;
  /** The vocabulary a GGUF file carries. */
  tokenizer?: Tokenizer;
  /** A GGUF file's stored format of each tensor, by GGUF tensor name (a checkpoint: all f32). */
  formats?: Map<string, TensorFormat>;
}

/** A model file read by {@linkcode readModelFileAsStored}: a GGUF file's matrices as stored. */
export interface StoredModelFile extends Omit<ModelFile, "weights"> {
  /**
   * A checkpoint's float32 weights, or a GGUF file's: as stored (see {@linkcode ggufToStored}),
   * or as `options.weights` asked (float32, or stored again in that format).
   */
  weights: LlamaWeights | StoredWeights;
}

/** Options of {@linkcode readModelFile} and {@linkcode readModelFileAsStored}. */
export interface ReadModelOptions {
  /**
   * The format the weights will be held in. {@linkcode readModelFile} (default f32) returns
   * float32 weights and its memory check counts the caller's copy in that format too;
   * {@linkcode readModelFileAsStored} (default: as stored) converts a GGUF file's weights to it
   * unless every matrix is in it already.
   */
  weights?: TensorFormat;
}

/**
 * Bytes a GGUF file takes in memory while {@linkcode readModelFileAsStored} reads it into
 * weights held as `weights` asks: as stored (no `weights`, or a format every matrix has
 * already), the file (the matrices are views into it) and its norm weights in f32; otherwise
 * the file, every tensor dequantized to f32 (up to ~7x a Q4_0 or Q4_K file) and, for a format
 * other than f32, the weights stored again in it.
 *
 * @example
 * ```ts
 * import { makeConfig } from "../config.ts";
 * import { randomWeights } from "../weights.ts";
 * import { ggufResidentBytes, llamaToGguf } from "./gguf_llama.ts";
 * import { parseGguf } from "./gguf.ts";
 * const config = makeConfig({ dim: 32, hiddenDim: 64, nLayers: 1, nHeads: 4, nKvHeads: 4, vocabSize: 8, maxSeqLen: 16 });
 * const bytes = llamaToGguf(config, randomWeights(config, 1), { format: "q4_0" });
 * const file = parseGguf(bytes);
 * const params = 8 * 32 + 4 * 32 * 32 + 3 * 32 * 64 + 3 * 32;
 * if (ggufResidentBytes(file, bytes.length, "f32") !== bytes.length + 4 * params) throw new Error("wrong");
 * if (ggufResidentBytes(file, bytes.length) !== bytes.length + 4 * 3 * 32) throw new Error("wrong");
 * ```
 */
export function ggufResidentBytes(
  file: GgufFile,
  fileBytes: number,
  weights?: TensorFormat,
  source = "gguf",
): number {
  const config = ggufConfig(file, source);
  if (weights === undefined || keptAsStored(file, config, weights)) {
    return fileBytes + (2 * config.nLayers + 1) * config.dim * 4;
  }
  return dequantizedBytes(config, fileBytes, weights);
}

/** The file, every tensor dequantized to f32 and, unless `format` is f32, a copy in `format`. */
function dequantizedBytes(config: LlamaConfig, fileBytes: number, format: TensorFormat): number {
  return fileBytes + parameterCount(config) * 4 +
    (format === "f32" ? 0 : storedWeightBytes(config, format));
}

/**
 * Whether a GGUF file's matrices (the embedding table and classifier included) stay as stored
 * when `asked` for: nothing asked, or every matrix in that format already.
 */
function keptAsStored(file: GgufFile, config: LlamaConfig, asked?: TensorFormat): boolean {
  const dims = tensorDims(config);
  return asked === undefined ||
    file.tensors.every((t) => dims.get(t.name)?.length !== 2 || t.format === asked);
}

/** What a check of `format`'s copy says it needs, for an error message. */
function dequantizedWhat(path: string, format: TensorFormat): string {
  return `${path}: the file, its weights dequantized to f32${
    format === "f32" ? "" : ` and stored as ${format}`
  } need`;
}

/**
 * Reads a llama2.c checkpoint or a GGUF file, told apart by GGUF's magic (needs
 * `--allow-read`); errors name the path. A GGUF file's tensors are dequantized to float32; it
 * is refused, before anything is dequantized, when the file, those and a copy in
 * `options.weights` would exceed 80% of the machine's memory.
 *
 * @example
 * ```ts ignore
 * const { config, weights, tokenizer } = await readModelFile("stories260K.gguf");
 * ```
 */
export async function readModelFile(
  path: string,
  options: ReadModelOptions = {},
): Promise<ModelFile> {
  const read = await readGgufOrCheckpoint(path);
  if (!("file" in read)) return read;
  const format = options.weights ?? "f32";
  checkFits(
    dequantizedBytes(ggufConfig(read.file, path), read.fileBytes, format),
    dequantizedWhat(path, format),
  );
  return { format: "gguf", ...ggufToLlama(read.file, path) };
}

/**
 * Reads a model file as {@linkcode readModelFile} does, but keeps a GGUF file's matrices as
 * stored (what `generate --model x.gguf` holds, nothing expanded to float32) unless
 * `options.weights` asks for a format some matrix is not in: then they are dequantized and,
 * for a format other than f32, stored again in it. The file is refused, before anything is
 * dequantized, when what that holds ({@linkcode ggufResidentBytes}) would exceed 80% of the
 * machine's memory.
 *
 * @example
 * ```ts ignore
 * const { weights } = await readModelFileAsStored("model-Q4_K_M.gguf");
 * ```
 */
export async function readModelFileAsStored(
  path: string,
  options: ReadModelOptions = {},
): Promise<StoredModelFile> {
  const read = await readGgufOrCheckpoint(path);
  if (!("file" in read)) return read;
  const { file, fileBytes } = read;
  const asked = options.weights;
  const asStored = keptAsStored(file, ggufConfig(file, path), asked);
  checkFits(
    ggufResidentBytes(file, fileBytes, asked, path),
    asStored ? `${path}: the file, its weights as stored, needs` : dequantizedWhat(path, asked!),
  );
  const { config, weights, tokenizer, formats } = ggufToStored(file, path);
  if (asStored) return { format: "gguf", config, weights, tokenizer, formats };
  const floats = dequantizeWeights(weights);
  checkWeights(config, floats, path);
  return {
    format: "gguf",
    config,
    weights: asked === "f32" ? floats : storeWeights(config, floats, asked!),
    tokenizer,
    formats,
  };
}

/** A GGUF file, parsed (its size checked against memory first), or a checkpoint, read. */
async function readGgufOrCheckpoint(
  path: string,
): Promise<{ file: GgufFile; fileBytes: number } | ModelFile> {
  let bytes: Uint8Array;
  try {
    // A regular file, read within its size, as checkpoints are (model/formats/_file.ts).
    bytes = await readBoundedFile(path, "checkpoint", (header, size) => {
      if (!isGguf(header)) throw NOT_GGUF;
      checkFits(size, `${path}: a GGUF file of`); // before reading it
      return size;
    }, 4);
  } catch (error) {
    if (error !== NOT_GGUF) throw error;
    return await readCheckpoint(path);
  }
  return { file: parseGguf(bytes, path), fileBytes: bytes.byteLength };
}

const NOT_GGUF = new Error("not a GGUF file");
