/**
 * The decoder matrix: for each model shape and attention variant (MHA, GQA, MQA), on each
 * backend, prefill and decode with a KV cache and decode by recomputing the prefix, at
 * context lengths doubling until a time budget runs out. Every GPU variant is checked against
 * the CPU reference before it is timed.
 *
 * @module
 */
import type { Gpu } from "../gpu/device.ts";
import type { Tuning } from "../gpu/tuning.ts";
import { headDim, type LlamaConfig, makeConfig } from "../model/config.ts";
import { forwardCost } from "../model/cost.ts";
import { CpuDecoder } from "../model/cpu_decoder.ts";
import type { Decoder } from "../model/decoder.ts";
import { generate } from "../model/generate.ts";
import { GpuDecoder } from "../model/gpu_decoder.ts";
import { randomWeights } from "../model/weights.ts";
import { compare } from "../reference/compare.ts";
import { kvCacheBytesPerToken } from "../reference/kv_cache.ts";
import { Rng } from "../reference/random.ts";
import type { Backend } from "./measure.ts";

/** A model shape of the matrix. */
export interface BenchShape {
  /** Name in tables. */
  name: string;
  /** Its configuration with `nKvHeads = nHeads` (the MHA variant). */
  config: LlamaConfig;
}

/** One measured cell. */
export interface DecoderCell {
  /** Shape name. */
  shape: string;
  /** Backend. */
  backend: Backend;
  /** `kv-cache` or `recompute`. */
  cache: "kv-cache" | "recompute";
  /** `MHA`, `GQA-r` (r query heads per KV head) or `MQA`. */
  attention: string;
  /** Query heads. */
  nHeads: number;
  /** Key/value heads. */
  nKvHeads: number;
  /** `prefill` (processing `context` prompt tokens) or `decode` (one token at `context`). */
  phase: "prefill" | "decode";
  /** Tokens in context. */
  context: number;
  /** Milliseconds per token. */
  msPerToken: number;
  /** Tokens per second. */
  tokensPerSecond: number;
  /** KV-cache bytes per token. */
  kvBytesPerToken: number;
  /** KV-cache bytes holding `context` tokens. */
  kvBytes: number;
  /** Bytes of weights and KV cache read per token (decode) or per prompt token (prefill). */
  bytesPerToken: number;
  /** FLOPs per token, likewise. */
  flopsPerToken: number;
  /** Achieved GB/s. */
  gbPerS: number;
  /** Achieved GB/s over the backend's copy bandwidth. */
  rooflineFraction: number;
}

/** A variant that failed its correctness check and was not timed. */
export interface RejectedVariant {
  /** Shape, backend, cache and attention, readable. */
  variant: string;
  /** NMSE against the CPU reference, or the error. */
  reason: string;
}

/** Name of the attention variant for `nHeads` query and `nKvHeads` key/value heads. */
export function attentionName(nHeads: number, nKvHeads: number): string {
  if (nKvHeads === nHeads) return "MHA";
  if (nKvHeads === 1) return "MQA";
  return `GQA-${nHeads / nKvHeads}`;
}

/** The variants of a shape: MHA, GQA with 2, 4 and 8 query heads per KV head where they divide, MQA. */
export function kvHeadVariants(nHeads: number): number[] {
  const counts = [nHeads, ...[2, 4, 8].filter((r) => nHeads % r === 0).map((r) => nHeads / r), 1];
  return [...new Set(counts)].filter((n) => n >= 1);
}

/** Options of {@linkcode runMatrix}. */
export interface MatrixOptions {
  /** Tuning per shape name for the WebGPU decoder (the adapter class's defaults if absent). */
  tunings?: Record<string, Tuning>;
  /** Shapes to run. */
  shapes: BenchShape[];
  /** Backends to run. */
  backends: Backend[];
  /** Context lengths, ascending. */
  contexts: number[];
  /** Stop a series once one of its cells took longer than this many seconds. */
  cellBudgetS: number;
  /** Decode steps timed per KV-cache cell. */
  decodeSteps: number;
  /** Decode steps timed per recompute cell. */
  recomputeSteps: number;
  /** Copy bandwidth per backend, GB/s. */
  copyGbPerS: Partial<Record<Backend, number>>;
  /** The GPU, when `backends` includes webgpu. */
  gpu?: Gpu;
}

/** Runs the matrix; `progress` gets a line per cell. */
export async function runMatrix(
  options: MatrixOptions,
  progress: (line: string) => void = () => {},
): Promise<{ cells: DecoderCell[]; rejected: RejectedVariant[] }> {
  const cells: DecoderCell[] = [];
  const rejected: RejectedVariant[] = [];
  for (const shape of options.shapes) {
    for (const nKvHeads of kvHeadVariants(shape.config.nHeads)) {
      const config = makeConfig({ ...shape.config, nKvHeads });
      const weights = randomWeights(config, 7);
      const attention = attentionName(config.nHeads, nKvHeads);
      for (const backend of options.backends) {
        for (const cache of ["kv-cache", "recompute"] as const) {
          const label = `${shape.name} ${attention} ${backend} ${cache}`;
          const kvCache = cache === "kv-cache";
          let decoder: Decoder;
          if (backend === "webgpu") {
            const gpuDecoder = await GpuDecoder.create(options.gpu!, config, weights, {
              kvCache,
              tuning: options.tunings?.[shape.name],
            });
            const check = await checkAgainstReference(gpuDecoder, new CpuDecoder(config, weights));
            if (check) {
              rejected.push({ variant: label, reason: check });
              progress(`${label}: REJECTED (${check})`);
              gpuDecoder.destroy();
              continue;
            }
            decoder = gpuDecoder;
          } else {
            decoder = new CpuDecoder(config, weights, { kvCache });
          }
          const series = await runSeries(decoder, config, {
            ...options,
            shape: shape.name,
            backend,
            cache,
            attention,
          }, progress);
          cells.push(...series);
          decoder.destroy?.();
        }
      }
    }
  }
  return { cells, rejected };
}

/** Compares the GPU decoder's logits with the CPU reference's at one position; a reason or undefined. */
async function checkAgainstReference(
  gpu: GpuDecoder,
  cpu: CpuDecoder,
): Promise<string | undefined> {
  const prompt = [1, 5, 9, 2];
  try {
    const stats = compare(await gpu.prefill(prompt), await cpu.prefill(prompt));
    return stats.firstNonFinite < 0 && stats.nmse <= 1e-6
      ? undefined
      : `NMSE ${stats.nmse.toExponential(2)} vs the CPU reference`;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

async function runSeries(
  decoder: Decoder,
  config: LlamaConfig,
  options: MatrixOptions & {
    shape: string;
    backend: Backend;
    cache: "kv-cache" | "recompute";
    attention: string;
  },
  progress: (line: string) => void,
): Promise<DecoderCell[]> {
  const cells: DecoderCell[] = [];
  const kvCache = options.cache === "kv-cache";
  const steps = kvCache ? options.decodeSteps : options.recomputeSteps;
  const kvPerToken = kvCacheBytesPerToken({ ...config, headDim: headDim(config) });
  const copy = options.copyGbPerS[options.backend] ?? NaN;
  const cell = (
    phase: "prefill" | "decode",
    context: number,
    msPerToken: number,
    cost: { bytes: number; flops: number },
  ) => {
    const gbPerS = cost.bytes / (msPerToken / 1000) / 1e9;
    return {
      shape: options.shape,
      backend: options.backend,
      cache: options.cache,
      attention: options.attention,
      nHeads: config.nHeads,
      nKvHeads: config.nKvHeads,
      phase,
      context,
      msPerToken,
      tokensPerSecond: 1000 / msPerToken,
      kvBytesPerToken: kvPerToken,
      kvBytes: kvPerToken * context,
      bytesPerToken: cost.bytes,
      flopsPerToken: cost.flops,
      gbPerS,
      rooflineFraction: gbPerS / copy,
    };
  };
  const rng = new Rng(1);
  for (const context of options.contexts) {
    if (context + steps + 1 > config.maxSeqLen) break;
    const prompt = Array.from(
      { length: context },
      () => 3 + (rng.nextUint32() % (config.vocabSize - 3)),
    );
    const run = () =>
      generate(decoder, prompt, { steps: steps + 1, temperature: 0, stopAtBos: false });
    const start = performance.now();
    // Warm-up: JIT-compiles the CPU path; compiles the GPU pipelines for these row counts
    // (recompute: one plan per sequence length, so the whole run).
    if (decoder.compilesPerLength) await run();
    else {await generate(decoder, prompt.slice(0, Math.min(context, 64)), {
        steps: 2,
        stopAtBos: false,
      });}
    const result = await run();
    const decodeMs = result.decodeMs / steps;
    const at = context + Math.floor(steps / 2);
    const decodeCost = kvCache
      ? forwardCost(config, { rows: 1, start: at })
      : forwardCost(config, { rows: at + 1, start: 0 });
    if (kvCache) {
      const prefill = forwardCost(config, { rows: context, start: 0 });
      const perToken = { bytes: prefill.bytes / context, flops: prefill.flops / context };
      cells.push(cell("prefill", context, result.prefillMs / context, perToken));
    }
    cells.push(cell("decode", context, decodeMs, decodeCost));
    const elapsedS = (performance.now() - start) / 1000;
    progress(
      `${options.shape} ${options.attention} ${options.backend} ${options.cache} ctx ${context}: decode ${
        decodeMs.toFixed(2)
      } ms/token` +
        (kvCache ? `, prefill ${(result.prefillMs / context).toFixed(2)} ms/token` : "") +
        ` (${elapsedS.toFixed(1)} s)`,
    );
    if (elapsedS > options.cellBudgetS) break;
  }
  return cells;
}
