/**
 * The kernel table: each kernel case on both backends, repeated with its backends interleaved,
 * as time, GB/s and GFLOP/s against the backend's measured roofline and time model.
 *
 * @module
 */
import type { Gpu } from "../gpu/device.ts";
import { type Ceilings, predictMs } from "../model/cost.ts";
import type { Roofline } from "./probes.ts";
import type { BenchKernel } from "./kernel_table.ts";
import { invertSpread, isNoisy, roundRobin } from "./stats.ts";
import type { Spread } from "../gpu/timing.ts";
import {
  type BatchRunner,
  bestMs,
  calibrateBatch,
  cpuRunner,
  gpuRunner,
  submitUnits,
  TimestampTimer,
  type Timing,
  toTiming,
} from "../gpu/timing.ts";

/** Which implementation ran. */
export type Backend = "cpu" | "webgpu";

/**
 * One kernel variant at one shape, as the kernel table measures it: its unique bytes read plus
 * written, its FLOPs, and how to run it (the registry's bench entries, bench/kernel_table.ts). The
 * table takes its list from outside.
 */
export type KernelCase = BenchKernel;

/** One kernel's repeated measurement. */
export interface KernelResult {
  /** Backend. */
  backend: Backend;
  /** Kernel name. */
  kernel: string;
  /** Implementation variant. */
  variant: string;
  /** Shape, readable. */
  shape: string;
  /** Unique bytes read plus written per call. */
  bytes: number;
  /** FLOPs per call. */
  flops: number;
  /** Dispatches (kernel calls) per call. */
  dispatches: number;
  /** Time per call. */
  timing: Timing;
  /** Achieved GB/s (from GPU time where measured). */
  gbPerS: Spread;
  /** Achieved GFLOP/s. */
  gflopPerS: Spread;
  /** Median GB/s over the backend's median read-stream bandwidth. */
  rooflineFraction: number;
  /** The time model's ms per call. */
  predictedMs: number;
  /** Median measured ms over predicted. */
  measuredOverPredicted: number;
  /** Whether the bytes it touches fit in the last-level cache (repeated calls then hit it). */
  fitsInLlc: boolean;
}

/** Options of {@linkcode measureKernels}. */
export interface KernelOptions {
  /** Backends to run. */
  backends: Backend[];
  /** The GPU, when `backends` includes webgpu. */
  gpu?: Gpu;
  /** Samples per kernel and backend. */
  reps: number;
  /** Minimum batch length per backend, ms. */
  minBatchMs: Record<Backend, number>;
  /** Each backend's measured roofline. */
  rooflines: Partial<Record<Backend, Roofline>>;
  /** Last-level cache bytes (0: unknown). */
  llcBytes: number;
}

/**
 * Times each case on each backend: `reps` samples (up to twice as many where they spread),
 * the backends and variants of a kernel and shape interleaved round-robin, each sample a batch
 * of at least the backend's minimum length.
 */
export async function measureKernels(
  cases: readonly KernelCase[],
  options: KernelOptions,
  progress: (line: string) => void = () => {},
): Promise<KernelResult[]> {
  const results: KernelResult[] = [];
  const timer = options.gpu && TimestampTimer.supported(options.gpu)
    ? new TimestampTimer(options.gpu)
    : undefined;
  // The cases of one kernel and shape (its variants) are measured together, interleaved.
  const groups = new Map<string, KernelCase[]>();
  for (const spec of cases) {
    const key = `${spec.kernel}|${spec.shape}`;
    groups.set(key, [...groups.get(key) ?? [], spec]);
  }
  interface Runner {
    spec: KernelCase;
    backend: Backend;
    run: BatchRunner;
    batch: number;
    dispatches: number;
  }
  try {
    for (const group of groups.values()) {
      const runners: Runner[] = [];
      for (const spec of group) {
        for (const backend of options.backends) {
          let run: BatchRunner;
          let dispatches = 1;
          // The reference is timed once per shape, with its first variant (the CPU has none).
          if (backend === "cpu" && spec.cpu) run = cpuRunner(spec.cpu);
          else if (backend === "webgpu" && options.gpu && !spec.unsupported(options.gpu)) {
            const gpu = options.gpu;
            const list = await spec.gpu(gpu);
            dispatches = list.length;
            run = gpuRunner(gpu, timer, (units) => submitUnits(gpu, list, units));
          } else continue;
          const batch = await calibrateBatch(run, options.minBatchMs[backend]);
          runners.push({ spec, backend, run, batch, dispatches });
        }
      }
      // More rounds where the noise is: up to twice the samples while the spread exceeds 25%.
      const samples = await roundRobin(
        runners,
        options.reps,
        (r) => r.run(r.batch),
        {
          rounds: options.reps,
          unsettled: (list) => isNoisy(list.map((s) => s.gpuMs ?? s.wallMs), 0.25),
        },
      );
      for (const [{ spec, backend, batch, dispatches }, list] of samples) {
        const timing = toTiming(list, batch);
        const ms = bestMs(timing);
        const ceilings = modelCeilings(options.rooflines[backend]);
        const predictedMs = predictMs(
          { flops: spec.flops, bytes: spec.bytes, dispatches },
          ceilings,
        );
        const gbPerS = invertSpread(ms, spec.bytes / 1e6);
        const variant = backend === "cpu" ? "reference" : spec.variant;
        results.push({
          backend,
          kernel: spec.kernel,
          variant,
          shape: spec.shape,
          bytes: spec.bytes,
          flops: spec.flops,
          dispatches,
          timing,
          gbPerS,
          gflopPerS: invertSpread(ms, spec.flops / 1e6),
          rooflineFraction: gbPerS.median / ceilings.readGbPerS,
          predictedMs,
          measuredOverPredicted: ms.median / predictedMs,
          fitsInLlc: options.llcBytes > 0 && spec.bytes <= options.llcBytes,
        });
        progress(
          `kernel ${backend} ${spec.kernel} ${variant} ${spec.shape}: ${ms.median.toFixed(4)} ms ` +
            `[${ms.min.toFixed(4)}-${ms.max.toFixed(4)}], ${gbPerS.median.toFixed(2)} GB/s`,
        );
      }
    }
  } finally {
    timer?.destroy();
  }
  return results;
}

/** The time model's parameters from a roofline's medians (NaN where none was measured). */
export function modelCeilings(roofline: Roofline | undefined): Ceilings {
  return roofline
    ? {
      readGbPerS: roofline.readGbPerS.median,
      peakGflopPerS: roofline.peakGflopPerS.median,
      dispatchUs: roofline.dispatchUs.median,
    }
    : { readGbPerS: NaN, peakGflopPerS: NaN, dispatchUs: NaN };
}

/**
 * A measured stream that may raise its backend's read ceiling: a kernel of the table, or a whole
 * decode step of the precision axis (its bytes per token over its time).
 */
export interface ReadStream {
  /** Backend it ran on. */
  backend: Backend;
  /** Unique bytes it reads per call (or per token). */
  bytes: number;
  /** Its achieved read rate. */
  gbPerS: Spread;
  /** What it is, readable: "kernel matvec row big", "decode step stories15M f32/f32". */
  source: string;
}

/**
 * Raises each backend's read ceiling to the fastest measured stream whose bytes outgrow the
 * last-level cache (`llcBytes`, the measured knee; 0, unknown, raises nothing), where that stream
 * is faster than the ceiling so far (on lavapipe a kernel reading two matrices at once outruns
 * the one-stream probe): a ceiling is one no measured program beats. The streams are the kernels
 * and any `steps` (the precision axis's decode steps: `precisionStreams`, bench/precision_cells.ts).
 * The probe's own figure is kept in `probeReadGbPerS` and the stream named in `readSource`.
 * Returns the rooflines and the kernels with their fractions and predictions recomputed
 * against the raised ceiling (a second call with later streams keeps the probe's figure).
 *
 * @example
 * ```ts
 * import { raiseReadCeiling } from "./measure.ts";
 * const s = (x: number) => ({ median: x, min: x, max: x, q1: x, q3: x, n: 1 });
 * const roofline = { readGbPerS: s(3), copyGbPerS: s(3), peakGflopPerS: s(90), dispatchUs: s(20),
 *   probeBytes: 2 ** 27, gpuTimestamps: true };
 * const timing = { wallMs: s(10), batch: 1 };
 * const kernel = { backend: "webgpu" as const, kernel: "matvec", variant: "default", shape: "big",
 *   bytes: 6e7, flops: 3e7, dispatches: 1, timing, gbPerS: s(6), gflopPerS: s(3),
 *   rooflineFraction: 2, predictedMs: 20, measuredOverPredicted: 0.5, fitsInLlc: false };
 * const raised = raiseReadCeiling({ webgpu: roofline }, [kernel], 32 << 20);
 * if (raised.rooflines.webgpu!.readGbPerS.median !== 6) throw new Error("not raised");
 * if (raised.kernels[0].rooflineFraction !== 1) throw new Error("fraction not recomputed");
 * ```
 */
export function raiseReadCeiling(
  rooflines: Partial<Record<Backend, Roofline>>,
  kernels: readonly KernelResult[],
  llcBytes: number,
  steps: readonly ReadStream[] = [],
): { rooflines: Partial<Record<Backend, Roofline>>; kernels: KernelResult[] } {
  const streams: ReadStream[] = [
    ...kernels.map((k) => ({
      backend: k.backend,
      bytes: k.bytes,
      gbPerS: k.gbPerS,
      source: `kernel ${k.kernel} ${k.variant} ${k.shape}`,
    })),
    ...steps,
  ];
  const raised: Partial<Record<Backend, Roofline>> = {};
  for (const [backend, roofline] of Object.entries(rooflines) as [Backend, Roofline][]) {
    const fastest = streams
      .filter((k) => k.backend === backend && llcBytes > 0 && k.bytes > llcBytes)
      .reduce<ReadStream | undefined>(
        (best, k) => !best || k.gbPerS.median > best.gbPerS.median ? k : best,
        undefined,
      );
    raised[backend] = fastest && fastest.gbPerS.median > roofline.readGbPerS.median
      ? {
        ...roofline,
        readGbPerS: fastest.gbPerS,
        probeReadGbPerS: roofline.probeReadGbPerS ?? roofline.readGbPerS,
        readSource: fastest.source,
      }
      : roofline;
  }
  return {
    rooflines: raised,
    kernels: kernels.map((k) => {
      const ceilings = modelCeilings(raised[k.backend]);
      const predictedMs = predictMs(
        { flops: k.flops, bytes: k.bytes, dispatches: k.dispatches },
        ceilings,
      );
      return {
        ...k,
        rooflineFraction: k.gbPerS.median / ceilings.readGbPerS,
        predictedMs,
        measuredOverPredicted: bestMs(k.timing).median / predictedMs,
      };
    }),
  };
}
