/**
 * The benchmark's batch axis: batched decode steps at b = 1..32 sequences, each at a given
 * context, for MHA, GQA and MQA, on the CPU reference and WebGPU; the KV-cache layouts side by
 * side; how many sequences fit in a fixed KV budget; and the cost model extended to b (weights
 * read once per step, each sequence's cache read by itself) set beside the measurements, with
 * the batch at which cache traffic overtakes weight traffic predicted and measured.
 *
 * Caches are primed with seeded random keys and values (`BatchDecoder.prime`): a decode step's
 * work does not depend on them, and prefilling 32 × 1024 positions would dwarf the steps timed.
 * Before timing, every WebGPU variant's logits are checked against the CPU reference's on the
 * same primed caches.
 *
 * @module
 */
import { contextConfig, type LlamaConfig } from "../model/config.ts";
import { batchStepCost, type Ceilings, type ForwardCost, predictMs } from "../model/cost.ts";
import type { BatchDecoder, BatchRow } from "../model/batch/batch_decoder.ts";
import { CpuBatchDecoder } from "../model/batch/cpu_batch_decoder.ts";
import { GpuBatchDecoder } from "../model/webgpu/batch_decoder.ts";
import { type KvLayout, KvPool, type KvStoreOptions } from "../model/batch/kv_store.ts";
import { randomWeights } from "../model/weights.ts";
import type { Gpu } from "../gpu/device.ts";
import { compare } from "../reference/compare.ts";
import { attentionName } from "./matrix.ts";
import type { Backend } from "./measure.ts";
import type { Roofline } from "./probes.ts";
import { isNoisy, roundRobin } from "./stats.ts";
import { type RawSamples, type Spread, summarize, toTiming } from "../gpu/timing.ts";
import {
  type BatchSample,
  calibrateBatch,
  cpuRunner,
  gpuRunner,
  TimestampTimer,
} from "../gpu/timing.ts";

/** One batched-decode measurement. */
export interface BatchCell {
  /** Where it ran. */
  backend: Backend;
  /** "MHA", "GQA-4", "MQA"... */
  attention: string;
  /** Key/value heads. */
  nKvHeads: number;
  /** KV-cache layout. */
  layout: KvLayout;
  /** Sliding window of the model, if any (the sliding layout's cells). */
  window?: number;
  /** Sequences per step. */
  batch: number;
  /** Each sequence's context when the timed steps start. */
  context: number;
  /** Mean position of the timed steps. */
  meanPosition: number;
  /** Milliseconds per step (GPU time where timestamps exist). */
  msPerStep: Spread;
  /** Wall-clock milliseconds per step (with WebGPU, the logits' read-back included). */
  wallMsPerStep: Spread;
  /** Every raw sample, ms per step. */
  samples: RawSamples;
  /** Wall-clock tokens per second over all sequences: `batch / wall step time`. */
  tokensPerSecond: Spread;
  /** The step's cost (weights once, each sequence's cache). */
  cost: ForwardCost;
  /** FLOPs per byte of the step. */
  intensity: number;
  /** Achieved GFLOP/s at the median. */
  gflopPerS: number;
  /** Achieved GB/s at the median (weights + cache bytes). */
  gbPerS: number;
  /** The time model's prediction for the step, ms. */
  modelMs: number;
  /** KV-cache bytes the layout reserves for the cell's sequences. */
  kvReservedBytes: number;
  /** KV-cache bytes their positions need. */
  kvUsedBytes: number;
}

/** Sequences of a context that fit in a KV budget, per layout and attention variant. */
export interface BatchCapacity {
  /** Context each sequence holds. */
  context: number;
  /** Attention variant. */
  attention: string;
  /** Layout. */
  layout: KvLayout;
  /** Bytes one sequence reserves under the layout. */
  bytesPerSequence: number;
  /** Sequences in the budget. */
  sequences: number;
}

/** Where cache traffic overtakes weight traffic, predicted and measured. */
export interface BatchCrossover {
  /** Backend. */
  backend: Backend;
  /** Attention variant. */
  attention: string;
  /** Context. */
  context: number;
  /** Batch at which a step reads as many KV bytes as weight bytes (the cost model). */
  kvEqualsWeightsBatch: number;
  /** Smallest batch the time model gives twice the b = 1 step time. */
  predictedDoublingBatch: number;
  /** Smallest measured batch whose step took twice the b = 1 step, if any did. */
  measuredDoublingBatch?: number;
}

/** A variant the correctness check turned away (reported, never timed). */
export interface BatchRejected {
  /** Which cell. */
  variant: string;
  /** Why. */
  reason: string;
}

/** The batch axis of a run. */
export interface BatchAxis {
  /** The model shape. */
  shape: string;
  /** Batch sizes timed. */
  batches: number[];
  /** Contexts timed. */
  contexts: number[];
  /** Timed cells. */
  cells: BatchCell[];
  /** Sequences per KV budget. */
  capacity: BatchCapacity[];
  /** The KV budget of {@linkcode BatchAxis.capacity}, bytes. */
  budgetBytes: number;
  /** Crossovers. */
  crossovers: BatchCrossover[];
  /** WebGPU variants whose logits disagreed with the CPU's. */
  rejected: BatchRejected[];
  /** Cells not run, with why (the time budget). */
  skipped: string[];
}

/** Options of {@linkcode runBatchAxis}. */
export interface BatchAxisOptions {
  /** The model shape (its `nKvHeads` is replaced per variant). */
  config: LlamaConfig;
  /** Its name. */
  shape: string;
  /** Backends. */
  backends: Backend[];
  /** The device, for WebGPU. */
  gpu?: Gpu;
  /** The `--quick` subset. */
  quick: boolean;
  /** Samples per cell. */
  reps: number;
  /** Minimum batch length per backend, ms. */
  minBatchMs: Record<Backend, number>;
  /** Each backend's measured ceilings. */
  rooflines: Partial<Record<Backend, Roofline>>;
  /** No cell starts after this `performance.now()`. */
  deadline: number;
}

/** The KV budget the capacity table divides. */
export const KV_BUDGET_BYTES = 2 ** 30;

/** Block size of the paged cells. */
const BLOCK_SIZE = 16;

/** Most steps one sample may run (the calibration's cap). */
const MAX_UNITS = 8;

/**
 * Positions the timed steps advance past the context: a warm-up and the calibration (1 + 1 + 2
 * + 4 + 8), then up to twice `reps` samples of at most {@linkcode MAX_UNITS} steps.
 */
function headroom(reps: number): number {
  return 2 * MAX_UNITS + 2 * reps * MAX_UNITS + 1;
}

interface Variant {
  attention: string;
  nKvHeads: number;
  layout: KvLayout;
  window?: number;
}

/**
 * Runs the batch axis: for each backend, context and batch size, every attention variant on
 * the paged layout, and at one batch size every layout, interleaved round-robin.
 *
 * @example
 * ```ts ignore
 * const axis = await runBatchAxis({ config: ATTENTION_HEAVY, shape: "attention-heavy", backends: ["cpu"], quick: true, reps: 3, minBatchMs: { cpu: 20, webgpu: 20 }, rooflines, deadline: Infinity }, console.log);
 * ```
 */
export async function runBatchAxis(
  options: BatchAxisOptions,
  progress: (line: string) => void,
): Promise<BatchAxis> {
  const { config, quick } = options;
  // Contexts the model holds with the timed steps' headroom (a shorter model drops the rest).
  const wanted = quick ? [256] : [256, 1024];
  const contexts = wanted.filter((c) => c + headroom(options.reps) <= config.maxSeqLen);
  const batches = quick ? [1, 4] : [1, 2, 4, 8, 16, 32];
  const layoutBatch = quick ? 4 : 8;
  const kvHeads = quick ? [config.nHeads, 1] : [config.nHeads, config.nHeads / 4, 1];
  const cells: BatchCell[] = [];
  const rejected: BatchRejected[] = [];
  const skipped: string[] = wanted.filter((c) => !contexts.includes(c)).map((c) =>
    `context ${c}: ${options.shape}'s maxSeqLen ${config.maxSeqLen} holds no ${
      headroom(options.reps)
    } positions past it to time`
  );
  const weights = new Map(kvHeads.map((n) => [n, randomWeights({ ...config, nKvHeads: n }, 1)]));
  for (const backend of options.backends) {
    for (const context of contexts) {
      for (const batch of batches) {
        const variants: Variant[] = kvHeads.map((nKvHeads) => ({
          attention: attentionName(config.nHeads, nKvHeads),
          nKvHeads,
          layout: "paged",
        }));
        if (batch === layoutBatch) {
          variants.push(
            { ...variants[0], layout: "contiguous" },
            { ...variants[0], layout: "sliding", window: context / 2 },
          );
        }
        const label = `${backend} b=${batch} ctx=${context}`;
        if (performance.now() > options.deadline) {
          skipped.push(`${label}: the run's time budget was spent`);
          continue;
        }
        progress(`batch axis ${label}: ${variants.map(describe).join(", ")}`);
        cells.push(
          ...await measureStep(options, backend, context, batch, variants, weights, rejected),
        );
      }
    }
  }
  return {
    shape: options.shape,
    batches,
    contexts,
    cells,
    capacity: capacityTable(config, kvHeads),
    budgetBytes: KV_BUDGET_BYTES,
    crossovers: crossovers(config, cells, options.rooflines),
    rejected,
    skipped,
  };
}

function describe(v: Variant): string {
  return `${v.attention} ${v.layout}${v.window ? ` window ${v.window}` : ""}`;
}

/** Builds each variant's decoder, checks it, and times its steps round-robin. */
async function measureStep(
  options: BatchAxisOptions,
  backend: Backend,
  context: number,
  batch: number,
  variants: Variant[],
  weights: Map<number, ReturnType<typeof randomWeights>>,
  rejected: BatchRejected[],
): Promise<BatchCell[]> {
  const { gpu } = options;
  const timer = backend === "webgpu" && gpu && TimestampTimer.supported(gpu)
    ? new TimestampTimer(gpu)
    : undefined;
  const built = new Map<Variant, { decoder: BatchDecoder; config: LlamaConfig; next: number }>();
  try {
    for (const variant of variants) {
      const config = {
        ...contextConfig(
          { ...options.config, nKvHeads: variant.nKvHeads },
          context + headroom(options.reps),
        ),
        slidingWindow: variant.window,
      };
      const kv: KvStoreOptions = {
        layout: variant.layout,
        blockSize: BLOCK_SIZE,
        maxSequences: batch,
        maxRows: batch,
      };
      const w = weights.get(variant.nKvHeads)!;
      const decoder: BatchDecoder = backend === "webgpu"
        ? await GpuBatchDecoder.create(gpu!, config, w, kv)
        : new CpuBatchDecoder(config, w, kv);
      for (let seq = 0; seq < batch; seq++) decoder.prime(seq, context, 7 + seq);
      if (backend === "webgpu") {
        // The WebGPU variant against the CPU reference on the same primed caches.
        const reference = new CpuBatchDecoder(config, w, kv);
        for (let seq = 0; seq < batch; seq++) reference.prime(seq, context, 7 + seq);
        const rows = stepRows(batch, context);
        const [want, got] = [reference.stepSync(rows), await decoder.step(rows)];
        const worst = Math.max(...got.map((g, i) => compare(g, want[i]).nmse));
        if (!(worst <= 1e-6)) {
          rejected.push({
            variant: `webgpu b=${batch} ctx=${context} ${describe(variant)}`,
            reason: `logit NMSE ${worst} against the CPU reference (bound 1e-6)`,
          });
          (decoder as GpuBatchDecoder).destroy();
          continue;
        }
        built.set(variant, { decoder, config, next: context + 1 });
      } else {
        built.set(variant, { decoder, config, next: context });
      }
    }
    const live = [...built.keys()];
    const run = (variant: Variant) => {
      const entry = built.get(variant)!;
      const step = async (units: number) => {
        for (let i = 0; i < units; i++) await entry.decoder.step(stepRows(batch, entry.next++));
      };
      if (backend === "webgpu") return gpuRunner(gpu!, timer, step);
      const cpu = entry.decoder as CpuBatchDecoder;
      return cpuRunner(() => cpu.stepSync(stepRows(batch, entry.next++)));
    };
    const units = new Map<Variant, number>();
    for (const variant of live) {
      units.set(
        variant,
        await calibrateBatch(run(variant), options.minBatchMs[backend], MAX_UNITS),
      );
    }
    const first = new Map(live.map((v) => [v, built.get(v)!.next]));
    const samples = await roundRobin<Variant, BatchSample>(
      live,
      options.reps,
      (variant) => run(variant)(units.get(variant)!),
      {
        rounds: options.reps,
        unsettled: (s) => isNoisy(s.map((x) => x.gpuMs ?? x.wallMs), 0.25),
      },
    );
    return live.map((variant) => {
      const list = samples.get(variant)!;
      const best = list.map((s) => s.gpuMs ?? s.wallMs);
      const msPerStep = summarize(best);
      const { config, next } = built.get(variant)!;
      const meanPosition = (first.get(variant)! + next - 1) / 2;
      const cost = batchStepCost(config, Array(batch).fill(meanPosition), variant.window);
      const roofline = options.rooflines[backend];
      return {
        backend,
        attention: variant.attention,
        nKvHeads: variant.nKvHeads,
        layout: variant.layout,
        ...(variant.window ? { window: variant.window } : {}),
        batch,
        context,
        meanPosition,
        msPerStep,
        wallMsPerStep: summarize(list.map((s) => s.wallMs)),
        samples: toTiming(list, units.get(variant)!).samples!,
        // the rate a user sees: wall-clock, the read-back of each step included
        tokensPerSecond: summarize(list.map((s) => batch / (s.wallMs / 1000))),
        cost,
        intensity: cost.flops / cost.bytes,
        gflopPerS: cost.flops / (msPerStep.median * 1e6),
        gbPerS: cost.bytes / (msPerStep.median * 1e6),
        modelMs: roofline ? predictMs(cost, ceilingsOf(roofline)) : NaN,
        kvReservedBytes: built.get(variant)!.decoder.kvReservedBytes,
        kvUsedBytes: built.get(variant)!.decoder.kvUsedBytes,
      };
    });
  } finally {
    for (const { decoder } of built.values()) (decoder as { destroy?(): void }).destroy?.();
    timer?.destroy();
  }
}

/** One decode row per sequence, all at `pos`. */
function stepRows(batch: number, pos: number): BatchRow[] {
  return Array.from({ length: batch }, (_, seq) => ({ seq, token: (seq * 31 + pos) % 97, pos }));
}

function ceilingsOf(r: Roofline): Ceilings {
  return {
    readGbPerS: r.readGbPerS.median,
    peakGflopPerS: r.peakGflopPerS.median,
    dispatchUs: r.dispatchUs.median,
  };
}

/** Sequences of each context that fit in {@linkcode KV_BUDGET_BYTES}, per layout. */
function capacityTable(config: LlamaConfig, kvHeads: number[]): BatchCapacity[] {
  const rows: BatchCapacity[] = [];
  for (const context of [256, 1024, 4096].filter((c) => c <= config.maxSeqLen)) {
    for (const nKvHeads of kvHeads) {
      const model = { ...config, nKvHeads };
      const layouts: [KvLayout, LlamaConfig, KvStoreOptions][] = [
        // contiguous reserves the model's maxSeqLen whatever the context
        ["contiguous", model, { layout: "contiguous", maxSequences: 1 }],
        ["paged", contextConfig(model, context), {
          layout: "paged",
          blockSize: BLOCK_SIZE,
          maxSequences: 1,
        }],
        // a ring of a 512-position window (and a step's rows), whatever the context
        ["sliding", { ...model, slidingWindow: 512 }, {
          layout: "sliding",
          maxSequences: 1,
          maxRows: 1,
        }],
      ];
      for (const [layout, shape, options] of layouts) {
        const bytesPerSequence = new KvPool(shape, options).reservedBytes;
        rows.push({
          context,
          attention: attentionName(config.nHeads, nKvHeads),
          layout,
          bytesPerSequence,
          sequences: Math.floor(KV_BUDGET_BYTES / bytesPerSequence),
        });
      }
    }
  }
  return rows;
}

/** The batch where KV bytes reach weight bytes, and the time model's and measured doubling. */
function crossovers(
  config: LlamaConfig,
  cells: readonly BatchCell[],
  rooflines: Partial<Record<Backend, Roofline>>,
): BatchCrossover[] {
  const out: BatchCrossover[] = [];
  const series = new Map<string, BatchCell[]>();
  for (const cell of cells) {
    if (cell.layout !== "paged") continue;
    const key = `${cell.backend}|${cell.attention}|${cell.context}`;
    series.set(key, [...(series.get(key) ?? []), cell]);
  }
  for (const list of series.values()) {
    const { backend, attention, context, nKvHeads } = list[0];
    const model = { ...config, nKvHeads };
    const one = batchStepCost(model, [context]);
    const kvPerSequence = one.kvReadBytes;
    const roofline = rooflines[backend];
    let predictedDoublingBatch = NaN;
    if (roofline) {
      const base = predictMs(one, ceilingsOf(roofline));
      for (let b = 1; b <= 4096; b++) {
        if (
          predictMs(batchStepCost(model, Array(b).fill(context)), ceilingsOf(roofline)) >= 2 * base
        ) {
          predictedDoublingBatch = b;
          break;
        }
      }
    }
    const sorted = [...list].sort((a, b) => a.batch - b.batch);
    const base = sorted.find((c) => c.batch === 1);
    const doubled = base && sorted.find((c) => c.msPerStep.median >= 2 * base.msPerStep.median);
    out.push({
      backend,
      attention,
      context,
      kvEqualsWeightsBatch: one.weightBytes / kvPerSequence,
      predictedDoublingBatch,
      ...(doubled ? { measuredDoublingBatch: doubled.batch } : {}),
    });
  }
  return out;
}
