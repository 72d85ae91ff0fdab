/**
 * What a forward pass costs in arithmetic and memory traffic: the predictions the benchmarks
 * set measured times against (FLOPs for KV cache vs recompute, bytes for GQA/MQA vs MHA).
 *
 * @module
 */
import { headDim, type LlamaConfig } from "./config.ts";
import { kvCacheBytesPerToken } from "../reference/kv_cache.ts";

/** Arithmetic and memory traffic of one forward pass. */
export interface ForwardCost {
  /** Floating-point operations (a multiply-add counts 2). */
  flops: number;
  /** Bytes of weights read: every matrix once, norms, one embedding row per token. */
  weightBytes: number;
  /** Bytes of keys and values read by attention (each cached position once). */
  kvReadBytes: number;
  /** `weightBytes + kvReadBytes`: the bytes a memory-bound step must move. */
  bytes: number;
}

/**
 * Cost of processing `rows` new tokens at positions `start..start+rows-1` (the cache holding
 * `start` earlier positions) through the classifier of the last one. Decode at context `c` is
 * `{ rows: 1, start: c }`; recomputing it is `{ rows: c + 1, start: 0 }`; prefilling `n`
 * tokens is `{ rows: n, start: 0 }`.
 *
 * @example
 * ```ts
 * import { preset } from "./config.ts";
 * import { forwardCost } from "./cost.ts";
 * const decode = forwardCost(preset("stories15M"), { rows: 1, start: 100 });
 * const recompute = forwardCost(preset("stories15M"), { rows: 101, start: 0 });
 * // ~40x, not ~100x: the 32000-token classifier runs once per step either way
 * if (recompute.flops / decode.flops < 30) throw new Error("the cache should save ~40x");
 * ```
 */
export function forwardCost(
  config: LlamaConfig,
  pass: { rows: number; start: number },
): ForwardCost {
  const { dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabSize } = config;
  const hd = headDim(config);
  const qDim = nHeads * hd;
  const kvDim = nKvHeads * hd;
  const layerMatrix = qDim * dim + 2 * kvDim * dim + dim * qDim + 3 * hiddenDim * dim;
  const { rows, start } = pass;
  const end = start + rows;
  // Σ (t+1) over the new positions: how many keys each new query scores against.
  const attended = (end * (end + 1)) / 2 - (start * (start + 1)) / 2;
  const flops = rows * 2 * nLayers * layerMatrix + 2 * vocabSize * dim +
    nLayers * nHeads * hd * 4 * attended;
  const weightBytes = 4 * (nLayers * (layerMatrix + 2 * dim) + dim + vocabSize * dim + rows * dim);
  const kvReadBytes = end * kvCacheBytesPerToken({ nLayers, nKvHeads, headDim: hd });
  return { flops, weightBytes, kvReadBytes, bytes: weightBytes + kvReadBytes };
}
