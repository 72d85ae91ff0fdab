/**
 * The controlled GQA/MQA ablation, attention alone: the registry's attention pair (CPU
 * reference and WebGPU) for one decoded token at the same `nHeads` and `headDim` and 8, 4, 2
 * or 1 key/value heads, by context. Unlike the decoder matrix, whose GQA/MQA models also have
 * smaller `wk`/`wv` weights, nothing but the K/V heads changes here. Each context's variants
 * are interleaved round-robin and checked against the reference before they are timed.
 *
 * @module
 */
import type { Gpu } from "../gpu/device.ts";
import { ATTENTION_PAIR, type AttentionPairShape } from "../gpu/attention/pairs.ts";
import { judgeCase, pairCases } from "../gpu/conformance.ts";
import type { AnyKernelPair } from "../gpu/pair.ts";
import {
  type BatchRunner,
  bestMs,
  calibrateBatch,
  cpuRunner,
  gpuRunner,
  type Spread,
  submitUnits,
  TimestampTimer,
  type Timing,
  toTiming,
} from "../gpu/timing.ts";
import { benchKernels } from "./kernel_table.ts";
import { attentionName, kvHeadVariants } from "./matrix.ts";
import type { Backend } from "./measure.ts";
import { bootstrapRatio, isNoisy, type RatioInterval, roundRobin } from "./stats.ts";

/** One attention variant at one context on one backend. */
export interface AblationCell {
  /** Backend. */
  backend: Backend;
  /** `MHA`, `GQA-r` or `MQA`. */
  attention: string;
  /** Query heads. */
  nHeads: number;
  /** Key/value heads. */
  nKvHeads: number;
  /** Features per head. */
  headDim: number;
  /** Keys before the new token (it attends to `context + 1`). */
  context: number;
  /** One layer's attention for one token, with every raw sample. */
  timing: Timing;
  /** Milliseconds per token and layer: GPU time where measured, else wall. */
  msPerToken: Spread;
  /** Which clock `msPerToken` is. */
  clock: "gpu" | "wall";
  /** Bytes per token and layer: the query, the output and the K/V it reads. */
  bytesPerToken: number;
  /** K/V bytes read per token and layer. */
  kvBytesPerToken: number;
  /** FLOPs per token and layer (the same for every variant). */
  flopsPerToken: number;
}

/** A variant's attention speedup over MHA's at one context. */
export interface AblationSpeedup {
  /** Backend. */
  backend: Backend;
  /** Variant. */
  attention: string;
  /** Context. */
  context: number;
  /** MHA's ms over the variant's: ratio of medians with its bootstrap 95% interval. */
  measured: RatioInterval;
  /** MHA's bytes over the variant's. */
  bytesRatio: number;
  /** MHA's FLOPs over the variant's (1: GQA shares keys, not work). */
  flopsRatio: number;
}

/** The ablation's results. */
export interface AttentionAblation {
  /** Query heads. */
  nHeads: number;
  /** Features per head. */
  headDim: number;
  /** Contexts measured. */
  contexts: number[];
  /** Every cell. */
  cells: AblationCell[];
  /** Speedups over MHA at each context, per backend. */
  speedups: AblationSpeedup[];
  /** Variants that failed their check before timing (not timed). */
  rejected: string[];
}

/** Options of {@linkcode runAttentionAblation}. */
export interface AblationOptions {
  /** Query heads (attention-heavy: 8). */
  nHeads: number;
  /** Features per head (attention-heavy: 64). */
  headDim: number;
  /** Contexts, ascending. */
  contexts: number[];
  /** Backends. */
  backends: Backend[];
  /** The GPU, when `backends` includes webgpu. */
  gpu?: Gpu;
  /** Samples per cell. */
  reps: number;
  /** Minimum batch length per backend, ms. */
  minBatchMs: Record<Backend, number>;
  /** MHA, GQA-2 and MQA only. */
  quick: boolean;
  /** `performance.now()` after which no further context starts. */
  deadline?: number;
}

/** The attention pair with its first (decode) variant at `shapes`. */
function ablationPair(shapes: AttentionPairShape[]): AnyKernelPair {
  return {
    ...ATTENTION_PAIR,
    conformance: shapes,
    bench: { quick: shapes, full: shapes },
    variants: [ATTENTION_PAIR.variants[0]],
  } as AnyKernelPair;
}

/** Runs the ablation; `progress` gets a line per cell. */
export async function runAttentionAblation(
  options: AblationOptions,
  progress: (line: string) => void = () => {},
): Promise<AttentionAblation> {
  const { nHeads, headDim } = options;
  const cells: AblationCell[] = [];
  const rejected: string[] = [];
  const kvHeads = kvHeadVariants(nHeads, options.quick);
  const gpu = options.backends.includes("webgpu") ? options.gpu : undefined;
  const timer = gpu && TimestampTimer.supported(gpu) ? new TimestampTimer(gpu) : undefined;
  const measured: number[] = [];
  try {
    for (const context of options.contexts) {
      if (options.deadline !== undefined && performance.now() > options.deadline) break;
      interface Runner {
        backend: Backend;
        shape: AttentionPairShape;
        run: BatchRunner;
        batch: number;
        bytes: number;
        flops: number;
      }
      const runners: Runner[] = [];
      for (const nKvHeads of kvHeads) {
        const shape = { rows: 1, nHeads, nKvHeads, headDim, pos: context };
        const pair = ablationPair([shape]);
        const [spec] = benchKernels(false, [pair]);
        for (const backend of options.backends) {
          let run: BatchRunner;
          if (backend === "cpu") run = cpuRunner(spec.cpu!);
          else if (gpu) {
            const label = `attention ${attentionName(nHeads, nKvHeads)} webgpu at ${context}`;
            const check = await judgeCase(gpu, pairCases(pair)[0]);
            if (!check.passed) {
              rejected.push(`${label}: ${check.error ?? `NMSE ${check.nmse}`}`);
              progress(`${label}: REJECTED`);
              continue;
            }
            const list = await spec.gpu(gpu);
            run = gpuRunner(gpu, timer, (units) => submitUnits(gpu, list, units));
          } else continue;
          const batch = await calibrateBatch(run, options.minBatchMs[backend]);
          runners.push({ backend, shape, run, batch, bytes: spec.bytes, flops: spec.flops });
        }
      }
      const samples = await roundRobin(runners, options.reps, (r) => r.run(r.batch), {
        rounds: options.reps,
        unsettled: (list) => isNoisy(list.map((s) => s.gpuMs ?? s.wallMs), 0.25),
        partners: (r) => runners.filter((o) => o.backend === r.backend),
      });
      for (const [r, list] of samples) {
        const timing = toTiming(list, r.batch);
        const { nKvHeads } = r.shape;
        const cell: AblationCell = {
          backend: r.backend,
          attention: attentionName(nHeads, nKvHeads),
          nHeads,
          nKvHeads,
          headDim,
          context,
          timing,
          msPerToken: bestMs(timing),
          clock: timing.gpuMs ? "gpu" : "wall",
          bytesPerToken: r.bytes,
          kvBytesPerToken: 2 * 4 * (context + 1) * nKvHeads * headDim,
          flopsPerToken: r.flops,
        };
        cells.push(cell);
        progress(
          `attention alone ${r.backend} ${cell.attention} ctx ${context}: ${
            cell.msPerToken.median.toFixed(4)
          } ms/token/layer (${cell.clock} time)`,
        );
      }
      measured.push(context);
    }
  } finally {
    timer?.destroy();
  }
  return {
    nHeads,
    headDim,
    contexts: measured,
    cells,
    speedups: ablationSpeedups(cells),
    rejected,
  };
}

/**
 * Each variant's speedup over MHA at the same backend and context: the ratio of median ms with
 * its seeded bootstrap 95% interval, beside the bytes and FLOPs ratios.
 */
export function ablationSpeedups(cells: readonly AblationCell[]): AblationSpeedup[] {
  const out: AblationSpeedup[] = [];
  for (const cell of cells) {
    if (cell.attention === "MHA") continue;
    const mha = cells.find((c) =>
      c.attention === "MHA" && c.backend === cell.backend && c.context === cell.context
    );
    if (!mha) continue;
    const raw = (c: AblationCell) =>
      (c.clock === "gpu" ? c.timing.samples?.gpuMs : c.timing.samples?.wallMs) ??
        [c.msPerToken.median];
    out.push({
      backend: cell.backend,
      attention: cell.attention,
      context: cell.context,
      measured: bootstrapRatio(raw(mha), raw(cell)),
      bytesRatio: mha.bytesPerToken / cell.bytesPerToken,
      flopsRatio: mha.flopsPerToken / cell.flopsPerToken,
    });
  }
  return out;
}
