/**
 * The one timer, used by the benchmark and by tuning alike: batches long enough for the clock, repeated samples, and
 * GPU time from `timestamp-query` (resolved into a buffer, read back once per batch).
 *
 * @module
 */
import type { Dispatch, Gpu, PassTimer } from "./device.ts";

/** Summary of repeated samples of one quantity. */
export interface Spread {
  /** Median. */
  median: number;
  /** Smallest sample. */
  min: number;
  /** Largest sample. */
  max: number;
  /** First quartile (linear interpolation). */
  q1: number;
  /** Third quartile. */
  q3: number;
  /** Number of samples. */
  n: number;
}

/** The `p` quantile (0..1) of ascending `sorted`, linearly interpolated. */
function quantile(sorted: readonly number[], p: number): number {
  const at = (sorted.length - 1) * p;
  const lo = Math.floor(at);
  const hi = Math.ceil(at);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (at - lo);
}

/**
 * Median, min, max and quartiles of `samples` (at least one, all finite).
 *
 * @example
 * ```ts
 * import { summarize } from "./timing.ts";
 * const s = summarize([4, 1, 3, 2, 100]);
 * if (s.median !== 3 || s.min !== 1 || s.max !== 100 || s.q1 !== 2 || s.q3 !== 4) throw new Error("wrong");
 * ```
 */
export function summarize(samples: readonly number[]): Spread {
  if (samples.length === 0) throw new RangeError("summarize: expected samples, got none");
  const bad = samples.find((x) => !Number.isFinite(x));
  if (bad !== undefined) throw new RangeError(`summarize: expected finite samples, got ${bad}`);
  const sorted = [...samples].sort((a, b) => a - b);
  return {
    median: quantile(sorted, 0.5),
    min: sorted[0],
    max: sorted[sorted.length - 1],
    q1: quantile(sorted, 0.25),
    q3: quantile(sorted, 0.75),
    n: sorted.length,
  };
}

/** Repeated timings of one unit of work: wall-clock and, where measured, GPU time. */
export interface Timing {
  /** Wall-clock milliseconds per unit. */
  wallMs: Spread;
  /** GPU milliseconds per unit from timestamp queries (WebGPU with `timestamp-query`). */
  gpuMs?: Spread;
  /** Units per timed batch. */
  batch: number;
  /** Every sample, ms per unit, in the order taken (what the spreads summarize). */
  samples?: RawSamples;
}

/** Raw samples of a {@linkcode Timing}, ms per unit. */
export interface RawSamples {
  /** Wall-clock samples. */
  wallMs: number[];
  /** GPU-time samples, where every sample has one. */
  gpuMs?: number[];
}

/**
 * The figure a timing is judged by: GPU time where measured, else wall time.
 *
 * @example
 * ```ts
 * import { bestMs } from "./timing.ts";
 * import { summarize } from "./timing.ts";
 * const timing = { wallMs: summarize([12]), gpuMs: summarize([2]), batch: 8 };
 * if (bestMs(timing).median !== 2) throw new Error("GPU time wins where measured");
 * ```
 */
export function bestMs(timing: Timing): Spread {
  return timing.gpuMs ?? timing.wallMs;
}

/** One batch's measurement, per unit. */
export interface BatchSample {
  /** Wall-clock ms per unit. */
  wallMs: number;
  /** GPU ms per unit, when timed on the GPU. */
  gpuMs?: number;
}

/** Runs `units` units of work and reports milliseconds per unit. */
export type BatchRunner = (units: number) => Promise<BatchSample>;

/**
 * The number of units per batch for which a batch lasts at least `minMs` (doubling from 1,
 * after one warm-up unit), capped at `maxUnits`.
 *
 * @example
 * ```ts
 * import { calibrateBatch, cpuRunner } from "./timing.ts";
 * const units = await calibrateBatch(cpuRunner(() => Math.sqrt(2)), 5);
 * if (!(units >= 1)) throw new Error("wrong");
 * ```
 */
export async function calibrateBatch(
  run: BatchRunner,
  minMs: number,
  maxUnits = 1 << 16,
): Promise<number> {
  // Warm-up: compiles, JIT, first touch. A unit far longer than a batch needs no calibration.
  if ((await run(1)).wallMs >= 2 * minMs) return 1;
  for (let units = 1;; units *= 2) {
    const sample = await run(units);
    if (sample.wallMs * units >= minMs || units >= maxUnits) return units;
  }
}

/**
 * Collects the samples of one variant into a {@linkcode Timing}, keeping every raw sample.
 *
 * @example
 * ```ts
 * import { toTiming } from "./timing.ts";
 * const t = toTiming([{ wallMs: 3, gpuMs: 1 }, { wallMs: 5, gpuMs: 2 }], 4);
 * if (t.gpuMs?.max !== 2 || t.wallMs.min !== 3 || t.samples?.wallMs[1] !== 5) throw new Error("wrong");
 * ```
 */
export function toTiming(samples: readonly BatchSample[], batch: number): Timing {
  const gpu = samples.map((s) => s.gpuMs).filter((g): g is number => g !== undefined);
  const wall = samples.map((s) => s.wallMs);
  const hasGpu = gpu.length === samples.length;
  return {
    wallMs: summarize(wall),
    ...(hasGpu ? { gpuMs: summarize(gpu) } : {}),
    batch,
    samples: { wallMs: wall, ...(hasGpu ? { gpuMs: gpu } : {}) },
  };
}

/**
 * A CPU batch: `units` calls of `fn`, wall-clock.
 *
 * @example
 * ```ts
 * import { cpuRunner } from "./timing.ts";
 * const sample = await cpuRunner(() => [3, 1, 2].sort())(100);
 * if (!(sample.wallMs >= 0) || sample.gpuMs !== undefined) throw new Error("wrong");
 * ```
 */
export function cpuRunner(fn: () => unknown): BatchRunner {
  return (units) => {
    const start = performance.now();
    for (let i = 0; i < units; i++) fn();
    return Promise.resolve({ wallMs: (performance.now() - start) / units });
  };
}

/**
 * Timestamp queries for the passes a {@linkcode Gpu} submits: install it as `gpu.passTimer`,
 * run a batch, then {@linkcode TimestampTimer.collectMs} resolves every pass's begin/end pair
 * into a buffer, reads it back once and returns the summed GPU milliseconds.
 *
 * @example
 * ```ts ignore
 * const timer = new TimestampTimer(gpu);
 * gpu.passTimer = timer;
 * await gpu.submit(dispatches);
 * gpu.passTimer = undefined;
 * console.log(await timer.collectMs(), "ms on the GPU");
 * ```
 */
export class TimestampTimer implements PassTimer {
  /** Passes one batch may time. */
  readonly capacity: number;
  readonly #gpu: Gpu;
  readonly #querySet: GPUQuerySet;
  readonly #resolved: GPUBuffer;
  #passes = 0;
  #overflow = false;

  /** A timer for up to `capacity` passes per batch (needs the `timestamp-query` feature). */
  constructor(gpu: Gpu, capacity = 2048) {
    this.#gpu = gpu;
    this.capacity = capacity;
    this.#querySet = gpu.device.createQuerySet({ type: "timestamp", count: 2 * capacity });
    this.#resolved = gpu.device.createBuffer({
      label: "timestamps",
      size: 16 * capacity,
      usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
    });
  }

  /** Whether the device can time passes. */
  static supported(gpu: Gpu): boolean {
    return gpu.device.features.has("timestamp-query");
  }

  /** Timestamp writes for the next pass. */
  writes(): GPUComputePassTimestampWrites | undefined {
    if (this.#passes >= this.capacity) {
      this.#overflow = true;
      return undefined;
    }
    const at = 2 * this.#passes++;
    return {
      querySet: this.#querySet,
      beginningOfPassWriteIndex: at,
      endOfPassWriteIndex: at + 1,
    };
  }

  /** Sums the GPU time of the passes since the last call, in ms, and starts a new batch. */
  async collectMs(): Promise<number> {
    const passes = this.#passes;
    const overflow = this.#overflow;
    this.#passes = 0;
    this.#overflow = false;
    if (overflow) {
      throw new Error(`timestamps: a batch ran more than ${this.capacity} passes`);
    }
    if (passes === 0) return 0;
    const encoder = this.#gpu.device.createCommandEncoder({ label: "resolve timestamps" });
    encoder.resolveQuerySet(this.#querySet, 0, 2 * passes, this.#resolved, 0);
    this.#gpu.device.queue.submit([encoder.finish()]);
    const ticks = new BigUint64Array(await this.#gpu.read(this.#resolved, 16 * passes));
    let ns = 0;
    for (let i = 0; i < passes; i++) ns += Number(ticks[2 * i + 1] - ticks[2 * i]);
    return ns / 1e6;
  }

  /** Frees the query set and buffer. */
  destroy(): void {
    this.#querySet.destroy();
    this.#resolved.destroy();
  }
}

/**
 * Wraps a GPU batch `run(units)` (which submits and waits): wall-clock around it, and GPU time
 * from `timer` when given.
 *
 * @example
 * ```ts ignore
 * const run = gpuRunner(gpu, timer, (units) => submitUnits(gpu, dispatches, units));
 * const { wallMs, gpuMs } = await run(64);
 * ```
 */
export function gpuRunner(
  gpu: Gpu,
  timer: TimestampTimer | undefined,
  run: (units: number) => Promise<void>,
): BatchRunner {
  return async (units) => {
    gpu.passTimer = timer;
    try {
      const start = performance.now();
      await run(units);
      const wallMs = (performance.now() - start) / units;
      return timer ? { wallMs, gpuMs: (await timer.collectMs()) / units } : { wallMs };
    } finally {
      gpu.passTimer = undefined;
    }
  };
}

/**
 * `units` copies of `dispatches` in one pass, submitted and waited for.
 *
 * @example
 * ```ts ignore
 * await submitUnits(gpu, dispatches, 16); // one pass of 16 copies, waited for
 * ```
 */
export async function submitUnits(gpu: Gpu, dispatches: Dispatch[], units: number): Promise<void> {
  const all: Dispatch[] = [];
  for (let i = 0; i < units; i++) all.push(...dispatches);
  await gpu.submit(all, "benchmark");
  await gpu.finish();
}
