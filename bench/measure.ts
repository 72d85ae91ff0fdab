/**
 * Measurements behind the benchmark report: copy bandwidth (the roofline), kernels on both
 * backends, and decoder cells (prefill and decode per variant and context).
 *
 * @module
 */
import type { Dispatch, Gpu } from "../gpu/device.ts";
import { copyKernel } from "../gpu/copy.ts";
import { benchKernels } from "./_kernels.ts";

/** Which implementation ran. */
export type Backend = "cpu" | "webgpu";

/** One kernel's achieved throughput. */
export interface KernelResult {
  /** Backend. */
  backend: Backend;
  /** Kernel name. */
  kernel: string;
  /** The variant timed ("reference" on the CPU); absent in results from older runs. */
  variant?: string;
  /** Shape, readable. */
  shape: string;
  /** Milliseconds per call. */
  ms: number;
  /** Bytes the call must read and write. */
  bytes: number;
  /** Achieved GB/s. */
  gbPerS: number;
  /** Achieved GB/s over the backend's copy bandwidth. */
  rooflineFraction: number;
}

/** Repeats `run(reps)` with doubling reps until it takes `minMs`; returns ms per rep. */
export async function timeReps(
  run: (reps: number) => Promise<void> | void,
  minMs = 100,
): Promise<number> {
  await run(1); // warm-up: compiles, JIT, first-touch
  for (let reps = 1;; reps *= 2) {
    const start = performance.now();
    await run(reps);
    const elapsed = performance.now() - start;
    if (elapsed >= minMs || reps >= 1 << 16) return elapsed / reps;
  }
}

/** Submits `dispatches` `reps` times in one pass and waits for completion. */
async function submitReps(gpu: Gpu, dispatches: Dispatch[], reps: number): Promise<void> {
  const all: Dispatch[] = [];
  for (let i = 0; i < reps; i++) all.push(...dispatches);
  await gpu.submit(all, "benchmark");
  await gpu.finish();
}

/** The adapter's copy bandwidth in GB/s (bytes read plus written), from the copy kernel. */
export async function gpuCopyBandwidth(gpu: Gpu, bytes = 64 << 20): Promise<number> {
  const n = bytes / 4;
  const src = gpu.createBuffer(bytes, "copy src");
  const dst = gpu.createBuffer(bytes, "copy dst");
  const copy = (await copyKernel(gpu, n)).bind({ src, dst });
  const ms = await timeReps((reps) => submitReps(gpu, copy, reps), 200);
  src.destroy();
  dst.destroy();
  return (2 * bytes) / (ms / 1000) / 1e9;
}

/** The CPU's copy bandwidth in GB/s (bytes read plus written), from `TypedArray.set`. */
export async function cpuCopyBandwidth(bytes = 64 << 20): Promise<number> {
  const src = new Float32Array(bytes / 4).fill(1);
  const dst = new Float32Array(bytes / 4);
  const ms = await timeReps((reps) => {
    for (let i = 0; i < reps; i++) dst.set(src);
  }, 200);
  return (2 * bytes) / (ms / 1000) / 1e9;
}

/** Times every kernel on the backends given (`gpu` undefined: CPU only). */
export async function measureKernels(
  options: {
    quick: boolean;
    gpu?: Gpu;
    backends: Backend[];
    copyGbPerS: Partial<Record<Backend, number>>;
  },
  progress: (line: string) => void = () => {},
): Promise<KernelResult[]> {
  const results: KernelResult[] = [];
  const minMs = options.quick ? 30 : 100;
  for (const spec of benchKernels(options.quick)) {
    for (const backend of options.backends) {
      let ms: number;
      const cpu = spec.cpu;
      if (backend === "cpu") {
        if (!cpu) continue; // the reference is timed once per shape, with the first variant
        ms = await timeReps((reps) => {
          for (let i = 0; i < reps; i++) cpu();
        }, minMs);
      } else {
        const gpu = options.gpu!;
        if (spec.unsupported(gpu)) continue;
        const dispatches = await spec.gpu(gpu);
        ms = await timeReps((reps) => submitReps(gpu, dispatches, reps), minMs);
      }
      const gbPerS = spec.bytes / (ms / 1000) / 1e9;
      const result = {
        backend,
        kernel: spec.kernel,
        variant: backend === "cpu" ? "reference" : spec.variant,
        shape: spec.shape,
        ms,
        bytes: spec.bytes,
        gbPerS,
        rooflineFraction: gbPerS / (options.copyGbPerS[backend] ?? NaN),
      };
      progress(
        `kernel ${backend} ${result.variant} ${spec.kernel} ${spec.shape}: ${ms.toFixed(3)} ms, ${
          gbPerS.toFixed(2)
        } GB/s`,
      );
      results.push(result);
    }
  }
  return results;
}
