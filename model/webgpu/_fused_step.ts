// The fused forward pass on WebGPU: per layer five dispatches (six when attention splits its
// keys) instead of ~15, each kernel the variant the decoder's `TuningTable` chooses:
//
// 1. RMSNorm → Q, K, V (one matrix) → RoPE → K/V appended to the cache (`qkvRope`); with an
//    f16 or Q8_0 cache, K/V staged and a KV append storing them in the cache's format (one
//    dispatch more);
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
  PAIR,
  type ProjectionBindings,
  type ProjectionEpilogue,
  projectionKernel,
  projectionVariant,
} from "../../gpu/matmul/projection.ts";
import { attentionKey, projectionKey, type TuningTable } from "../../gpu/tuning.ts";
import { fusedRowOrder, gatherPackedRows } from "../../gpu/matmul/fused_weights.ts";
import {
  type GpuPackedMatrix,
  type GpuWeightFormat,
  packMatrix,
  uploadPackedCombined,
} from "../../gpu/matmul/quant.ts";
import {
  packedMatrixDispatches,
  packedProjectionVariant,
} from "../../gpu/matmul/packed_projection.ts";
import type { StoredMatrix, StoredWeights } from "../precision.ts";
import { kvAppendKernel } from "../../gpu/kv_cache.ts";
import type { KvFormat } from "../../reference/kv_cache.ts";

/** A fused-layout matrix: f32 row blocks, or packed f16/Q8_0/Q4_0 rows. */
export type FusedMatrix = GpuMatrix | GpuPackedMatrix;

/**
 * One layer's weights in the fused layouts. f32: the norm weights folded into the matrices;
 * packed: rows only moved (never requantized), the norm weights apart.
 */
export interface FusedLayer {
  /** Q, K, V in rotation pairs: `(qDim + 2·kvDim, dim)`. */
  wqkv: FusedMatrix;
  /** The output projection `(dim, qDim)`. */
  wo: FusedMatrix;
  /** W1 and W3 interleaved: `(2·hiddenDim, dim)`. */
  w13: FusedMatrix;
  /** The down projection `(dim, hiddenDim)`. */
  w2: FusedMatrix;
  /** The attention norm's weight (packed layers only). */
  attentionNorm?: GPUBuffer;
  /** The FFN norm's weight (packed layers only). */
  ffnNorm?: GPUBuffer;
}

/**
 * Uploads stored layer `l` in the fused layouts when every matrix is f16, Q8_0 or Q4_0 (the
 * packed projections' formats); undefined otherwise (say, one fell back to f32).
 *
 * @example
 * ```ts ignore
 * const layer = uploadFusedPackedLayer(gpu, config, stored.layers[0], 0);
 * ```
 */
export function uploadFusedPackedLayer(
  gpu: Gpu,
  config: LlamaConfig,
  layer: StoredWeights["layers"][number],
  l: number,
  maxBindingBytes?: number,
): FusedLayer | undefined {
  const names = ["wq", "wk", "wv", "wo", "w1", "w2", "w3"] as const;
  // formats the packed projections read (not f32, nor a format they do not know yet)
  const packable = ["f16", "q8_0", "q4_0"];
  if (names.some((n) => !packable.includes(layer[n].format))) return undefined;
  const packed = (m: StoredMatrix) =>
    packMatrix(m.bytes, m.format as GpuWeightFormat, m.rows, m.cols);
  const [wq, wk, wv, wo, w1, w2, w3] = names.map((n) => packed(layer[n]));
  if (wq.format !== wk.format || wk.format !== wv.format || w1.format !== w3.format) {
    return undefined; // the fused matrices hold one format
  }
  const { nHeads, nKvHeads, hiddenDim, ropeLayout: layout } = config;
  const hd = headDim(config);
  const label = (name: string) => `layers[${l}].${name}`;
  const qkvOrder = fusedRowOrder({ kind: "qkv", nHeads, nKvHeads, headDim: hd, layout });
  return {
    wqkv: uploadPackedCombined(
      gpu,
      gatherPackedRows([wq, wk, wv], qkvOrder),
      label("wqkv"),
      maxBindingBytes,
    ),
    wo: uploadPackedCombined(gpu, wo, label("wo"), maxBindingBytes),
    w13: uploadPackedCombined(
      gpu,
      gatherPackedRows([w1, w3], fusedRowOrder({ kind: "gateUp", hidden: hiddenDim })),
      label("w13"),
      maxBindingBytes,
    ),
    w2: uploadPackedCombined(gpu, w2, label("w2"), maxBindingBytes),
    attentionNorm: gpu.upload(layer.attentionNorm, label("attentionNorm")),
    ffnNorm: gpu.upload(layer.ffnNorm, label("ffnNorm")),
  };
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
    if ("chunks" in m) { for (const chunk of m.chunks) chunk.buffer.destroy(); }
    else {
      for (const block of m.blocks) {
        block.weights.destroy();
        block.scales?.destroy();
      }
    }
  }
  layer.attentionNorm?.destroy();
  layer.ffnNorm?.destroy();
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
  /** Staged keys `(rows, kvDim)` f32, for a cache in another format than f32. */
  k: GPUBuffer;
  /** Staged values `(rows, kvDim)` f32, for a cache in another format than f32. */
  v: GPUBuffer;
  /** The caches' format. */
  kvFormat: KvFormat;
}

/** What a projection call binds beside its matrix. */
interface ProjectionArgs<E extends ProjectionEpilogue> {
  /** Tokens in the call. */
  rows: number;
  /** The activations. */
  x: BufferRange;
  /** Whether the RMSNorm prologue runs. */
  norm?: boolean;
  /** The norm's weight, for a packed matrix with `norm` (an f32 one has it folded in). */
  normWeight?: BufferRange;
  /** The norm's epsilon. */
  eps?: number;
  /** First element of `x` to read. */
  xOffset?: number;
  /** The epilogue's buffers. */
  buffers: Record<ProjectionBindings[E["kind"]], BufferRange>;
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
  matrix: FusedMatrix,
  epilogue: E,
  args: ProjectionArgs<E>,
): Promise<Dispatch[]> {
  const pair = PAIR[epilogue.kind];
  const units = matrix.outDim / pair;
  const { rows, norm = false } = args;
  if ("format" in matrix) return packedDispatches(gpu, tuning, matrix, epilogue, args);
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

function packedDispatches<E extends ProjectionEpilogue>(
  gpu: Gpu,
  tuning: TuningTable,
  matrix: GpuPackedMatrix,
  epilogue: E,
  args: ProjectionArgs<E>,
): Promise<Dispatch[]> {
  const { rows, norm = false } = args;
  const pair = PAIR[epilogue.kind];
  const units = matrix.outDim / pair;
  const key = projectionKey(epilogue.kind, norm, rows, units, matrix.inDim, matrix.format);
  const chosen = tuning.choice(key);
  // A tuning's own choice must fit here; a class default that does not (the GL backend's
  // workgroup budget) gives way to the first variant that does.
  if (tuning.tuning?.choices[key] !== undefined) {
    for (const block of matrix.blocks) {
      const shape = {
        format: matrix.format,
        rows,
        units: block.rows / pair,
        inDim: matrix.inDim,
        pair,
        norm,
      };
      if (!packedProjectionVariant(chosen).applies(shape, gpu)) {
        throw new GpuError(key, `tuning: variant ${chosen} does not apply here`);
      }
    }
  }
  return packedMatrixDispatches(gpu, matrix, epilogue, [chosen], args);
}

/**
 * The tuned attention kernel for a pass of `rows` tokens over a cache in `kvFormat` (the tiled
 * prefill reads f32 only: another format takes the split layout with the tuned splits, if any).
 */
export function tunedAttention(
  gpu: Gpu,
  tuning: TuningTable,
  config: LlamaConfig,
  rows: number,
  kvFormat: KvFormat = "f32",
): Promise<AttentionKernel> {
  const { nHeads, nKvHeads, maxSeqLen } = config;
  const hd = headDim(config);
  const shape = { rows, nHeads, nKvHeads, headDim: hd };
  const choice = tuning.choice(attentionKey(rows, nHeads, nKvHeads, hd));
  if (choice === "tiled" && rows > 1 && kvFormat === "f32") return tiledAttentionKernel(gpu, shape);
  const splits = choice.startsWith("split") && choice !== "split auto"
    ? Number(choice.slice(5))
    : undefined;
  return attentionKernel(gpu, { ...shape, splits, kvFormat, maxSeqLen });
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
  const { x, q, att, hb, state, ropeTable, k, v, kvFormat } = buffers;
  // An f32 cache takes K/V straight from the projection; another format from a KV append.
  const staged = kvFormat !== "f32";
  const qkvEpilogue = {
    kind: "qkvRope",
    nHeads,
    nKvHeads,
    headDim: hd,
    maxSeqLen,
    layout,
    staged,
  } as const;
  const append = staged
    ? await kvAppendKernel(gpu, { rows, kvDim: nKvHeads * hd, maxSeqLen, format: kvFormat })
    : undefined;
  const steps: Dispatch[] = [];
  for (const [l, layer] of layers.entries()) {
    const [keyCache, valueCache] = [buffers.keyCache[l], buffers.valueCache[l]];
    steps.push(
      ...await projectionDispatches(gpu, tuning, layer.wqkv, qkvEpilogue, {
        rows,
        x,
        norm: true,
        normWeight: layer.attentionNorm,
        eps,
        buffers: staged
          ? { q, keyCache: k, valueCache: v, table: ropeTable, state }
          : { q, keyCache, valueCache, table: ropeTable, state },
      }),
      ...append?.bind({ k, v, keyCache, valueCache, state }) ?? [],
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
        normWeight: layer.ffnNorm,
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
