/**
 * Measurements behind the benchmark report: copy bandwidth (the roofline), kernels on both
 * backends, and decoder cells (prefill and decode per variant and context).
 *
 * @module
 */
import type { Dispatch, Gpu } from "../gpu/device.ts";
import { addKernel } from "../gpu/add.ts";
import { argmaxKernel } from "../gpu/argmax.ts";
import { attentionKernel } from "../gpu/attention.ts";
import { copyKernel } from "../gpu/copy.ts";
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

/** Which implementation ran. */
export type Backend = "cpu" | "webgpu";

/** One kernel's achieved throughput. */
export interface KernelResult {
  /** Backend. */
  backend: Backend;
  /** Kernel name. */
  kernel: string;
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
  const ms = await timeReps((reps) => submitReps(gpu, [copy], reps), 200);
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

interface KernelSpec {
  kernel: string;
  shape: string;
  bytes: number;
  cpu: () => void;
  gpu: (gpu: Gpu) => Promise<Dispatch[]>;
}

function kernelSpecs(quick: boolean): KernelSpec[] {
  const rng = new Rng(1);
  const specs: KernelSpec[] = [];
  const matvecSpec = (outDim: number, inDim: number) => {
    const w = rng.uniformArray(outDim * inDim);
    const x = rng.uniformArray(inDim);
    specs.push({
      kernel: "matvec",
      shape: `${outDim}x${inDim}`,
      bytes: 4 * (outDim * inDim + inDim + outDim),
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
      shape: `${dim}`,
      bytes: 4 * 3 * dim,
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
      shape: `${hidden}`,
      bytes: 4 * 3 * hidden,
      cpu: () => siluMul(gate, up),
      gpu: async (
        gpu,
      ) => [
        (await siluMulKernel(gpu, hidden)).bind({ gate: gpu.upload(gate), up: gpu.upload(up) }),
      ],
    });
    specs.push({
      kernel: "add",
      shape: `${dim}`,
      bytes: 4 * 3 * dim,
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
      shape: `${nHeads}x${headDim}`,
      bytes: 4 * (2 * x.length + x.length),
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
      shape: `${nHeads}/${nKvHeads}x${headDim} ctx ${context}`,
      bytes: 4 * (2 * q.length + 2 * keys.length),
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
      shape: `${vocab}`,
      bytes: 4 * vocab,
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
      shape: `${vocab}`,
      bytes: 4 * 3 * vocab,
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
  for (const spec of kernelSpecs(options.quick)) {
    for (const backend of options.backends) {
      let ms: number;
      if (backend === "cpu") {
        ms = await timeReps((reps) => {
          for (let i = 0; i < reps; i++) spec.cpu();
        }, minMs);
      } else {
        const gpu = options.gpu!;
        const dispatches = await spec.gpu(gpu);
        ms = await timeReps((reps) => submitReps(gpu, dispatches, reps), minMs);
      }
      const gbPerS = spec.bytes / (ms / 1000) / 1e9;
      const result = {
        backend,
        kernel: spec.kernel,
        shape: spec.shape,
        ms,
        bytes: spec.bytes,
        gbPerS,
        rooflineFraction: gbPerS / (options.copyGbPerS[backend] ?? NaN),
      };
      progress(
        `kernel ${backend} ${spec.kernel} ${spec.shape}: ${ms.toFixed(3)} ms, ${
          gbPerS.toFixed(2)
        } GB/s`,
      );
      results.push(result);
    }
  }
  return results;
}
