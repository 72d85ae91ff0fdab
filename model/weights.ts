/**
 * LLaMA weights: their shapes (as llama2.c documents them, `(out, in)` row-major), seeded
 * random initialization, and validation.
 *
 * @module
 */
import { headDim, type LlamaConfig } from "./config.ts";
import { Rng } from "../reference/random.ts";

/** Weights of one transformer block. Matrices are `(out, in)` row-major. */
export interface LayerWeights {
  /** RMSNorm before attention, `(dim)`. */
  attentionNorm: Float32Array;
  /** Query projection, `(nHeads·headDim, dim)`. */
  wq: Float32Array;
  /** Key projection, `(nKvHeads·headDim, dim)`. */
  wk: Float32Array;
  /** Value projection, `(nKvHeads·headDim, dim)`. */
  wv: Float32Array;
  /** Attention output projection, `(dim, nHeads·headDim)`. */
  wo: Float32Array;
  /** RMSNorm before the feed-forward block, `(dim)`. */
  ffnNorm: Float32Array;
  /** Feed-forward gate, `(hiddenDim, dim)`. */
  w1: Float32Array;
  /** Feed-forward down projection, `(dim, hiddenDim)`. */
  w2: Float32Array;
  /** Feed-forward up projection, `(hiddenDim, dim)`. */
  w3: Float32Array;
}

/** All weights of a LLaMA decoder. */
export interface LlamaWeights {
  /** Token embeddings, `(vocabSize, dim)`. */
  tokenEmbedding: Float32Array;
  /** Transformer blocks, `nLayers` of them. */
  layers: LayerWeights[];
  /** RMSNorm before the classifier, `(dim)`. */
  finalNorm: Float32Array;
  /** Output classifier, `(vocabSize, dim)`; the same array as `tokenEmbedding` when shared. */
  classifier: Float32Array;
}

/** Per-layer tensors that are matrices, `(out, in)` row-major. */
export type LayerMatrix = "wq" | "wk" | "wv" | "wo" | "w1" | "w2" | "w3";

/** Per-layer tensors that are vectors (norm weights). */
export type LayerVector = "attentionNorm" | "ffnNorm";

/** The shape of each per-layer tensor: `[out, in]` for a matrix, `[length]` for a vector. */
export type LayerTensorShapes =
  & { [K in LayerMatrix]: readonly [out: number, inner: number] }
  & { [K in LayerVector]: readonly [length: number] };

/**
 * The shape of each per-layer tensor, in {@linkcode LayerWeights} order: the one table that
 * sizes, checks, reads and uploads the weights.
 *
 * @example
 * ```ts
 * import { makeConfig } from "./config.ts";
 * import { layerTensorShapes } from "./weights.ts";
 * const config = makeConfig({ dim: 8, hiddenDim: 16, nLayers: 1, nHeads: 2, nKvHeads: 1, vocabSize: 10, maxSeqLen: 4 });
 * if (layerTensorShapes(config).wk.join() !== "4,8") throw new Error("wrong");
 * ```
 */
export function layerTensorShapes(config: LlamaConfig): LayerTensorShapes {
  const { dim, hiddenDim, nHeads, nKvHeads } = config;
  const qDim = nHeads * headDim(config);
  const kvDim = nKvHeads * headDim(config);
  return {
    attentionNorm: [dim],
    wq: [qDim, dim],
    wk: [kvDim, dim],
    wv: [kvDim, dim],
    wo: [dim, qDim],
    ffnNorm: [dim],
    w1: [hiddenDim, dim],
    w2: [dim, hiddenDim],
    w3: [hiddenDim, dim],
  };
}

/** Floats of each per-layer tensor, in {@linkcode LayerWeights} order. */
export function layerTensorSizes(config: LlamaConfig): Record<keyof LayerWeights, number> {
  const shapes: Record<string, readonly number[]> = layerTensorShapes(config);
  return Object.fromEntries(
    Object.entries(shapes).map(([name, shape]) => [name, shape.reduce((a, b) => a * b, 1)]),
  ) as Record<keyof LayerWeights, number>;
}

/** Number of parameters (the classifier counted once when shared). */
export function parameterCount(config: LlamaConfig): number {
  const perLayer = Object.values(layerTensorSizes(config)).reduce((a, b) => a + b, 0);
  const embedding = config.vocabSize * config.dim;
  return embedding + config.nLayers * perLayer + config.dim +
    (config.sharedClassifier ? 0 : embedding);
}

/**
 * Seeded random weights for any configuration, so everything runs with no download:
 * projections uniform in ±1/sqrt(in), norm weights near 1, embeddings uniform in [-1, 1].
 *
 * @example
 * ```ts
 * import { makeConfig } from "./config.ts";
 * import { randomWeights } from "./weights.ts";
 * const config = makeConfig({ dim: 8, hiddenDim: 16, nLayers: 1, nHeads: 2, nKvHeads: 1, vocabSize: 10, maxSeqLen: 4 });
 * const w = randomWeights(config, 1);
 * if (w.layers[0].wk.length !== 4 * 8 || w.classifier !== w.tokenEmbedding) throw new Error("wrong");
 * ```
 */
export function randomWeights(config: LlamaConfig, seed = 0): LlamaWeights {
  const rng = new Rng(seed);
  const sizes = layerTensorSizes(config);
  const projection = (n: number, inDim: number) =>
    rng.uniformArray(n, -1 / Math.sqrt(inDim), 1 / Math.sqrt(inDim));
  const norm = () => rng.uniformArray(config.dim, 0.8, 1.2);
  const tokenEmbedding = rng.uniformArray(config.vocabSize * config.dim);
  const layers = Array.from({ length: config.nLayers }, () => ({
    attentionNorm: norm(),
    wq: projection(sizes.wq, config.dim),
    wk: projection(sizes.wk, config.dim),
    wv: projection(sizes.wv, config.dim),
    wo: projection(sizes.wo, config.nHeads * headDim(config)),
    ffnNorm: norm(),
    w1: projection(sizes.w1, config.dim),
    w2: projection(sizes.w2, config.hiddenDim),
    w3: projection(sizes.w3, config.dim),
  }));
  const finalNorm = norm();
  const classifier = config.sharedClassifier
    ? tokenEmbedding
    : projection(config.vocabSize * config.dim, config.dim);
  return { tokenEmbedding, layers, finalNorm, classifier };
}

/**
 * Throws an error naming `source` and the tensor unless every tensor has its configured size
 * and holds only finite numbers.
 *
 * @example
 * ```ts
 * import { makeConfig } from "./config.ts";
 * import { checkWeights, randomWeights } from "./weights.ts";
 * const config = makeConfig({ dim: 8, hiddenDim: 16, nLayers: 1, nHeads: 2, nKvHeads: 1, vocabSize: 10, maxSeqLen: 4 });
 * checkWeights(config, randomWeights(config));
 * ```
 */
export function checkWeights(config: LlamaConfig, weights: LlamaWeights, source = "weights"): void {
  const check = (name: string, tensor: Float32Array, expected: number) => {
    if (tensor.length !== expected) {
      throw new RangeError(`${source}: ${name} has ${tensor.length} floats, expected ${expected}`);
    }
    for (let i = 0; i < tensor.length; i++) {
      if (!Number.isFinite(tensor[i])) {
        throw new RangeError(
          `${source}: ${name} holds a non-finite value (${tensor[i]}) at index ${i}`,
        );
      }
    }
  };
  if (weights.layers.length !== config.nLayers) {
    throw new RangeError(`${source}: ${weights.layers.length} layers, expected ${config.nLayers}`);
  }
  check("tokenEmbedding", weights.tokenEmbedding, config.vocabSize * config.dim);
  const sizes = layerTensorSizes(config);
  weights.layers.forEach((layer, l) => {
    for (const [name, size] of Object.entries(sizes)) {
      check(`layers[${l}].${name}`, layer[name as keyof LayerWeights], size);
    }
  });
  check("finalNorm", weights.finalNorm, config.dim);
  if (!config.sharedClassifier) {
    check("classifier", weights.classifier, config.vocabSize * config.dim);
  }
}
