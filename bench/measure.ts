/**
 * The kernel table: each kernel case on both backends, repeated with its backends interleaved,
 * as time, GB/s and GFLOP/s against the backend's measured roofline and time model.
 *
 * @module
 */
import type { Dispatch, Gpu } from "../gpu/device.ts";
import { addKernel } from "../gpu/add.ts";
import { argmaxKernel } from "../gpu/argmax.ts";
import { attentionKernel } from "../gpu/attention.ts";
import { matmulDispatches, uploadMatrix } from "../gpu/matmul.ts";
import { rmsNormKernel } from "../gpu/rms_norm.ts";
import { ropeKernel } from "../gpu/rope.ts";
import { softmaxKernel } from "../gpu/softmax.ts";
import { siluMulKernel } from "../gpu/swiglu.ts";
import { STATE, STATE_WORDS } from "../gpu/kernel.ts";
import { decodeAttention } from "../reference/attention.ts";
import { matvec } from "../reference/matmul.ts";
import { rmsNorm } from "../reference/norm.ts";
import { Rng } from "../reference/random.ts";
import { rope, ropeTable } from "../reference/rope.ts";
import { argmax } from "../reference/sampling.ts";
import { softmax } from "../reference/softmax.ts";
import { siluMul } from "../reference/swiglu.ts";
import { type Ceilings, predictMs } from "../model/cost.ts";
import type { Roofline } from "./probes.ts";
import { invertSpread, roundRobin, type Spread } from "./stats.ts";
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
} from "./timing.ts";

/** Which implementation ran. */
export type Backend = "cpu" | "webgpu";

/**
 * One kernel at one shape, as the kernel table measures it: its unique bytes read plus written,
 * its FLOPs, and how to run it on each backend. The table takes its list from outside.
 */
export interface KernelCase {
  /** Kernel name. */
  kernel: string;
  /** Implementation variant (e.g. a tiling), "default" when there is one. */
  variant: string;
  /** Shape, readable. */
  shape: string;
  /** Unique bytes read plus written by one call. */
  bytes: number;
  /** Floating-point operations of one call (a multiply-add counts 2). */
  flops: number;
  /** The CPU reference call. */
  cpu?: () => unknown;
  /** The WebGPU dispatches of one call. */
  gpu?: (gpu: Gpu) => Promise<Dispatch[]>;
}

/**
 * The kernels at real LLaMA shapes (small ones in `quick`), every one counted by the same rule:
 * unique bytes read plus written, FLOPs with a multiply-add as 2 and exp as 1.
 */
export function kernelCases(quick: boolean): KernelCase[] {
  const rng = new Rng(1);
  const specs: KernelCase[] = [];
  const matvecSpec = (outDim: number, inDim: number) => {
    const w = rng.uniformArray(outDim * inDim);
    const x = rng.uniformArray(inDim);
    specs.push({
      kernel: "matvec",
      variant: "default",
      shape: `${outDim}x${inDim}`,
      bytes: 4 * (outDim * inDim + inDim + outDim),
      flops: 2 * outDim * inDim,
      cpu: () => matvec(w, x, outDim, inDim),
      gpu: (gpu) =>
        matmulDispatches(gpu, uploadMatrix(gpu, w, outDim, inDim), {
          rows: 1,
          x: gpu.upload(x),
          out: gpu.createBuffer(outDim * 4),
        }),
    });
  };
  const [dim, hidden] = quick ? [288, 768] : [2048, 5632];
  matvecSpec(hidden, dim);
  matvecSpec(dim, hidden);
  if (!quick) matvecSpec(32000, 288);
  {
    const x = rng.uniformArray(dim);
    const weight = rng.uniformArray(dim);
    specs.push({
      kernel: "rmsNorm",
      variant: "default",
      shape: `${dim}`,
      bytes: 4 * 3 * dim, // x and weight read, out written
      flops: 4 * dim, // square-add, then scale and weight
      cpu: () => rmsNorm(x, weight),
      gpu: async (
        gpu,
      ) => [
        (await rmsNormKernel(gpu, { rows: 1, dim })).bind({
          x: gpu.upload(x),
          weight: gpu.upload(weight),
          out: gpu.createBuffer(dim * 4),
        }),
      ],
    });
  }
  {
    const gate = rng.uniformArray(hidden);
    const up = rng.uniformArray(hidden);
    specs.push({
      kernel: "siluMul",
      variant: "default",
      shape: `${hidden}`,
      bytes: 4 * 3 * hidden, // gate and up read, gate written in place
      flops: 5 * hidden, // exp, add, divide, two multiplies
      cpu: () => siluMul(gate, up),
      gpu: async (
        gpu,
      ) => [
        (await siluMulKernel(gpu, hidden)).bind({ gate: gpu.upload(gate), up: gpu.upload(up) }),
      ],
    });
    specs.push({
      kernel: "add",
      variant: "default",
      shape: `${dim}`,
      bytes: 4 * 3 * dim, // x and delta read, x written in place
      flops: dim,
      cpu: () => gate.subarray(0, dim).forEach((v, i) => gate[i] = v + up[i]),
      gpu: async (
        gpu,
      ) => [
        (await addKernel(gpu, dim)).bind({
          x: gpu.upload(gate.subarray(0, dim)),
          delta: gpu.upload(up.subarray(0, dim)),
        }),
      ],
    });
  }
  {
    const [nHeads, headDim, maxSeqLen] = quick ? [6, 48, 256] : [32, 64, 2048];
    const x = rng.uniformArray(nHeads * headDim);
    const pos = maxSeqLen - 1;
    specs.push({
      kernel: "rope",
      variant: "default",
      shape: `${nHeads}x${headDim}`,
      // x read and written in place; one table row (headDim/2 cos, headDim/2 sin) read
      bytes: 4 * (2 * x.length + headDim),
      flops: 3 * x.length, // per pair: 4 multiplies, 2 adds
      cpu: () => rope(x, pos, headDim),
      gpu: async (gpu) => [
        (await ropeKernel(gpu, { rows: 1, nHeads, headDim, maxSeqLen })).bind({
          x: gpu.upload(x),
          table: gpu.upload(ropeTable(headDim, maxSeqLen)),
          state: gpu.upload(
            Uint32Array.from({ length: STATE_WORDS }, (_, i) => i === STATE.pos ? pos : 0),
          ),
        }),
      ],
    });
  }
  for (
    const [nHeads, nKvHeads, headDim, context] of quick
      ? [[6, 6, 48, 128]]
      : [[32, 4, 64, 1024], [32, 32, 128, 1024]]
  ) {
    const kvDim = nKvHeads * headDim;
    const q = rng.uniformArray(nHeads * headDim);
    const keys = rng.uniformArray(context * kvDim);
    const values = rng.uniformArray(context * kvDim);
    const shape = { nHeads, nKvHeads, headDim };
    specs.push({
      kernel: "attention decode",
      variant: "default",
      shape: `${nHeads}/${nKvHeads}x${headDim} ctx ${context}`,
      bytes: 4 * (2 * q.length + 2 * keys.length), // q read, out written, keys and values read
      flops: 4 * nHeads * headDim * context + 3 * nHeads * context, // dots, weighted sum, softmax
      cpu: () => decodeAttention(q, keys, values, context - 1, shape),
      gpu: async (gpu) =>
        (await attentionKernel(gpu, { rows: 1, ...shape })).bind({
          q: gpu.upload(q),
          keyCache: gpu.upload(keys),
          valueCache: gpu.upload(values),
          state: gpu.upload(
            Uint32Array.from({ length: STATE_WORDS }, (_, i) => i === STATE.pos ? context - 1 : 0),
          ),
          out: gpu.createBuffer(q.length * 4),
        }),
    });
  }
  {
    const vocab = quick ? 512 : 32000;
    const logits = rng.uniformArray(vocab);
    specs.push({
      kernel: "argmax",
      variant: "default",
      shape: `${vocab}`,
      bytes: 4 * vocab + 4, // logits read, one token id written
      flops: vocab, // comparisons
      cpu: () => argmax(logits),
      gpu: async (
        gpu,
      ) => [
        (await argmaxKernel(gpu, vocab)).bind({
          logits: gpu.upload(logits),
          state: gpu.createBuffer(16),
        }),
      ],
    });
    specs.push({
      kernel: "softmax",
      variant: "default",
      shape: `${vocab}`,
      bytes: 4 * 2 * vocab, // x read, out written (unique bytes, however many passes)
      flops: 4 * vocab, // max, subtract, exp, divide
      cpu: () => softmax(logits),
      gpu: async (
        gpu,
      ) => [
        (await softmaxKernel(gpu, { rows: 1, n: vocab })).bind({
          x: gpu.upload(logits),
          out: gpu.createBuffer(vocab * 4),
        }),
      ],
    });
  }
  return specs;
}

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
}

/**
 * Times each case on each backend: `reps` samples, the backends of a case interleaved round-
 * robin, each sample a batch of at least the backend's minimum length.
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
  try {
    for (const spec of cases) {
      const runners = new Map<Backend, { run: BatchRunner; batch: number; dispatches: number }>();
      for (const backend of options.backends) {
        let run: BatchRunner;
        let dispatches = 1;
        if (backend === "cpu" && spec.cpu) run = cpuRunner(spec.cpu);
        else if (backend === "webgpu" && spec.gpu && options.gpu) {
          const gpu = options.gpu;
          const list = await spec.gpu(gpu);
          dispatches = list.length;
          run = gpuRunner(gpu, timer, (units) => submitUnits(gpu, list, units));
        } else continue;
        runners.set(backend, {
          run,
          batch: await calibrateBatch(run, options.minBatchMs[backend]),
          dispatches,
        });
      }
      const samples = await roundRobin(
        [...runners.keys()],
        options.reps,
        (backend) => runners.get(backend)!.run(runners.get(backend)!.batch),
      );
      for (const [backend, list] of samples) {
        const { batch, dispatches } = runners.get(backend)!;
        const timing = toTiming(list, batch);
        const ms = bestMs(timing);
        const ceilings = modelCeilings(options.rooflines[backend]);
        const predictedMs = predictMs(
          { flops: spec.flops, bytes: spec.bytes, dispatches },
          ceilings,
        );
        const gbPerS = invertSpread(ms, spec.bytes / 1e6);
        results.push({
          backend,
          kernel: spec.kernel,
          variant: spec.variant,
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
        });
        progress(
          `kernel ${backend} ${spec.kernel} ${spec.shape}: ${ms.median.toFixed(4)} ms ` +
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
