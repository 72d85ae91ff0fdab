/**
 * The precision axis's cells (`precision.ts` measures them) and the speedups quantized weights
 * must reach against f32 weights on the same backend, judged from the cells: met, missed or not
 * resolved by the speedup's interval, and where one is not met, the term of the decode step that
 * holds it back. Kept apart from the axis itself, which reads files, so that the browser page's
 * report can import it.
 *
 * @module
 */
import type { TensorFormat } from "../reference/quantize.ts";
import type { KvFormat } from "../reference/kv_cache.ts";
import type { MeanInterval } from "../model/accuracy.ts";
import { summarize } from "../gpu/timing.ts";
import type { ReadStream } from "./measure.ts";
import { invertSpread } from "./stats.ts";

/** One precision pair on one shape and backend. */
export interface PrecisionCell {
  /** Shape name. */
  shape: string;
  /** `cpu` or `webgpu`. */
  backend: "cpu" | "webgpu";
  /** Weight format. */
  weights: TensorFormat;
  /** KV-cache format. */
  kv: KvFormat;
  /** Context (positions already cached) the decode steps start at. */
  context: number;
  /** Median decode ms/token over the repetitions; absent when the backend cannot run the pair. */
  msPerToken?: number;
  /** Fastest and slowest repetition, ms/token. */
  spread?: [number, number];
  /** Every repetition, ms/token (wall-clock), in the order taken. */
  samples?: number[];
  /** Why the pair did not run here. */
  skipped?: string;
  /** Weight bytes held (each read once per token). */
  weightBytes: number;
  /** KV-cache bytes per cached position (keys and values, every layer). */
  kvBytesPerPosition: number;
  /**
   * Bytes one decode step reads: the weights (of a separate embedding table one row) and the KV
   * cache at the context.
   */
  bytesPerToken: number;
  /** f32/f32's ms/token over this pair's, same shape and backend (ratio of medians). */
  speedup?: number;
  /** The speedup's bootstrap 95% interval `[lo, hi]` (samples interleaved with f32/f32's). */
  speedupInterval?: [number, number];
  /** Kernel dispatches one decode step records (WebGPU). */
  dispatchesPerToken?: number;
  /**
   * The step's time split into terms, ms/token: `bytes` (bytes per token at the backend's read
   * ceiling), `dispatches` (WebGPU: dispatches per token at the measured cost of one) and
   * `rest` (what remains of the measured time: arithmetic, dequantization included, and
   * synchronization); absent without a roofline.
   */
  terms?: StepTerms;
  /** f32/f32's bytes per token over this pair's. */
  bytesRatio: number;
  /**
   * The step's read rate (bytes per token over ms/token) as a fraction of the backend's measured
   * read ceiling (the roofline's stream probe); absent without a roofline (`--precision-only`).
   */
  readCeilingFraction?: number;
  /** Positions the accuracy was measured over (CPU reference, teacher-forced). */
  accuracyPositions: number;
  /** Mean KL divergence from f32/f32's next-token distributions (nats), 95% interval. */
  kl: MeanInterval;
  /** 99th percentile of the KL divergence over positions. */
  klP99: number;
  /** Largest KL divergence over positions. */
  klMax: number;
  /** Fraction of positions whose top-1 token matches f32/f32's. */
  sameTop1: number;
  /** Mean change of the probability of f32/f32's top token. */
  topDeltaP: number;
  /** Mean logit NMSE against f32/f32. */
  nmse: number;
  /** Perplexity of the real text (a real model's shape only). */
  perplexity?: number;
  /** f32/f32's perplexity of the same text (a real model's shape only). */
  f32Perplexity?: number;
}

/** A decode step's time split into terms, ms/token (see {@linkcode PrecisionCell.terms}). */
export interface StepTerms {
  /** Bytes per token at the backend's read ceiling. */
  bytes: number;
  /** Dispatches per token at the measured cost of one (0 on the CPU). */
  dispatches: number;
  /** The rest of the measured time: arithmetic (dequantization included) and synchronization. */
  rest: number;
}

/**
 * A measured cell's terms and read-ceiling fraction against the backend's read ceiling
 * (`ceilingGbPerS`) and the measured cost of one dispatch (`dispatchUs`); nothing for a cell that
 * did not run.
 *
 * @example
 * ```ts
 * import { stepTerms } from "./precision_cells.ts";
 * // 6 MB per token at 3 GB/s is 2 ms; 100 dispatches at 10 µs are 1 ms; of 4 ms, 1 ms remains
 * const cell = { msPerToken: 4, bytesPerToken: 6e6, dispatchesPerToken: 100 };
 * const { terms, readCeilingFraction } = stepTerms(cell, 3, 10);
 * if (terms?.bytes !== 2 || terms.dispatches !== 1 || terms.rest !== 1) throw new Error("wrong");
 * if (readCeilingFraction !== 0.5) throw new Error("wrong");
 * ```
 */
export function stepTerms(
  cell: Pick<PrecisionCell, "msPerToken" | "bytesPerToken" | "dispatchesPerToken">,
  ceilingGbPerS: number,
  dispatchUs: number,
): Pick<PrecisionCell, "terms" | "readCeilingFraction"> {
  if (cell.msPerToken === undefined) return {};
  const bytes = cell.bytesPerToken / (ceilingGbPerS * 1e6);
  const dispatches = (cell.dispatchesPerToken ?? 0) * dispatchUs / 1000;
  return {
    terms: { bytes, dispatches, rest: cell.msPerToken - bytes - dispatches },
    readCeilingFraction: bytes / cell.msPerToken,
  };
}

/**
 * The measured decode steps as read streams (bytes per token over each sample's time), so that a
 * step that reads faster than every kernel raises the read ceiling (`raiseReadCeiling`).
 *
 * @example
 * ```ts
 * import { precisionStreams } from "./precision_cells.ts";
 * const cell = { shape: "s", backend: "webgpu" as const, weights: "f32" as const,
 *   kv: "f32" as const, context: 64, samples: [2, 4, 8], bytesPerToken: 8e6 };
 * const [stream] = precisionStreams([cell]);
 * if (stream.gbPerS.median !== 2 || stream.gbPerS.max !== 4) throw new Error("wrong");
 * if (stream.source !== "decode step s f32/f32 at context 64") throw new Error("wrong");
 * ```
 */
export function precisionStreams(
  cells: readonly Pick<
    PrecisionCell,
    "shape" | "backend" | "weights" | "kv" | "context" | "samples" | "bytesPerToken"
  >[],
): ReadStream[] {
  return cells.filter((c) => c.samples?.length).map((c) => ({
    backend: c.backend,
    bytes: c.bytesPerToken,
    gbPerS: invertSpread(summarize(c.samples!), c.bytesPerToken / 1e6),
    source: `decode step ${c.shape} ${c.weights}/${c.kv} at context ${c.context}`,
  }));
}

/** A speedup quantized weights must reach against f32 weights on the same backend. */
export interface PrecisionTarget {
  /** Backend. */
  backend: "cpu" | "webgpu";
  /** Weight format (with the f32 KV cache, against f32/f32). */
  weights: TensorFormat;
  /** The least speedup against f32/f32 that meets the target. */
  speedup: number;
}

/**
 * The targets of issue #21: Q8_0 weights decode at least 1.3x and Q4_0 at least 1.5x faster
 * than f32 on WebGPU (they read 3.8x and 7.1x fewer matrix bytes); on the CPU reference Q8_0 is
 * no slower than f32.
 *
 * @example
 * ```ts
 * import { PRECISION_TARGETS } from "./precision_cells.ts";
 * if (PRECISION_TARGETS.length !== 3) throw new Error("wrong");
 * ```
 */
export const PRECISION_TARGETS: readonly PrecisionTarget[] = [
  { backend: "webgpu", weights: "q8_0", speedup: 1.3 },
  { backend: "webgpu", weights: "q4_0", speedup: 1.5 },
  { backend: "cpu", weights: "q8_0", speedup: 1 },
];

/** A target judged on one shape. */
export interface TargetVerdict {
  /** Shape name. */
  shape: string;
  /** The target. */
  target: PrecisionTarget;
  /** The measured cell (weights/f32). */
  cell: PrecisionCell;
  /**
   * `met` (the speedup's interval lies at or above the target), `missed` (below it) or
   * `not resolved` (the interval straddles it).
   */
  verdict: "met" | "missed" | "not resolved";
  /** Whether the interval lies above 1: faster than f32 outside noise. */
  fasterThanF32: boolean;
  /**
   * Where the target is not met and the terms were measured: the term whose time exceeds f32's
   * same term divided by the target the most, i.e. the one that did not shrink enough.
   */
  heldBackBy?: keyof StepTerms;
}

/**
 * Judges {@linkcode PRECISION_TARGETS} on every shape whose cells hold both f32/f32 and the
 * target's weights with the f32 cache. A target is met when the speedup's interval lies at or
 * above it. Where it is not, the term holding it back is the one whose time exceeds f32's same
 * term over the target the most: had every term shrunk by the target, the target would be met.
 *
 * @example
 * ```ts ignore
 * for (const v of targetVerdicts(cells)) console.log(v.shape, v.target.weights, v.verdict);
 * ```
 */
export function targetVerdicts(cells: readonly PrecisionCell[]): TargetVerdict[] {
  const verdicts: TargetVerdict[] = [];
  for (const shape of new Set(cells.map((c) => c.shape))) {
    for (const target of PRECISION_TARGETS) {
      const find = (weights: TensorFormat) =>
        cells.find((c) =>
          c.shape === shape && c.backend === target.backend && c.weights === weights &&
          c.kv === "f32" && c.msPerToken !== undefined
        );
      const [base, cell] = [find("f32"), find(target.weights)];
      if (!base || !cell?.speedupInterval) continue;
      const [lo, hi] = cell.speedupInterval;
      const verdict = lo >= target.speedup
        ? "met"
        : hi < target.speedup
        ? "missed"
        : "not resolved";
      const judged: TargetVerdict = { shape, target, cell, verdict, fasterThanF32: lo > 1 };
      // A term is named only where the median itself falls short (not merely its interval).
      const shortfall = cell.msPerToken! - base.msPerToken! / target.speedup;
      if (verdict !== "met" && shortfall > 0 && base.terms && cell.terms) {
        const excess = (term: keyof StepTerms) =>
          cell.terms![term] - base.terms![term] / target.speedup;
        judged.heldBackBy = (["bytes", "dispatches", "rest"] as const).reduce((a, b) =>
          excess(b) > excess(a) ? b : a
        );
      }
      verdicts.push(judged);
    }
  }
  return verdicts;
}
