/**
 * The wall-clock cost of the two synchronisations a WebGPU decode pays per call: one submit
 * waited for, and one read-back (a copy into a mappable buffer, its submit and `mapAsync`), with
 * bare `mapAsync` of an already-written buffer beside them. A 32-token `generate` pays two
 * submits and one read-back; a one-token call pays them per token.
 *
 * @module
 */
import type { Gpu } from "../gpu/device.ts";
import { type BatchRunner, calibrateBatch, type Timing, toTiming } from "../gpu/timing.ts";
import { roundRobin } from "./stats.ts";

/** The measured synchronisation costs, wall ms per call with every raw sample. */
export interface SyncCosts {
  /** An empty compute pass submitted through `Gpu.submit`, then `Gpu.finish`. */
  submit: Timing;
  /** `Gpu.read` of 4 bytes: copy, submit, `mapAsync`, copy out. */
  readBack: Timing;
  /** `mapAsync` and `unmap` of a 4-byte mappable buffer, nothing submitted. */
  mapAsync: Timing;
}

/** Options of {@linkcode measureSyncCosts}. */
export interface SyncCostOptions {
  /** Samples of each. */
  reps: number;
  /** Minimum batch length, ms. */
  minBatchMs: number;
}

/**
 * Measures {@linkcode SyncCosts} on `gpu`: the three interleaved round-robin, each sample a
 * batch of calls lasting at least `minBatchMs`.
 *
 * @example
 * ```ts ignore
 * const costs = await measureSyncCosts(gpu, { reps: 5, minBatchMs: 50 });
 * console.log(costs.submit.wallMs.median, "ms per submit");
 * ```
 */
export async function measureSyncCosts(gpu: Gpu, options: SyncCostOptions): Promise<SyncCosts> {
  const source = gpu.device.createBuffer({
    label: "sync probe",
    size: 16,
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
  });
  const mappable = gpu.device.createBuffer({
    label: "sync probe map",
    size: 16,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  const timed = (once: () => Promise<unknown>): BatchRunner => async (units) => {
    const start = performance.now();
    for (let i = 0; i < units; i++) await once();
    return { wallMs: (performance.now() - start) / units };
  };
  const probes = {
    submit: timed(async () => {
      await gpu.submit([], "sync probe");
      await gpu.finish();
    }),
    readBack: timed(() => gpu.read(source, 4)),
    mapAsync: timed(async () => {
      await mappable.mapAsync(GPUMapMode.READ, 0, 4);
      mappable.unmap();
    }),
  };
  try {
    const names = Object.keys(probes) as (keyof SyncCosts)[];
    const batches = new Map<keyof SyncCosts, number>();
    for (const name of names) {
      batches.set(name, await calibrateBatch(probes[name], options.minBatchMs, 4096));
    }
    const samples = await roundRobin(
      names,
      options.reps,
      (name) => probes[name](batches.get(name)!),
    );
    const timing = (name: keyof SyncCosts) => toTiming(samples.get(name)!, batches.get(name)!);
    return { submit: timing("submit"), readBack: timing("readBack"), mapAsync: timing("mapAsync") };
  } finally {
    source.destroy();
    mappable.destroy();
  }
}
