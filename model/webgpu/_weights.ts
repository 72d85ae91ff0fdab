// The weights on the GPU: uploaded once from `LlamaWeights`, tensor by tensor as
// `layerTensorShapes` (model/weights.ts) sizes them, matrices split into row blocks where one
// exceeds the binding limit; or from `StoredWeights` (f16/Q8_0/Q4_0/K-quant matrices packed for
// gpu/matmul/quant.ts, in row blocks too past the limit; the embedding table dequantized for
// the lookup); and freed.
import type { LlamaConfig } from "../config.ts";
import {
  type LayerMatrix,
  layerTensorShapes,
  type LayerVector,
  type LayerWeights,
  type LlamaWeights,
  parameterCount,
} from "../weights.ts";
import { dequantizeWeights, type StoredMatrix, type StoredWeights } from "../precision.ts";
import type { BufferRange, Dispatch, Gpu } from "../../gpu/device.ts";
import { type GpuMatrix, matmulDispatches, uploadMatrix } from "../../gpu/matmul/matmul.ts";
import {
  type GpuPackedMatrix,
  packMatrix,
  quantMatmulDispatches,
  uploadPacked,
} from "../../gpu/matmul/quant.ts";
import { dequantize } from "../../reference/quantize.ts";
import {
  packedMatrixDispatches,
  packedProjectionVariant,
} from "../../gpu/matmul/packed_projection.ts";

const MATRICES: LayerMatrix[] = ["wq", "wk", "wv", "wo", "w1", "w2", "w3"];

/** A weight matrix on the GPU: f32 row blocks, or packed f16/Q8_0/Q4_0. */
export type GpuWeightMatrix = GpuMatrix | GpuPackedMatrix;

/** One transformer block's weights on the GPU: matrices as row blocks, norm weights as buffers. */
export type GpuLayerWeights = Record<LayerMatrix, GpuWeightMatrix> & Record<LayerVector, GPUBuffer>;

/** All weights on the GPU. */
export interface GpuWeights {
  /** Token embeddings, `(vocabSize, dim)`. */
  tokenEmbedding: GpuMatrix;
  /** Transformer blocks. */
  layers: GpuLayerWeights[];
  /** RMSNorm before the classifier, `(dim)`. */
  finalNorm: GPUBuffer;
  /** Output classifier, `(vocabSize, dim)`; the embedding's blocks when shared and f32. */
  classifier: GpuWeightMatrix;
  /** Bytes resident on the GPU. */
  bytes: number;
}

/**
 * The dispatches of `out = x · Wᵀ` for `rows` rows of `x`, whatever `m`'s format: Q8_0/Q4_0
 * over Q8 activations (as the CPU decoder computes them), where the workgroup budget allows.
 */
export function projectDispatches(
  gpu: Gpu,
  m: GpuWeightMatrix,
  args: { rows: number; x: BufferRange; out: BufferRange; xOffset?: number },
): Promise<Dispatch[]> {
  if ("chunks" in m) return matmulDispatches(gpu, m, args);
  const shape = {
    format: m.format,
    rows: args.rows,
    units: m.outDim,
    inDim: m.inDim,
    pair: 1,
    norm: false,
  };
  const q8 = m.format !== "f16" && packedProjectionVariant("q8 row").applies(shape, gpu);
  if (!q8) return quantMatmulDispatches(gpu, m, args);
  return packedMatrixDispatches(gpu, m, { kind: "store" }, ["q8 row"], {
    rows: args.rows,
    x: args.x,
    xOffset: args.xOffset,
    buffers: { out: args.out },
  });
}

function matrixBytes(m: GpuWeightMatrix): number {
  return "chunks" in m ? m.outDim * m.inDim * 4 : m.bytes;
}

/** Uploads validated weights; `maxBindingBytes` caps each block (the device limit by default). */
export function uploadWeights(
  gpu: Gpu,
  config: LlamaConfig,
  weights: LlamaWeights | StoredWeights,
  maxBindingBytes?: number,
): GpuWeights {
  if ("format" in weights) {
    // Only all-f32 weights take the f32 path: a file's K-quant matrix stays packed among f32 ones.
    const allF32 = [weights.classifier, ...weights.layers.flatMap((l) => MATRICES.map((m) => l[m]))]
      .every((m) => m.format === "f32");
    return allF32
      ? uploadWeights(gpu, config, dequantizeWeights(weights), maxBindingBytes)
      : uploadStored(gpu, config, weights, maxBindingBytes);
  }
  const { dim, vocabSize } = config;
  const matrix = (w: Float32Array, outDim: number, inDim: number, label: string) =>
    uploadMatrix(gpu, w, outDim, inDim, { maxBindingBytes, label });
  const shapes: Record<string, readonly number[]> = layerTensorShapes(config);
  const layers = weights.layers.map((layer, l) =>
    Object.fromEntries(
      Object.entries(shapes).map(([name, shape]) => {
        const tensor = layer[name as keyof LayerWeights];
        const label = `layers[${l}].${name}`;
        return [
          name,
          shape.length === 2
            ? matrix(tensor, shape[0], shape[1], label)
            : gpu.upload(tensor, label),
        ];
      }),
    ) as GpuLayerWeights
  );
  const tokenEmbedding = matrix(weights.tokenEmbedding, vocabSize, dim, "tokenEmbedding");
  return {
    tokenEmbedding,
    layers,
    finalNorm: gpu.upload(weights.finalNorm, "finalNorm"),
    classifier: config.sharedClassifier
      ? tokenEmbedding
      : matrix(weights.classifier, vocabSize, dim, "classifier"),
    bytes: parameterCount(config) * 4,
  };
}

/** Uploads weights stored in f16/Q8_0/Q4_0 (matrices that fell back to f32 stay f32). */
function uploadStored(
  gpu: Gpu,
  config: LlamaConfig,
  weights: StoredWeights,
  maxBindingBytes?: number,
): GpuWeights {
  const matrix = (m: StoredMatrix, label: string): GpuWeightMatrix =>
    m.format === "f32"
      ? uploadMatrix(gpu, dequantize(m.bytes, "f32", m.rows * m.cols), m.rows, m.cols, {
        maxBindingBytes,
        label,
      })
      : uploadPacked(gpu, packMatrix(m.bytes, m.format, m.rows, m.cols), label, maxBindingBytes);
  const matrices = MATRICES;
  const layers = weights.layers.map((layer, l) => ({
    ...Object.fromEntries(
      matrices.map((name) => [name, matrix(layer[name], `layers[${l}].${name}`)]),
    ) as Record<LayerMatrix, GpuWeightMatrix>,
    attentionNorm: gpu.upload(layer.attentionNorm, `layers[${l}].attentionNorm`),
    ffnNorm: gpu.upload(layer.ffnNorm, `layers[${l}].ffnNorm`),
  }));
  // The lookup reads f32 rows: the table dequantized (the values the CPU decoder reads).
  const table = weights.tokenEmbedding;
  const tokenEmbedding = uploadMatrix(
    gpu,
    dequantize(table.bytes, table.format, table.rows * table.cols),
    table.rows,
    table.cols,
    { maxBindingBytes, label: "tokenEmbedding" },
  );
  const classifier = matrix(weights.classifier, "classifier");
  const norms = (2 * config.nLayers + 1) * config.dim * 4;
  const bytes = matrixBytes(tokenEmbedding) + matrixBytes(classifier) + norms +
    layers.reduce(
      (n, layer) => n + matrices.reduce((m, name) => m + matrixBytes(layer[name]), 0),
      0,
    );
  return {
    tokenEmbedding,
    layers,
    finalNorm: gpu.upload(weights.finalNorm, "finalNorm"),
    classifier,
    bytes,
  };
}

/** Frees every buffer of `weights` (a shared classifier once). */
export function destroyWeights(weights: GpuWeights): void {
  const matrices = new Set<GpuWeightMatrix>([weights.tokenEmbedding, weights.classifier]);
  const buffers = [weights.finalNorm];
  for (const layer of weights.layers) {
    for (const tensor of Object.values(layer) as (GpuWeightMatrix | GPUBuffer)[]) {
      if ("chunks" in tensor || "format" in tensor) matrices.add(tensor);
      else buffers.push(tensor);
    }
  }
  for (const matrix of matrices) {
    if ("chunks" in matrix) { for (const chunk of matrix.chunks) chunk.buffer.destroy(); }
    else {
      for (const block of matrix.blocks) {
        block.weights.destroy();
        block.scales?.destroy();
      }
    }
  }
  for (const buffer of buffers) buffer.destroy();
}
