/**
 * What a forward pass costs in arithmetic, memory traffic and kernel calls, counted as each
 * backend executes it, and the time model the benchmark sets measured times against:
 * `max(FLOPs / peak, bytes / bandwidth) + dispatches × per-dispatch cost`.
 *
 * @module
 */
import { headDim, type LlamaConfig } from "./config.ts";
import { kvCacheBytesPerToken } from "../reference/kv_cache.ts";

/** Arithmetic, memory traffic and kernel calls of one or more forward passes. */
export interface ForwardCost {
  /** Floating-point operations (a multiply-add counts 2). */
  flops: number;
  /** Bytes of weights read: every matrix once per pass, norms, one embedding row per token. */
  weightBytes: number;
  /** Bytes of keys and values read by attention (each cached position once per pass). */
  kvReadBytes: number;
  /** Bytes of keys and values written (one position per new token). */
  kvWriteBytes: number;
  /** `weightBytes + kvReadBytes + kvWriteBytes`: unique bytes read plus written (activations excluded). */
  bytes: number;
  /** Kernel calls (WebGPU dispatches, reference function calls). */
  dispatches: number;
}

/**
 * Kernel calls of one forward pass: embedding, 16 per layer, final norm, classifier.
 *
 * @example
 * ```ts
 * import { preset } from "./config.ts";
 * import { dispatchesPerPass } from "./cost.ts";
 * if (dispatchesPerPass(preset("stories15M")) !== 3 + 16 * 6) throw new Error("wrong");
 * ```
 */
export function dispatchesPerPass(config: LlamaConfig): number {
  // per layer: norm, q, k, v, rope q, rope k, cache append, attention, wo, add, norm, w1, w3,
  // silu·mul, w2, add
  return 3 + 16 * config.nLayers;
}

/**
 * Cost of one pass over `rows` new tokens at positions `start..start+rows-1` (the cache holding
 * `start` earlier positions) through the classifier of the last one. Decode at context `c` is
 * `{ rows: 1, start: c }`; recomputing it is `{ rows: c + 1, start: 0 }`; a batched prefill of
 * `n` tokens is `{ rows: n, start: 0 }`.
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
  const kvPerToken = kvCacheBytesPerToken({ nLayers, nKvHeads, headDim: hd });
  const kvReadBytes = end * kvPerToken;
  const kvWriteBytes = rows * kvPerToken;
  return {
    flops,
    weightBytes,
    kvReadBytes,
    kvWriteBytes,
    bytes: weightBytes + kvReadBytes + kvWriteBytes,
    dispatches: dispatchesPerPass(config),
  };
}

/**
 * The sum of costs.
 *
 * @example
 * ```ts
 * import { preset } from "./config.ts";
 * import { addCosts, forwardCost } from "./cost.ts";
 * const step = forwardCost(preset("stories15M"), { rows: 1, start: 0 });
 * if (addCosts([step, step]).bytes !== 2 * step.bytes) throw new Error("wrong");
 * ```
 */
export function addCosts(costs: readonly ForwardCost[]): ForwardCost {
  const total: ForwardCost = {
    flops: 0,
    weightBytes: 0,
    kvReadBytes: 0,
    kvWriteBytes: 0,
    bytes: 0,
    dispatches: 0,
  };
  for (const c of costs) {
    for (const key of Object.keys(total) as (keyof ForwardCost)[]) total[key] += c[key];
  }
  return total;
}

/**
 * Cost of processing `count` tokens from position `start` in passes of at most `rowsPerPass`
 * rows each, every pass through the classifier: `rowsPerPass = 1` is token-by-token
 * (sequential) prefill or decode, which streams every weight once per token.
 *
 * @example
 * ```ts
 * import { makeConfig } from "./config.ts";
 * import { forwardCost, passesCost } from "./cost.ts";
 * const config = makeConfig({ dim: 4, hiddenDim: 8, nLayers: 1, nHeads: 2, nKvHeads: 1, vocabSize: 10, maxSeqLen: 8 });
 * const sequential = passesCost(config, { start: 0, count: 4, rowsPerPass: 1 });
 * const batched = passesCost(config, { start: 0, count: 4, rowsPerPass: 4 });
 * if (sequential.weightBytes <= batched.weightBytes) throw new Error("one pass per token reads more");
 * if (batched.flops !== forwardCost(config, { rows: 4, start: 0 }).flops) throw new Error("wrong");
 * ```
 */
export function passesCost(
  config: LlamaConfig,
  run: { start: number; count: number; rowsPerPass: number },
): ForwardCost {
  const { start, count, rowsPerPass } = run;
  if (!(Number.isInteger(rowsPerPass) && rowsPerPass >= 1)) {
    throw new RangeError(`rowsPerPass: expected an integer >= 1, got ${rowsPerPass}`);
  }
  const passes: ForwardCost[] = [];
  for (let at = start; at < start + count; at += rowsPerPass) {
    passes.push(
      forwardCost(config, { rows: Math.min(rowsPerPass, start + count - at), start: at }),
    );
  }
  return addCosts(passes);
}

/** A backend's measured ceilings: the time model's parameters. */
export interface Ceilings {
  /** Read-stream bandwidth, GB/s: the memory ceiling. */
  readGbPerS: number;
  /** Peak arithmetic, GFLOP/s, from a compute-bound probe. */
  peakGflopPerS: number;
  /** Cost of one kernel call (dispatch) beyond its work, microseconds. */
  dispatchUs: number;
}

/**
 * Predicted milliseconds: `max(FLOPs / peak, bytes / bandwidth) + dispatches × per-dispatch`.
 *
 * @example
 * ```ts
 * import { predictMs } from "./cost.ts";
 * const ms = predictMs(
 *   { flops: 2e9, bytes: 1e8, dispatches: 100 },
 *   { readGbPerS: 10, peakGflopPerS: 100, dispatchUs: 10 },
 * );
 * if (Math.abs(ms - 21) > 1e-9) throw new Error("max(20 ms, 10 ms) + 1 ms"); // compute-bound
 * ```
 */
export function predictMs(
  cost: Pick<ForwardCost, "flops" | "bytes" | "dispatches">,
  ceilings: Ceilings,
): number {
  const computeMs = cost.flops / (ceilings.peakGflopPerS * 1e6);
  const memoryMs = cost.bytes / (ceilings.readGbPerS * 1e6);
  return Math.max(computeMs, memoryMs) + cost.dispatches * ceilings.dispatchUs / 1000;
}

/**
 * Cost of one batched decode step: one new token for each of several sequences, sequence `i`
 * at position `positions[i]` (its cache holding the positions before it; under a sliding
 * `window`, attention reads only the last `window`). The weights are read once for the whole
 * step; every sequence reads its own keys and values and runs its own classifier row. Weight
 * traffic is shared by the batch and cache traffic is not: this is what makes the KV cache, and
 * GQA's saving, dominate at large batches.
 *
 * @example
 * ```ts
 * import { preset } from "./config.ts";
 * import { batchStepCost, forwardCost } from "./cost.ts";
 * const config = preset("stories15M");
 * const one = forwardCost(config, { rows: 1, start: 100 });
 * const eight = batchStepCost(config, Array(8).fill(100));
 * if (eight.kvReadBytes !== 8 * one.kvReadBytes || eight.flops !== 8 * one.flops) throw new Error("wrong");
 * if (eight.weightBytes >= 2 * one.weightBytes) throw new Error("weights are shared");
 * ```
 */
export function batchStepCost(
  config: LlamaConfig,
  positions: readonly number[],
  window: number = Infinity,
): ForwardCost {
  if (positions.length === 0) throw new RangeError("positions: expected at least one, got none");
  const hd = headDim(config);
  const kvPerToken = kvCacheBytesPerToken({ ...config, headDim: hd });
  const single = forwardCost(config, { rows: 1, start: 0 });
  // The attention part of one token's FLOPs per key it reads.
  const attentionFlopsPerKey = config.nLayers * config.nHeads * hd * 4;
  let flops = 0, kvReadBytes = 0;
  for (const pos of positions) {
    const visible = Math.min(pos + 1, window);
    flops += single.flops + attentionFlopsPerKey * (visible - 1);
    kvReadBytes += visible * kvPerToken;
  }
  const weightBytes = single.weightBytes + 4 * config.dim * (positions.length - 1);
  const kvWriteBytes = positions.length * kvPerToken;
  return {
    flops,
    weightBytes,
    kvReadBytes,
    kvWriteBytes,
    bytes: weightBytes + kvReadBytes + kvWriteBytes,
    // the gather of each sequence's last row before the classifier
    dispatches: dispatchesPerPass(config) + 1,
  };
}
