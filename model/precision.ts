/**
 * Weights held in a storage format (f32, f16, Q8_0, Q4_0, the K-quants): the matrices quantized
 * tensor by tensor, the norm weights kept in f32, and the products the CPU decoder computes over
 * them (dequantizing, accumulating in f64). A block format falls back for a matrix whose rows
 * are not whole blocks, as llama.cpp's converter does (see {@linkcode matrixFormat}).
 *
 * @module
 */
import { headDim, type LlamaConfig } from "./config.ts";
import {
  type LayerMatrix,
  layerTensorSizes,
  type LayerWeights,
  type LlamaWeights,
} from "./weights.ts";
import {
  dequantize,
  formatBlockValues,
  formatBytes,
  matvecQuantized,
  QUANT_BLOCK,
  quantize,
  TENSOR_FORMATS,
  type TensorFormat,
} from "../reference/quantize.ts";
import { isKQuantFormat } from "../reference/kquants.ts";
import { KV_FORMATS, type KvFormat } from "../reference/kv_cache.ts";
import { matmul } from "../reference/matmul.ts";
import { matvecQ8Activations, quantizeActivations } from "../reference/q8_activations.ts";
import { Rng } from "../reference/random.ts";

/** A weight matrix `(rows, cols)` stored in a format, in GGUF's byte layout. */
export interface StoredMatrix {
  /** Storage format. */
  format: TensorFormat;
  /** Rows (features out). */
  rows: number;
  /** Columns (features in). */
  cols: number;
  /** The bytes, row after row. */
  bytes: Uint8Array;
}

type MatrixName = LayerMatrix;

/** One layer's weights: matrices stored, norm weights f32. */
export type StoredLayer =
  & { [K in LayerMatrix]: StoredMatrix }
  & { attentionNorm: Float32Array; ffnNorm: Float32Array };

/** A model's weights in a storage format. */
export interface StoredWeights {
  /** The format asked for (some matrices may have fallen back to f16). */
  format: TensorFormat;
  /** Token embeddings `(vocabSize, dim)`. */
  tokenEmbedding: StoredMatrix;
  /** Transformer blocks. */
  layers: StoredLayer[];
  /** Final RMSNorm weight. */
  finalNorm: Float32Array;
  /** Classifier `(vocabSize, dim)`; the token embedding itself when shared. */
  classifier: StoredMatrix;
}

const MATRICES: MatrixName[] = ["wq", "wk", "wv", "wo", "w1", "w2", "w3"];

/**
 * The format a matrix with `cols` columns gets when `format` is asked for: a block format needs
 * rows of whole blocks (32 values, 256 for a K-quant); otherwise a K-quant falls back to Q8_0
 * (rows of 32) and the others to f16.
 *
 * @example
 * ```ts
 * import { matrixFormat } from "./precision.ts";
 * if (matrixFormat("q4_0", 172) !== "f16" || matrixFormat("q4_0", 64) !== "q4_0") throw new Error("wrong");
 * if (matrixFormat("q4_k", 288) !== "q8_0" || matrixFormat("q4_k", 768) !== "q4_k") throw new Error("wrong");
 * ```
 */
export function matrixFormat(format: TensorFormat, cols: number): TensorFormat {
  if (cols % formatBlockValues(format) === 0) return format;
  // llama.cpp stores such a K-quant matrix in a 32-value format (Q5_0, Q5_1 or Q8_0); Q8_0 is
  // the one here.
  if (isKQuantFormat(format) && cols % QUANT_BLOCK === 0) return "q8_0";
  return "f16";
}

/** Throws unless `format` is a weight format, naming `what`. */
export function checkWeightFormat(format: string, what = "weights"): TensorFormat {
  if (!TENSOR_FORMATS.includes(format as TensorFormat)) {
    throw new RangeError(`${what}: expected one of ${TENSOR_FORMATS.join(", ")}, got "${format}"`);
  }
  return format as TensorFormat;
}

/** Throws unless `format` is a KV-cache format, naming `what`. */
export function checkKvFormat(format: string, what = "kvCache"): KvFormat {
  if (!KV_FORMATS.includes(format as KvFormat)) {
    throw new RangeError(`${what}: expected one of ${KV_FORMATS.join(", ")}, got "${format}"`);
  }
  return format as KvFormat;
}

/** Matrix shapes `[rows, cols]` of one layer. */
function matrixShapes(config: LlamaConfig): Record<MatrixName, [number, number]> {
  const { dim, hiddenDim } = config;
  const qDim = config.nHeads * headDim(config);
  const kvDim = config.nKvHeads * headDim(config);
  return {
    wq: [qDim, dim],
    wk: [kvDim, dim],
    wv: [kvDim, dim],
    wo: [dim, qDim],
    w1: [hiddenDim, dim],
    w2: [dim, hiddenDim],
    w3: [hiddenDim, dim],
  };
}

function store(
  values: Float32Array,
  format: TensorFormat,
  rows: number,
  cols: number,
): StoredMatrix {
  const actual = matrixFormat(format, cols);
  // f32 is a view of the caller's array: no copy.
  const bytes = actual === "f32"
    ? new Uint8Array(values.buffer, values.byteOffset, values.byteLength)
    : quantize(values, actual);
  return { format: actual, rows, cols, bytes };
}

/**
 * Stores float32 weights in `format`.
 *
 * @example
 * ```ts
 * import { makeConfig } from "./config.ts";
 * import { randomWeights } from "./weights.ts";
 * import { storeWeights } from "./precision.ts";
 * const config = makeConfig({ dim: 32, hiddenDim: 64, nLayers: 1, nHeads: 4, nKvHeads: 2, vocabSize: 8, maxSeqLen: 4 });
 * const stored = storeWeights(config, randomWeights(config, 1), "q4_0");
 * if (stored.layers[0].wq.bytes.length !== 32 * 18) throw new Error("wrong");
 * ```
 */
export function storeWeights(
  config: LlamaConfig,
  weights: LlamaWeights,
  format: TensorFormat,
): StoredWeights {
  checkWeightFormat(format);
  const shapes = matrixShapes(config);
  const tokenEmbedding = store(weights.tokenEmbedding, format, config.vocabSize, config.dim);
  return {
    format,
    tokenEmbedding,
    layers: weights.layers.map((layer) => ({
      ...Object.fromEntries(
        MATRICES.map((name) => [name, store(layer[name], format, ...shapes[name])]),
      ) as Record<MatrixName, StoredMatrix>,
      attentionNorm: layer.attentionNorm,
      ffnNorm: layer.ffnNorm,
    })),
    finalNorm: weights.finalNorm,
    classifier: config.sharedClassifier
      ? tokenEmbedding
      : store(weights.classifier, format, config.vocabSize, config.dim),
  };
}

/**
 * The same seeded random weights as {@linkcode randomWeights}, drawn and stored one tensor at a
 * time, so that a model too big for float32 (Llama-2-7B: 27 GB) fits in `format`.
 *
 * @example
 * ```ts
 * import { makeConfig } from "./config.ts";
 * import { randomStoredWeights } from "./precision.ts";
 * const config = makeConfig({ dim: 32, hiddenDim: 64, nLayers: 1, nHeads: 4, nKvHeads: 2, vocabSize: 8, maxSeqLen: 4 });
 * if (randomStoredWeights(config, 1, "q8_0").layers[0].w2.format !== "q8_0") throw new Error("wrong");
 * ```
 */
export function randomStoredWeights(
  config: LlamaConfig,
  seed: number,
  format: TensorFormat,
): StoredWeights {
  checkWeightFormat(format);
  // The draw order and ranges of randomWeights (weights.ts), tensor by tensor.
  const rng = new Rng(seed);
  const shapes = matrixShapes(config);
  const matrix = ([rows, cols]: [number, number]) => {
    const bound = 1 / Math.sqrt(cols);
    return store(rng.uniformArray(rows * cols, -bound, bound), format, rows, cols);
  };
  const norm = () => rng.uniformArray(config.dim, 0.8, 1.2);
  const tokenEmbedding = store(
    rng.uniformArray(config.vocabSize * config.dim),
    format,
    config.vocabSize,
    config.dim,
  );
  const layers = Array.from({ length: config.nLayers }, () => {
    const attentionNorm = norm();
    const [wq, wk, wv, wo] = [
      matrix(shapes.wq),
      matrix(shapes.wk),
      matrix(shapes.wv),
      matrix(shapes.wo),
    ];
    const ffnNorm = norm();
    const [w1, w2, w3] = [matrix(shapes.w1), matrix(shapes.w2), matrix(shapes.w3)];
    return { attentionNorm, wq, wk, wv, wo, ffnNorm, w1, w2, w3 };
  });
  const finalNorm = norm();
  const classifier = config.sharedClassifier
    ? tokenEmbedding
    : matrix([config.vocabSize, config.dim]);
  return { format, tokenEmbedding, layers, finalNorm, classifier };
}

/** The period of the quickly drawn f16 weights' matrices: a prime, 2^16 + 1. */
const TABLED_PERIOD = 65_537;

/**
 * Seeded random f16 weights drawn quickly: each matrix repeats a random sequence of 65,537
 * halves (picked by a xorshift index from a table of 4096 values uniform in ±1/sqrt(cols),
 * quantized once), copied block by block. The period is prime, so no two of a matrix's first
 * 65,537 rows start at the same place in it, and a row read in place of another gives other
 * values. For shapes whose quantization value by value would take minutes (a
 * TinyLlama-1.1B-shaped layer and its 32000x2048 tables hold 175M values): for checks of
 * kernels' indexing and limits, where the values' distribution does not matter. Not the same
 * weights as {@linkcode randomStoredWeights}.
 *
 * @example
 * ```ts
 * import { makeConfig } from "./config.ts";
 * import { tabledF16Weights } from "./precision.ts";
 * const config = makeConfig({ dim: 32, hiddenDim: 64, nLayers: 1, nHeads: 4, nKvHeads: 2, vocabSize: 8, maxSeqLen: 4 });
 * if (tabledF16Weights(config, 3).layers[0].w1.bytes.length !== 64 * 32 * 2) throw new Error("wrong");
 * ```
 */
export function tabledF16Weights(config: LlamaConfig, seed: number): StoredWeights {
  const rng = new Rng(seed);
  let state = Math.imul(seed, 2654435761) >>> 0 || 1;
  const matrix = ([rows, cols]: [number, number]): StoredMatrix => {
    const bound = 1 / Math.sqrt(cols);
    const table = new Uint16Array(quantize(rng.uniformArray(4096, -bound, bound), "f16").buffer);
    const halves = new Uint16Array(rows * cols);
    const period = Math.min(TABLED_PERIOD, halves.length);
    for (let i = 0; i < period; i++) {
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      halves[i] = table[state & 4095];
    }
    // doubling copies keep the period: each copies a whole number of periods
    for (let filled = period; filled < halves.length; filled *= 2) {
      halves.copyWithin(filled, 0, Math.min(filled, halves.length - filled));
    }
    return { format: "f16", rows, cols, bytes: new Uint8Array(halves.buffer) };
  };
  const shapes = matrixShapes(config);
  const norm = () => rng.uniformArray(config.dim, 0.8, 1.2);
  const tokenEmbedding = matrix([config.vocabSize, config.dim]);
  return {
    format: "f16",
    tokenEmbedding,
    layers: Array.from({ length: config.nLayers }, () => ({
      attentionNorm: norm(),
      ffnNorm: norm(),
      ...Object.fromEntries(MATRICES.map((name) => [name, matrix(shapes[name])])) as Record<
        MatrixName,
        StoredMatrix
      >,
    })),
    finalNorm: norm(),
    classifier: config.sharedClassifier ? tokenEmbedding : matrix([config.vocabSize, config.dim]),
  };
}

/**
 * Bytes of `config`'s weights stored in `format` (the classifier once when shared), computed
 * without allocating: what a memory check compares.
 *
 * @example
 * ```ts
 * import { preset } from "./config.ts";
 * import { storedWeightBytes } from "./precision.ts";
 * const gb = storedWeightBytes(preset("Llama-2-7B"), "q4_0") / 1e9;
 * if (gb < 3.7 || gb > 3.9) throw new Error("wrong");
 * ```
 */
export function storedWeightBytes(config: LlamaConfig, format: TensorFormat): number {
  const matrixBytes = (rows: number, cols: number) =>
    formatBytes(matrixFormat(format, cols), rows * cols);
  const shapes = matrixShapes(config);
  const perLayer = MATRICES.reduce((n, name) => n + matrixBytes(...shapes[name]), 0) +
    2 * config.dim * 4;
  const embedding = matrixBytes(config.vocabSize, config.dim);
  return embedding + config.nLayers * perLayer + config.dim * 4 +
    (config.sharedClassifier ? 0 : embedding);
}

/**
 * Weight bytes one decode step reads with `config`'s weights stored in `format`: every layer's
 * matrices and norms, the final norm, the classifier, and one row of the embedding table (all
 * of it when it is the classifier too). Unlike {@linkcode storedWeightBytes} (what is held), a
 * separate embedding table counts one row: a 32000-token table is a third of stories15M's bytes
 * and none of its traffic.
 *
 * @example
 * ```ts
 * import { makeConfig } from "./config.ts";
 * import { storedBytesPerToken, storedWeightBytes } from "./precision.ts";
 * const config = makeConfig({ dim: 32, hiddenDim: 64, nLayers: 1, nHeads: 4, nKvHeads: 2, vocabSize: 8, maxSeqLen: 4, sharedClassifier: false });
 * // the table's other 7 rows of 32 f32 values are not read
 * if (storedWeightBytes(config, "f32") - storedBytesPerToken(config, "f32") !== 7 * 32 * 4) throw new Error("wrong");
 * ```
 */
export function storedBytesPerToken(config: LlamaConfig, format: TensorFormat): number {
  if (config.sharedClassifier) return storedWeightBytes(config, format);
  const row = formatBytes(matrixFormat(format, config.dim), config.dim);
  return storedWeightBytes(config, format) - (config.vocabSize - 1) * row;
}

/** Bytes that `weights` occupy (the classifier once when shared). */
export function weightsBytes(weights: StoredWeights): number {
  const layer = (l: StoredLayer) =>
    MATRICES.reduce((n, name) => n + l[name].bytes.byteLength, 0) +
    l.attentionNorm.byteLength + l.ffnNorm.byteLength;
  return weights.tokenEmbedding.bytes.byteLength +
    weights.layers.reduce((n, l) => n + layer(l), 0) + weights.finalNorm.byteLength +
    (weights.classifier === weights.tokenEmbedding ? 0 : weights.classifier.bytes.byteLength);
}

/** The float32 weights that `stored` holds (each matrix dequantized). */
export function dequantizeWeights(stored: StoredWeights): LlamaWeights {
  const matrix = (m: StoredMatrix) => dequantize(m.bytes, m.format, m.rows * m.cols);
  const tokenEmbedding = matrix(stored.tokenEmbedding);
  return {
    tokenEmbedding,
    layers: stored.layers.map((layer) => ({
      ...Object.fromEntries(MATRICES.map((name) => [name, matrix(layer[name])])) as Record<
        MatrixName,
        Float32Array
      >,
      attentionNorm: layer.attentionNorm,
      ffnNorm: layer.ffnNorm,
    })) as LayerWeights[],
    finalNorm: stored.finalNorm,
    classifier: stored.classifier === stored.tokenEmbedding
      ? tokenEmbedding
      : matrix(stored.classifier),
  };
}

/**
 * `W · x[t]` for each of `count` rows of `x`: f32/f16 matrices dequantized and accumulated in
 * f64 (see `matvecQuantized`); Q8_0/Q4_0 ones over `x[t]` quantized to Q8 blocks, with integer
 * block products, as llama.cpp (see `reference/q8_activations.ts` for the error this adds).
 *
 * @example
 * ```ts
 * import { quantize } from "../reference/quantize.ts";
 * import { storedMatmul } from "./precision.ts";
 * const w = { format: "f16" as const, rows: 1, cols: 2, bytes: quantize(new Float32Array([1, 2]), "f16") };
 * if (storedMatmul(w, new Float32Array([3, 4, 5, 6]), 2).join() !== "11,17") throw new Error("wrong");
 * ```
 */
export function storedMatmul(w: StoredMatrix, x: Float32Array, count = 1): Float32Array {
  if (w.format === "f32" && w.bytes.byteOffset % 4 === 0) {
    const floats = new Float32Array(w.bytes.buffer, w.bytes.byteOffset, w.rows * w.cols);
    return matmul(floats, x, count, w.rows, w.cols);
  }
  const out = new Float32Array(count * w.rows);
  for (let t = 0; t < count; t++) {
    const xt = x.subarray(t * w.cols, (t + 1) * w.cols);
    const row = out.subarray(t * w.rows, (t + 1) * w.rows);
    if (w.format === "q8_0" || w.format === "q4_0") {
      // as llama.cpp: the activations quantized once to Q8 blocks, integer block products
      matvecQ8Activations(w.bytes, w.format, quantizeActivations(xt), w.rows, w.cols, row);
    } else row.set(matvecQuantized(w.bytes, w.format, xt, w.rows, w.cols));
  }
  return out;
}

/**
 * Rows `tokens` of a stored table `(rows, cols)`, dequantized: `(tokens.length, cols)`.
 *
 * @example
 * ```ts
 * import { quantize } from "../reference/quantize.ts";
 * import { storedRows } from "./precision.ts";
 * const table = { format: "f16" as const, rows: 2, cols: 2, bytes: quantize(new Float32Array([1, 2, 3, 4]), "f16") };
 * if (storedRows(table, [1, 0]).join() !== "3,4,1,2") throw new Error("wrong");
 * ```
 */
export function storedRows(table: StoredMatrix, tokens: readonly number[]): Float32Array {
  const rowBytes = formatBytes(table.format, table.cols);
  const out = new Float32Array(tokens.length * table.cols);
  tokens.forEach((token, i) => {
    if (!Number.isInteger(token) || token < 0 || token >= table.rows) {
      throw new RangeError(
        `embedding token ${i}: expected an id in [0, ${table.rows}), got ${token}`,
      );
    }
    const bytes = table.bytes.subarray(token * rowBytes, (token + 1) * rowBytes);
    out.set(dequantize(bytes, table.format, table.cols), i * table.cols);
  });
  return out;
}

/** Checks that `stored` matches `config`'s shapes, naming the tensor. */
export function checkStoredWeights(config: LlamaConfig, stored: StoredWeights): void {
  const shapes = matrixShapes(config);
  const check = (name: string, m: StoredMatrix, rows: number, cols: number) => {
    if (
      m.rows !== rows || m.cols !== cols ||
      m.bytes.byteLength !== formatBytes(m.format, rows * cols)
    ) {
      throw new RangeError(
        `weights: ${name} is ${m.rows}x${m.cols} (${m.bytes.byteLength} bytes of ${m.format}), expected ${rows}x${cols}`,
      );
    }
  };
  if (stored.layers.length !== config.nLayers) {
    throw new RangeError(`weights: ${stored.layers.length} layers, expected ${config.nLayers}`);
  }
  check("tokenEmbedding", stored.tokenEmbedding, config.vocabSize, config.dim);
  check("classifier", stored.classifier, config.vocabSize, config.dim);
  const sizes = layerTensorSizes(config);
  stored.layers.forEach((layer, l) => {
    for (const name of MATRICES) check(`layers[${l}].${name}`, layer[name], ...shapes[name]);
    for (const norm of ["attentionNorm", "ffnNorm"] as const) {
      if (layer[norm].length !== sizes[norm]) {
        throw new RangeError(
          `weights: layers[${l}].${norm} has ${layer[norm].length} floats, expected ${sizes[norm]}`,
        );
      }
    }
  });
}
