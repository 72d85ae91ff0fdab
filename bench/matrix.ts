/**
 * The decoder matrix: for each context, on the first model shape every attention variant (MHA,
 * GQA, MQA) × cache mode (KV cache, recompute) × backend, and on each later shape its own
 * attention with the KV cache on each backend (the cells its peers are compared with),
 * interleaved round-robin over repeated samples. Cached and recomputed decode are timed at the
 * same positions; every variant's logits are checked against the CPU reference at several
 * positions before anything is timed.
 *
 * @module
 */
import type { Gpu } from "../gpu/device.ts";
import type { Tuning } from "../gpu/tuning.ts";
import { headDim, type LlamaConfig, makeConfig } from "../model/config.ts";
import { type ForwardCost, forwardCost, passesCost, predictMs } from "../model/cost.ts";
import { CpuDecoder } from "../model/cpu_decoder.ts";
import type { Decoder } from "../model/decoder.ts";
import { GpuDecoder } from "../model/webgpu/decoder.ts";
import { randomWeights } from "../model/weights.ts";
import { compare } from "../reference/compare.ts";
import { kvCacheBytesPerToken } from "../reference/kv_cache.ts";
import { Rng } from "../reference/random.ts";
import { type Backend, modelCeilings } from "./measure.ts";
import type { Roofline } from "./probes.ts";
import { invertSpread, isNoisy, roundRobin, scaleSpread } from "./stats.ts";
import type { Spread } from "../gpu/timing.ts";
import {
  type BatchRunner,
  type BatchSample,
  calibrateBatch,
  gpuRunner,
  TimestampTimer,
  type Timing,
  toTiming,
} from "../gpu/timing.ts";

/** Relative min-max spread above which a cheap cell gets more samples. */
const NOISY = 0.25;

/** The figure a sample is judged by: wall time, what a user waits. */
function sampleMs(sample: BatchSample): number {
  return sample.wallMs;
}

/** Positions a recompute decode sample times, centred on the cached decode's mean position. */
export const RECOMPUTE_POSITIONS = 2;

/** Prompt rows per WebGPU prefill pass (the cost model counts the same passes). */
const GPU_PREFILL_ROWS = 64;

/** A model shape of the matrix. */
export interface BenchShape {
  /** Name in tables. */
  name: string;
  /** Its configuration with `nKvHeads = nHeads` (the MHA variant). */
  config: LlamaConfig;
}

/** How a cell's work runs: one pass per token, passes of N rows, or one pass per step. */
export type Execution = "sequential" | `chunks of ${number}` | "one pass per step";

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
  /** `prefill` (positions `0..context-1`) or `decode` (positions `context...`). */
  phase: "prefill" | "decode";
  /** Tokens in context before the timed positions (prefill: the prompt's length). */
  context: number;
  /** First and last timed position. */
  positions: [number, number];
  /** Mean timed position: the cell's label. */
  meanPosition: number;
  /** How the work ran. */
  execution: Execution;
  /** Time per token, wall-clock and (WebGPU with timestamps) GPU time, with every raw sample. */
  timing: Timing;
  /** Wall-clock milliseconds per token: the time a user waits (`timing.wallMs`). */
  msPerToken: Spread;
  /** GPU-timestamp milliseconds per token, where measured: the passes alone. */
  gpuMsPerToken?: Spread;
  /** Tokens per second, wall-clock. */
  tokensPerSecond: Spread;
  /** KV-cache bytes per token of context. */
  kvBytesPerToken: number;
  /** KV-cache bytes holding `context` tokens. */
  kvBytes: number;
  /** Weight bytes read per token, as executed. */
  weightBytesPerToken: number;
  /** KV-cache bytes read plus written per token. */
  kvTrafficPerToken: number;
  /** `weightBytesPerToken + kvTrafficPerToken`. */
  bytesPerToken: number;
  /** FLOPs per token. */
  flopsPerToken: number;
  /** Kernel calls per token. */
  dispatchesPerToken: number;
  /** Achieved GB/s (wall-clock). */
  gbPerS: Spread;
  /** Achieved GFLOP/s (wall-clock). */
  gflopPerS: Spread;
  /** Median GB/s over the backend's median read-stream bandwidth. */
  rooflineFraction: number;
  /** The time model's ms per token. */
  predictedMs: number;
  /** Median wall ms over predicted. */
  measuredOverPredicted: number;
  /** Bytes one pass touches: all weights plus the K/V cache it reads. */
  workingSetBytes: number;
  /** Whether that working set fits in the last-level cache. */
  fitsInLlc: boolean;
}

/** A variant that failed its correctness check and was not timed. */
export interface RejectedVariant {
  /** Shape, backend, cache and attention, readable. */
  variant: string;
  /** NMSE against the CPU reference, or the error. */
  reason: string;
}

/** A series cut short by the cell budget. */
export interface SkippedSeries {
  /** Shape, attention, backend and cache, readable. */
  variant: string;
  /** Phase. */
  phase: "prefill" | "decode";
  /** First context not measured. */
  fromContext: number;
  /** Predicted seconds of that cell's samples. */
  predictedS: number;
  /** "cell budget" or "run time budget". */
  reason: string;
}

/** A variant's correctness check before timing. */
export interface CheckResult {
  /** Shape, backend, cache and attention, readable. */
  variant: string;
  /** Positions whose logits were compared. */
  positions: number[];
  /** Worst NMSE over them. */
  maxNmse: number;
}

/** Name of the attention variant for `nHeads` query and `nKvHeads` key/value heads. */
export function attentionName(nHeads: number, nKvHeads: number): string {
  if (nKvHeads === nHeads) return "MHA";
  if (nKvHeads === 1) return "MQA";
  return `GQA-${nHeads / nKvHeads}`;
}

/**
 * The variants of a shape: MHA, GQA with 2, 4 and 8 query heads per KV head where they divide
 * (`quick`: 2 only), MQA.
 *
 * @example
 * ```ts
 * import { kvHeadVariants } from "./matrix.ts";
 * if (kvHeadVariants(8, true).join() !== "8,4,1") throw new Error("MHA, GQA-2, MQA");
 * ```
 */
export function kvHeadVariants(nHeads: number, quick = false): number[] {
  const ratios = quick ? [2] : [2, 4, 8];
  const counts = [nHeads, ...ratios.filter((r) => nHeads % r === 0).map((r) => nHeads / r), 1];
  return [...new Set(counts)].filter((n) => n >= 1);
}

/**
 * Positions whose logits are checked: the first, one inside the first attention
 * chunk, one past it (which split attention hands to a second workgroup), and one past the
 * second chunk when the run goes that far; all below `limit`.
 *
 * @example
 * ```ts
 * import { checkPositions } from "./matrix.ts";
 * if (checkPositions(512, true).join() !== "0,37,300") throw new Error("wrong");
 * ```
 */
export function checkPositions(limit: number, quick: boolean): number[] {
  return [0, 37, 300, ...(quick ? [] : [560])].filter((p) => p < limit);
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
  /**
   * Skip a cell whose samples are predicted to take longer than this many seconds in all (a
   * recompute cell: a quarter of it, see {@linkcode RECOMPUTE_BUDGET_SHARE}).
   */
  cellBudgetS: number;
  /**
   * Positions each cached decode sample times from its context, in one call (WebGPU: one
   * GPU-resident `generate`, as a user runs it); at least 32 in a real run. Recompute samples
   * time {@linkcode RECOMPUTE_POSITIONS} positions centred on the same mean position.
   */
  decodePositions: number;
  /** Samples per cell. */
  reps: number;
  /** Minimum batch length per backend, ms. */
  minBatchMs: Record<Backend, number>;
  /** Each backend's roofline. */
  rooflines: Partial<Record<Backend, Roofline>>;
  /** Last-level cache bytes (0: unknown). */
  llcBytes: number;
  /** Fewer check positions and variants, and no extra rounds for noisy cells. */
  quick: boolean;
  /** `performance.now()` after which no further cell starts (the run's time budget). */
  deadline?: number;
  /** The GPU, when `backends` includes webgpu. */
  gpu?: Gpu;
}

interface Variant {
  label: string;
  backend: Backend;
  cache: "kv-cache" | "recompute";
  attention: string;
  config: LlamaConfig;
  decoder: Decoder;
  /** Phases skipped from here on: over the budget. */
  skip: Set<"prefill" | "decode">;
  /** Where each skipped phase stopped, and the predicted seconds that stopped it. */
  skippedFrom: Partial<
    Record<"prefill" | "decode", { context: number; predictedS: number; reason: string }>
  >;
  /** Per phase, each measured context's median ms per sample, to predict the next. */
  sampleMs: Partial<Record<"prefill" | "decode", { context: number; ms: number }[]>>;
  /** Positions `0..holds-1` hold the run's tokens (recompute: its history). */
  holds: number;
}

/** Runs the matrix; `progress` gets a line per cell. */
export async function runMatrix(
  options: MatrixOptions,
  progress: (line: string) => void = () => {},
): Promise<
  {
    cells: DecoderCell[];
    rejected: RejectedVariant[];
    checks: CheckResult[];
    skipped: SkippedSeries[];
  }
> {
  const cells: DecoderCell[] = [];
  const rejected: RejectedVariant[] = [];
  const checks: CheckResult[] = [];
  const skipped: SkippedSeries[] = [];
  const timer = options.gpu && TimestampTimer.supported(options.gpu)
    ? new TimestampTimer(options.gpu)
    : undefined;
  // Each shape's decoders, built and checked against the CPU reference before any is timed.
  const runs: { shape: BenchShape; tokens: number[]; variants: Variant[] }[] = [];
  try {
    for (const [shapeIndex, shape] of options.shapes.entries()) {
      // The first shape runs every variant; a later one its own attention with the KV cache
      // only: the cells its peers' rows compare with, which then fit beside the first's.
      const every = shapeIndex === 0;
      const maxContext = options.contexts.filter((c) =>
        c + options.decodePositions <= shape.config.maxSeqLen
      ).at(-1);
      if (maxContext === undefined) continue;
      // Checked positions reach past the run where it is short: the one past the first attention
      // chunk (and into a second split) is checked whenever the model allows it.
      const positions = checkPositions(shape.config.maxSeqLen, options.quick);
      const recomputeLimit = Math.min(301, Math.max(38, maxContext + options.decodePositions));
      const runEnd = Math.max(maxContext + options.decodePositions, ...positions.map((p) => p + 1));
      const rng = new Rng(1);
      const tokens = Array.from(
        { length: runEnd },
        () => 3 + (rng.nextUint32() % (shape.config.vocabSize - 3)),
      );
      const variants: Variant[] = [];
      const kvHeads = every
        ? kvHeadVariants(shape.config.nHeads, options.quick)
        : [shape.config.nKvHeads];
      for (const nKvHeads of kvHeads) {
        const config = makeConfig({ ...shape.config, nKvHeads });
        const weights = randomWeights(config, 7);
        const attention = attentionName(config.nHeads, nKvHeads);
        const expected = referenceLogits(new CpuDecoder(config, weights), tokens, positions);
        for (const backend of options.backends) {
          for (const cache of every ? ["kv-cache", "recompute"] as const : ["kv-cache"] as const) {
            const label = `${shape.name} ${attention} ${backend} ${cache}`;
            const kvCache = cache === "kv-cache";
            const decoder: Decoder = backend === "webgpu"
              ? await GpuDecoder.create(options.gpu!, config, weights, {
                kvCache,
                maxPrefillRows: GPU_PREFILL_ROWS,
                tuning: options.tunings?.[shape.name],
              })
              : new CpuDecoder(config, weights, { kvCache });
            if (backend !== "cpu" || !kvCache) {
              // A recompute pass costs the whole prefix: checked up to the run's end (at most 300).
              const own = kvCache ? positions : positions.filter((p) => p < recomputeLimit);
              const check = await checkAgainstReference(decoder, tokens, own, expected);
              if (typeof check === "string") {
                rejected.push({ variant: label, reason: check });
                progress(`${label}: REJECTED (${check})`);
                decoder.destroy?.();
                continue;
              }
              checks.push({ variant: label, positions: own, maxNmse: check });
              progress(
                `${label}: logits match at ${own.join(", ")} (NMSE ≤ ${check.toExponential(1)})`,
              );
            }
            variants.push({
              label,
              backend,
              cache,
              attention,
              config,
              decoder,
              skip: new Set(),
              skippedFrom: {},
              sampleMs: {},
              holds: 0,
            });
          }
        }
      }
      runs.push({ shape, tokens, variants });
    }
    // Context-major: every shape's context before any shape's next one, so that a shape listed
    // later still gets cells when the run's deadline stops the larger contexts.
    for (const context of options.contexts) {
      for (const { shape, tokens, variants } of runs) {
        if (context + options.decodePositions > shape.config.maxSeqLen) continue;
        const prompt = tokens.slice(0, context);
        for (const phase of ["prefill", "decode"] as const) {
          const active = variants.filter((v) =>
            (phase === "decode" || v.cache === "kv-cache") &&
            !skipCell(v, phase, context, options)
          );
          if (phase === "decode") {
            // Every decoder timed must hold the positions before its first timed one (prefill
            // samples leave 0..context-1; recompute starts further in).
            for (const v of active) {
              const { start } = decodeSpan(v, context, options);
              if (v.holds < start) {
                await v.decoder.prefill(tokens.slice(v.holds, start), v.holds);
                v.holds = start;
              }
            }
          }
          const runners = new Map<Variant, { run: BatchRunner; batch: number }>();
          for (const v of active) {
            const span = decodeSpan(v, context, options);
            const run = phase === "prefill"
              ? sampler(v, options, timer, () => v.decoder.prefill(prompt, 0))
              : decodeSampler(
                v,
                options,
                timer,
                span.start,
                tokens.slice(span.start, span.start + span.count),
              );
            const minMs = options.minBatchMs[v.backend];
            runners.set(v, { run, batch: await calibrateBatch(run, minMs, 64) });
          }
          // Round-robin over the variants; then (not in a quick run) more rounds where the noise
          // is: cheap cells (under a second a sample) whose samples still spread over 25% of
          // their median, and with them the cells they are compared with (recompute, MHA),
          // interleaved.
          const samples = await roundRobin(
            active,
            options.reps,
            (v) => runners.get(v)!.run(runners.get(v)!.batch),
            {
              rounds: options.quick ? 0 : options.reps,
              unsettled: (list, v) =>
                isNoisy(list.map(sampleMs), NOISY) &&
                Math.min(...list.map(sampleMs)) * runners.get(v)!.batch < 1000,
              partners: (v) => comparedWith(v, active),
            },
          );
          for (const v of active) {
            const { batch } = runners.get(v)!;
            const timing = toTiming(samples.get(v)!, batch);
            const units = phase === "prefill" ? context : decodeSpan(v, context, options).count;
            const perToken = scaleTiming(timing, 1 / units);
            const cell = makeCell(v, phase, context, perToken, options);
            cells.push(cell);
            // Prefill samples leave the prompt; decode samples the prompt and the decoded steps.
            v.holds = context;
            (v.sampleMs[phase] ??= []).push({ context, ms: timing.wallMs.median * batch });
            const ms = cell.msPerToken;
            const gpuMs = cell.gpuMsPerToken;
            progress(
              `${v.label} ${phase} ctx ${context}: ${ms.median.toFixed(3)} wall ms/token ` +
                `[${ms.min.toFixed(3)}-${ms.max.toFixed(3)}]` +
                (gpuMs ? `, GPU time ${gpuMs.median.toFixed(3)}` : ""),
            );
          }
        }
      }
    }
    for (const { variants } of runs) {
      for (const v of variants) {
        for (const [phase, at] of Object.entries(v.skippedFrom)) {
          skipped.push({
            variant: v.label,
            phase: phase as "prefill" | "decode",
            fromContext: at.context,
            predictedS: at.predictedS,
            reason: at.reason,
          });
        }
      }
    }
  } finally {
    for (const { variants } of runs) for (const v of variants) v.decoder.destroy?.();
    timer?.destroy();
  }
  return { cells, rejected, checks, skipped };
}

/**
 * A recompute cell's share of the cell budget. Recompute costs the whole prefix per token
 * (quadratic in context); by the contexts a quarter of the budget reaches it is already many
 * times slower than the cached decode, and the time its larger contexts would take goes to the
 * cached cells, which the headline follows to longer contexts.
 */
export const RECOMPUTE_BUDGET_SHARE = 1 / 4;

/** Whether a cell's samples are predicted to exceed the budget (and every larger context's). */
function skipCell(
  v: Variant,
  phase: "prefill" | "decode",
  context: number,
  options: MatrixOptions,
): boolean {
  if (v.skip.has(phase)) return true;
  const history = v.sampleMs[phase] ?? [];
  const last = history.at(-1);
  if (!last) {
    if (options.deadline === undefined || performance.now() < options.deadline) return false;
    v.skip.add(phase);
    v.skippedFrom[phase] = { context, predictedS: 0, reason: "run time budget" };
    return true;
  }
  // Growth with context: measured over the last two contexts where there are two, within
  // linear..quadratic; else quadratic for prefill and recompute, linear for cached decode.
  const quadratic = phase === "prefill" || v.cache === "recompute";
  let exponent = quadratic ? 2 : 1;
  const before = history.at(-2);
  if (before && last.context > before.context && before.ms > 0) {
    const measured = Math.log(last.ms / before.ms) / Math.log(last.context / before.context);
    exponent = Math.min(2, Math.max(1, measured));
  }
  const predictedMs = last.ms * (context / last.context) ** exponent;
  // the calibration and the samples (wall time: what the budget is about)
  const predictedS = predictedMs * (options.reps + 1) / 1000;
  const late = options.deadline !== undefined &&
    performance.now() + predictedS * 1000 > options.deadline;
  const budgetS = options.cellBudgetS * (v.cache === "recompute" ? RECOMPUTE_BUDGET_SHARE : 1);
  if (predictedS > budgetS || late) {
    v.skip.add(phase);
    v.skippedFrom[phase] = {
      context,
      predictedS,
      reason: late ? "run time budget" : "cell budget",
    };
    return true;
  }
  return false;
}

function scaleTiming(timing: Timing, factor: number): Timing {
  const scale = (list: number[]) => list.map((x) => x * factor);
  return {
    wallMs: scaleSpread(timing.wallMs, factor),
    ...(timing.gpuMs ? { gpuMs: scaleSpread(timing.gpuMs, factor) } : {}),
    batch: timing.batch,
    ...(timing.samples
      ? {
        samples: {
          wallMs: scale(timing.samples.wallMs),
          ...(timing.samples.gpuMs ? { gpuMs: scale(timing.samples.gpuMs) } : {}),
        },
      }
      : {}),
  };
}

/**
 * The positions a decode sample of `v` times at `context`: cached decode `decodePositions`
 * from `context`; recompute {@linkcode RECOMPUTE_POSITIONS} centred on the same mean (its
 * passes cost the whole prefix, so a long call would spend the budget on one cell).
 */
function decodeSpan(
  v: Variant,
  context: number,
  options: MatrixOptions,
): { start: number; count: number } {
  if (v.cache === "kv-cache") return { start: context, count: options.decodePositions };
  const count = Math.min(RECOMPUTE_POSITIONS, options.decodePositions);
  return { start: context + Math.floor((options.decodePositions - count) / 2), count };
}

/** The cells `v` is compared with at one context: recompute vs cache, GQA/MQA vs MHA. */
function comparedWith(v: Variant, active: readonly Variant[]): Variant[] {
  return active.filter((o) =>
    o !== v && o.backend === v.backend && (
      (o.attention === v.attention && o.cache !== v.cache) ||
      (o.cache === "kv-cache" && v.cache === "kv-cache" &&
        (o.attention === "MHA" || v.attention === "MHA"))
    )
  );
}

/** A batch of `units` calls of `once`, on the GPU timed by `timer` where the variant is WebGPU. */
function sampler(
  v: Variant,
  options: MatrixOptions,
  timer: TimestampTimer | undefined,
  once: () => Promise<unknown>,
): BatchRunner {
  const run = async (units: number) => {
    for (let i = 0; i < units; i++) await once();
  };
  if (v.backend === "webgpu") return gpuRunner(options.gpu!, timer, run);
  return async (units) => {
    const start = performance.now();
    await run(units);
    return { wallMs: (performance.now() - start) / units };
  };
}

/**
 * Decoding `step.length` tokens at positions `context...`, again from `context` each time; on
 * WebGPU one GPU-resident `generate` call (one submit for the first position, one for the rest,
 * one read-back), its wall time what a user waits.
 */
function decodeSampler(
  v: Variant,
  options: MatrixOptions,
  timer: TimestampTimer | undefined,
  context: number,
  step: number[],
): BatchRunner {
  const decoder = v.decoder;
  if (decoder.generate) {
    // GPU-resident: the first position's pass, then the rest in one submit, one read-back.
    const generate = decoder.generate.bind(decoder);
    return sampler(
      v,
      options,
      timer,
      () => generate([step[0]], step.length, { startPos: context }),
    );
  }
  if (decoder.forwardSync) {
    const forwardSync = decoder.forwardSync.bind(decoder);
    return sampler(v, options, timer, () => {
      for (let i = 0; i < step.length; i++) forwardSync(step[i], context + i);
      return Promise.resolve();
    });
  }
  return sampler(v, options, timer, async () => {
    for (let i = 0; i < step.length; i++) await decoder.forward(step[i], context + i);
  });
}

function makeCell(
  v: Variant,
  phase: "prefill" | "decode",
  context: number,
  timing: Timing,
  options: MatrixOptions,
): DecoderCell {
  const { config } = v;
  const span = decodeSpan(v, context, options);
  const count = phase === "prefill" ? context : span.count;
  const start = phase === "prefill" ? 0 : span.start;
  let execution: Execution;
  let cost: ForwardCost;
  if (v.cache === "recompute") {
    execution = "one pass per step";
    const passes = Array.from(
      { length: count },
      (_, i) => forwardCost(config, { rows: start + i + 1, start: 0 }),
    );
    cost = passes.reduce((a, b) => sumCost(a, b));
  } else if (phase === "prefill" && v.backend === "webgpu") {
    execution = `chunks of ${GPU_PREFILL_ROWS}`;
    cost = passesCost(config, { start, count, rowsPerPass: GPU_PREFILL_ROWS });
  } else {
    execution = "sequential";
    cost = passesCost(config, { start, count, rowsPerPass: 1 });
  }
  const per = (x: number) => x / count;
  const perToken = {
    flops: per(cost.flops),
    bytes: per(cost.bytes),
    dispatches: per(cost.dispatches),
  };
  const ceilings = modelCeilings(options.rooflines[v.backend]);
  const predictedMs = predictMs(perToken, ceilings);
  const ms = timing.wallMs;
  const gbPerS = invertSpread(ms, perToken.bytes / 1e6);
  const kvPerToken = kvCacheBytesPerToken({ ...config, headDim: headDim(config) });
  const end = start + count;
  const workingSetBytes = forwardCost(config, { rows: 1, start: 0 }).weightBytes +
    end * kvPerToken;
  return {
    shape: options.shapes.find((s) => v.label.startsWith(`${s.name} `))!.name,
    backend: v.backend,
    cache: v.cache,
    attention: v.attention,
    nHeads: config.nHeads,
    nKvHeads: config.nKvHeads,
    phase,
    context,
    positions: [start, end - 1],
    meanPosition: (start + end - 1) / 2,
    execution,
    timing,
    msPerToken: ms,
    ...(timing.gpuMs ? { gpuMsPerToken: timing.gpuMs } : {}),
    tokensPerSecond: invertSpread(ms, 1000),
    kvBytesPerToken: kvPerToken,
    kvBytes: kvPerToken * context,
    weightBytesPerToken: per(cost.weightBytes),
    kvTrafficPerToken: per(cost.kvReadBytes + cost.kvWriteBytes),
    bytesPerToken: perToken.bytes,
    flopsPerToken: perToken.flops,
    dispatchesPerToken: perToken.dispatches,
    gbPerS,
    gflopPerS: invertSpread(ms, perToken.flops / 1e6),
    rooflineFraction: gbPerS.median / ceilings.readGbPerS,
    predictedMs,
    measuredOverPredicted: ms.median / predictedMs,
    workingSetBytes,
    fitsInLlc: options.llcBytes > 0 && workingSetBytes <= options.llcBytes,
  };
}

function sumCost(a: ForwardCost, b: ForwardCost): ForwardCost {
  return {
    flops: a.flops + b.flops,
    weightBytes: a.weightBytes + b.weightBytes,
    kvReadBytes: a.kvReadBytes + b.kvReadBytes,
    kvWriteBytes: a.kvWriteBytes + b.kvWriteBytes,
    bytes: a.bytes + b.bytes,
    dispatches: a.dispatches + b.dispatches,
  };
}

/** The CPU reference's logits after each of `positions`, decoding `tokens` one by one. */
function referenceLogits(
  reference: CpuDecoder,
  tokens: number[],
  positions: number[],
): Map<number, Float32Array> {
  const out = new Map<number, Float32Array>();
  const last = Math.max(...positions);
  for (let p = 0; p <= last; p++) {
    const logits = reference.forwardSync(tokens[p], p);
    if (positions.includes(p)) out.set(p, logits);
  }
  return out;
}

/**
 * Compares `decoder`'s logits with the reference's at each position, reached by a prefill of
 * the positions before and a one-token decode step at it (the path decode timing uses).
 * Returns the worst NMSE, or a reason.
 */
async function checkAgainstReference(
  decoder: Decoder,
  tokens: number[],
  positions: number[],
  expected: Map<number, Float32Array>,
): Promise<number | string> {
  let worst = 0;
  let done = 0;
  try {
    for (const p of positions) {
      if (p > done) await decoder.prefill(tokens.slice(done, p), done);
      const stats = compare(await decoder.forward(tokens[p], p), expected.get(p)!);
      if (stats.firstNonFinite >= 0 || !(stats.nmse <= 1e-6)) {
        return `position ${p}: NMSE ${stats.nmse.toExponential(2)} vs the CPU reference`;
      }
      worst = Math.max(worst, stats.nmse);
      done = p + 1;
    }
    return worst;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}
