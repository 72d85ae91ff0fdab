// The fused forward pass on WebGPU: per layer five dispatches (six when attention splits its
// keys) instead of ~15, each kernel the variant the decoder's `TuningTable` chooses:
//
// 1. RMSNorm → Q, K, V (one matrix) → RoPE → K/V appended to the cache (`qkvRope`);
// 2. attention (plus its combine pass when split);
// 3. Wo with the residual add;
// 4. RMSNorm → W1, W3 (interleaved) → SiLU·mul;
// 5. W2 with the residual add.
//
// The RMSNorm weights are folded into the matrices' columns at upload.
import { headDim, type LlamaConfig } from "../config.ts";
import type { LayerWeights } from "../weights.ts";
import { type AttentionKernel, attentionKernel } from "../../gpu/attention/attention.ts";
import { tiledAttentionKernel } from "../../gpu/attention/tiled.ts";
import { type BufferRange, type Dispatch, type Gpu, GpuError } from "../../gpu/device.ts";
import { fuseQkv, interleaveGateUp } from "../../gpu/matmul/fused_weights.ts";
import { type GpuMatrix, uploadMatrix } from "../../gpu/matmul/matmul.ts";
import {
  type ProjectionBindings,
  type ProjectionEpilogue,
  projectionKernel,
  projectionVariant,
} from "../../gpu/matmul/projection.ts";
import { attentionKey, projectionKey, type TuningTable } from "../../gpu/tuning.ts";

/** One layer's weights in the fused layouts, and its KV cache. */
export interface FusedLayer {
  /** Q, K, V in rotation pairs, attention norm folded in: `(qDim + 2·kvDim, dim)`. */
  wqkv: GpuMatrix;
  /** The output projection `(dim, qDim)`. */
  wo: GpuMatrix;
  /** W1 and W3 interleaved, FFN norm folded in: `(2·hiddenDim, dim)`. */
  w13: GpuMatrix;
  /** The down projection `(dim, hiddenDim)`. */
  w2: GpuMatrix;
}

/**
 * Uploads layer `l` in the fused layouts.
 *
 * @example
 * ```ts ignore
 * const layer = uploadFusedLayer(gpu, config, weights.layers[0], 0);
 * ```
 */
export function uploadFusedLayer(
  gpu: Gpu,
  config: LlamaConfig,
  layer: LayerWeights,
  l: number,
  maxBindingBytes?: number,
): FusedLayer {
  const { dim, hiddenDim, nHeads, nKvHeads, ropeLayout: layout } = config;
  const hd = headDim(config);
  const qDim = nHeads * hd;
  const kvDim = nKvHeads * hd;
  const matrix = (w: Float32Array, outDim: number, inDim: number, label: string) =>
    uploadMatrix(gpu, w, outDim, inDim, { maxBindingBytes, label: `layers[${l}].${label}` });
  const qkv = fuseQkv(
    layer.wq,
    layer.wk,
    layer.wv,
    { dim, nHeads, nKvHeads, headDim: hd, layout },
    layer.attentionNorm,
  );
  return {
    wqkv: matrix(qkv, qDim + 2 * kvDim, dim, "wqkv"),
    wo: matrix(layer.wo, dim, qDim, "wo"),
    w13: matrix(
      interleaveGateUp(layer.w1, layer.w3, dim, layer.ffnNorm),
      2 * hiddenDim,
      dim,
      "w13",
    ),
    w2: matrix(layer.w2, dim, hiddenDim, "w2"),
  };
}

/** Frees a fused layer's buffers. */
export function destroyFusedLayer(layer: FusedLayer): void {
  for (const m of [layer.wqkv, layer.wo, layer.w13, layer.w2]) {
    for (const chunk of m.chunks) chunk.buffer.destroy();
  }
}

/** What {@linkcode recordFusedLayers} and {@linkcode projectionDispatches} bind. */
export interface FusedBuffers {
  /** The residual stream `(rows, dim)`. */
  x: GPUBuffer;
  /** Queries `(rows, qDim)`. */
  q: GPUBuffer;
  /** Attention output `(rows, qDim)`. */
  att: GPUBuffer;
  /** The gated hidden state `(rows, hiddenDim)`. */
  hb: GPUBuffer;
  /** The state buffer. */
  state: GPUBuffer;
  /** The RoPE table. */
  ropeTable: GPUBuffer;
  /** Each layer's keys `(maxSeqLen, kvDim)`. */
  keyCache: readonly GPUBuffer[];
  /** Each layer's values `(maxSeqLen, kvDim)`. */
  valueCache: readonly GPUBuffer[];
}

/**
 * The dispatches of one projection over a (possibly split) matrix with the tuned variant:
 * one per row block, the block's units offset.
 *
 * @example
 * ```ts ignore
 * const steps = await projectionDispatches(gpu, table, classifier, { kind: "store" }, { rows: 1, x, out: logits });
 * ```
 */
export async function projectionDispatches<E extends ProjectionEpilogue>(
  gpu: Gpu,
  tuning: TuningTable,
  matrix: GpuMatrix,
  epilogue: E,
  args: {
    rows: number;
    x: BufferRange;
    norm?: boolean;
    eps?: number;
    xOffset?: number;
    buffers: Record<ProjectionBindings[E["kind"]], BufferRange>;
  },
): Promise<Dispatch[]> {
  const pair = epilogue.kind === "siluMul" || epilogue.kind === "qkvRope" ? 2 : 1;
  const units = matrix.outDim / pair;
  const { rows, norm = false } = args;
  const key = projectionKey(epilogue.kind, norm, rows, units, matrix.inDim);
  const chosen = projectionVariant(tuning.choice(key));
  const dispatches: Dispatch[] = [];
  for (const chunk of matrix.chunks) {
    const shape = { rows, units: chunk.rows / pair, inDim: matrix.inDim };
    const runs = chosen.applies(shape, gpu) &&
      chosen.features.every((f) => gpu.device.features.has(f));
    // A class default that does not fit this shape (say, a workgroup per row of a 128k-token
    // classifier, past the grid limit) falls back to one row per invocation; a tuning's own
    // choice that does not fit is an error: the tuning was made for another model or device.
    if (!runs && tuning.tuning?.choices[key] !== undefined) {
      throw new GpuError(
        key,
        `tuning: variant ${chosen.name} does not apply to ${shape.rows}x${shape.units}x${shape.inDim} here`,
      );
    }
    const variant = runs ? chosen : projectionVariant("row");
    const kernel = await projectionKernel(
      gpu,
      shape,
      epilogue,
      variant,
      {
        norm,
        eps: args.eps,
        xOffset: args.xOffset,
        unitOffset: chunk.rowStart / pair,
        outStride: units,
      },
    );
    dispatches.push(...kernel.bind({ w: chunk.buffer, x: args.x, ...args.buffers } as never));
  }
  return dispatches;
}

/** The tuned attention kernel for a pass of `rows` tokens. */
export function tunedAttention(
  gpu: Gpu,
  tuning: TuningTable,
  config: LlamaConfig,
  rows: number,
): Promise<AttentionKernel> {
  const { nHeads, nKvHeads } = config;
  const hd = headDim(config);
  const shape = { rows, nHeads, nKvHeads, headDim: hd };
  const choice = tuning.choice(attentionKey(rows, nHeads, nKvHeads, hd));
  if (choice === "tiled" && rows > 1) return tiledAttentionKernel(gpu, shape);
  const splits = choice.startsWith("split") && choice !== "split auto"
    ? Number(choice.slice(5))
    : undefined;
  return attentionKernel(gpu, { ...shape, splits });
}

/**
 * Records every layer of a fused forward pass over `rows` tokens at `state.pos`, with
 * `attend` (from {@linkcode tunedAttention}; the caller owns it and destroys it).
 *
 * @example
 * ```ts ignore
 * const attend = await tunedAttention(gpu, table, config, 1);
 * const steps = await recordFusedLayers(gpu, table, config, 1, layers, buffers, attend);
 * ```
 */
export async function recordFusedLayers(
  gpu: Gpu,
  tuning: TuningTable,
  config: LlamaConfig,
  rows: number,
  layers: readonly FusedLayer[],
  buffers: FusedBuffers,
  attend: AttentionKernel,
): Promise<Dispatch[]> {
  const { nHeads, nKvHeads, maxSeqLen, normEps: eps, ropeLayout: layout } = config;
  const hd = headDim(config);
  const { x, q, att, hb, state, ropeTable } = buffers;
  const qkvEpilogue = {
    kind: "qkvRope",
    nHeads,
    nKvHeads,
    headDim: hd,
    maxSeqLen,
    layout,
  } as const;
  const steps: Dispatch[] = [];
  for (const [l, layer] of layers.entries()) {
    const [keyCache, valueCache] = [buffers.keyCache[l], buffers.valueCache[l]];
    steps.push(
      ...await projectionDispatches(gpu, tuning, layer.wqkv, qkvEpilogue, {
        rows,
        x,
        norm: true,
        eps,
        buffers: { q, keyCache, valueCache, table: ropeTable, state },
      }),
      ...attend.bind({ q, keyCache, valueCache, state, out: att }),
      ...await projectionDispatches(gpu, tuning, layer.wo, { kind: "add" }, {
        rows,
        x: att,
        buffers: { out: x },
      }),
      ...await projectionDispatches(gpu, tuning, layer.w13, { kind: "siluMul" }, {
        rows,
        x,
        norm: true,
        eps,
        buffers: { out: hb },
      }),
      ...await projectionDispatches(gpu, tuning, layer.w2, { kind: "add" }, {
        rows,
        x: hb,
        buffers: { out: x },
      }),
    );
  }
  return steps;
}
