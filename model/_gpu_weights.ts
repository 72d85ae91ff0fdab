// The weights on the GPU: uploaded once from `LlamaWeights`, tensor by tensor as
// `layerTensorShapes` (model/weights.ts) sizes them, matrices split into row blocks where one
// exceeds the binding limit; and freed.
import type { LlamaConfig } from "./config.ts";
import {
  type LayerMatrix,
  layerTensorShapes,
  type LayerVector,
  type LayerWeights,
  type LlamaWeights,
} from "./weights.ts";
import type { Gpu } from "../gpu/device.ts";
import { type GpuMatrix, uploadMatrix } from "../gpu/matmul.ts";

/** One transformer block's weights on the GPU: matrices as row blocks, norm weights as buffers. */
export type GpuLayerWeights = Record<LayerMatrix, GpuMatrix> & Record<LayerVector, GPUBuffer>;

/** All weights on the GPU. */
export interface GpuWeights {
  /** Token embeddings, `(vocabSize, dim)`. */
  tokenEmbedding: GpuMatrix;
  /** Transformer blocks. */
  layers: GpuLayerWeights[];
  /** RMSNorm before the classifier, `(dim)`. */
  finalNorm: GPUBuffer;
  /** Output classifier, `(vocabSize, dim)`; the embedding's blocks when shared. */
  classifier: GpuMatrix;
}

/** Uploads validated weights; `maxBindingBytes` caps each block (the device limit by default). */
export function uploadWeights(
  gpu: Gpu,
  config: LlamaConfig,
  weights: LlamaWeights,
  maxBindingBytes?: number,
): GpuWeights {
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
  };
}

/** Frees every buffer of `weights` (a shared classifier once). */
export function destroyWeights(weights: GpuWeights): void {
  const matrices = new Set([weights.tokenEmbedding, weights.classifier]);
  const buffers = [weights.finalNorm];
  for (const layer of weights.layers) {
    for (const tensor of Object.values(layer) as (GpuMatrix | GPUBuffer)[]) {
      if ("chunks" in tensor) matrices.add(tensor);
      else buffers.push(tensor);
    }
  }
  for (const matrix of matrices) for (const chunk of matrix.chunks) chunk.buffer.destroy();
  for (const buffer of buffers) buffer.destroy();
}
