/**
 * The measured roofline of each backend: a read-only stream (a sum reduction, the memory
 * ceiling; on the CPU a WebAssembly SIMD loop), a copy beside it, a compute-bound probe (peak GFLOP/s) and the cost of one kernel
 * call. The streams use a working set chosen by the caller (at least 4x the last-level cache).
 *
 * @module
 */
import type { Gpu } from "../gpu/device.ts";
import { copyKernel } from "../gpu/copy.ts";
import { compileKernel } from "../gpu/kernel.ts";
import { matvec } from "../reference/matmul.ts";
import { invertSpread, scaleSpread } from "./stats.ts";
import type { Spread } from "../gpu/timing.ts";
import { type WasmStream, wasmStream } from "./_wasm_stream.ts";
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

/** One backend's measured ceilings, each with its spread. */
export interface Roofline {
  /**
   * The read ceiling, GB/s: the read-only stream probe's (a sum reduction), or a faster
   * kernel's beyond the last-level cache (then named in `readSource`).
   */
  readGbPerS: Spread;
  /** The read probe's own GB/s, where a kernel beat it and raised `readGbPerS`. */
  probeReadGbPerS?: Spread;
  /** The kernel whose rate `readGbPerS` is, where it beat the read probe. */
  readSource?: string;
  /** CPU only: the same sum as a plain JavaScript loop, GB/s (a code ceiling, not memory's). */
  scalarReadGbPerS?: Spread;
  /** Copy bandwidth, GB/s, counting bytes read plus written. */
  copyGbPerS: Spread;
  /** Peak arithmetic, GFLOP/s (a multiply-add counts 2). */
  peakGflopPerS: Spread;
  /** Cost of one kernel call: a WebGPU dispatch, a reference function call; microseconds. */
  dispatchUs: Spread;
  /** Bytes the stream probes touch (read: the array; copy: source plus destination). */
  probeBytes: number;
  /** Whether times came from GPU timestamps. */
  gpuTimestamps: boolean;
}

/** How to repeat each probe. */
export interface ProbeOptions {
  /** Samples per probe. */
  reps: number;
  /** Minimum batch length, ms. */
  minBatchMs: number;
  /** Working set of the stream probes, bytes (a multiple of 16 MiB). */
  probeBytes: number;
}

async function repeat(run: BatchRunner, options: ProbeOptions): Promise<Timing> {
  const batch = await calibrateBatch(run, options.minBatchMs);
  const samples = [];
  for (let i = 0; i < options.reps; i++) samples.push(await run(batch));
  return toTiming(samples, batch);
}

/** Chains of multiply-adds per CPU probe iteration, and iterations per call. */
const CPU_CHAINS = 8;
const CPU_ITERATIONS = 1 << 20;

function cpuCompute(): number {
  // Independent chains so the multiply-add latency does not bound the loop.
  let a0 = 1, a1 = 1.1, a2 = 1.2, a3 = 1.3, a4 = 1.4, a5 = 1.5, a6 = 1.6, a7 = 1.7;
  const m = 0.999999, c = 1e-7;
  for (let i = 0; i < CPU_ITERATIONS; i++) {
    a0 = a0 * m + c;
    a1 = a1 * m + c;
    a2 = a2 * m + c;
    a3 = a3 * m + c;
    a4 = a4 * m + c;
    a5 = a5 * m + c;
    a6 = a6 * m + c;
    a7 = a7 * m + c;
  }
  return a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7;
}

function cpuSum(x: Float32Array): number {
  let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  const n = x.length;
  for (let i = 0; i < n; i += 4) {
    s0 += x[i];
    s1 += x[i + 1];
    s2 += x[i + 2];
    s3 += x[i + 3];
  }
  return s0 + s1 + s2 + s3;
}

/**
 * The CPU's roofline, one thread: a WebAssembly SIMD sum over `probeBytes` (the read stream at
 * machine speed: the memory ceiling), the same sum as a plain JavaScript loop (what code like
 * the reference's matvec can stream), `TypedArray.set` copying one half to the other,
 * independent multiply-add chains, and the cost of a 1x1 matvec call.
 *
 * @example
 * ```ts ignore
 * const cpu = await cpuRoofline({ reps: 5, minBatchMs: 100, probeBytes: 1 << 30 });
 * console.log(cpu.readGbPerS.median, "GB/s");
 * ```
 */
export async function cpuRoofline(options: ProbeOptions): Promise<Roofline> {
  const bytes = Math.min(options.probeBytes, 4 * 2 ** 30 - 2 ** 20);
  let stream: WasmStream | undefined = wasmStream(bytes);
  let data: Float32Array | undefined = new Float32Array(stream.memory.buffer, 0, bytes / 4);
  data.fill(0.25); // touches every page
  let sink = 0;
  const read = await repeat(cpuRunner(() => sink += stream!.sum(bytes)), options);
  const jsRead = await repeat(cpuRunner(() => sink += cpuSum(data!)), options);
  const half = bytes / 8;
  const src = data.subarray(0, half);
  const dst = data.subarray(half);
  const copy = await repeat(cpuRunner(() => dst.set(src)), options);
  data = undefined;
  stream = undefined;
  const compute = await repeat(cpuRunner(() => sink += cpuCompute()), options);
  const one = new Float32Array(1);
  const call = await repeat(cpuRunner(() => matvec(one, one, 1, 1)), options);
  if (Number.isNaN(sink)) throw new Error("unreachable");
  return {
    readGbPerS: invertSpread(bestMs(read), bytes / 1e6),
    scalarReadGbPerS: invertSpread(bestMs(jsRead), bytes / 1e6),
    copyGbPerS: invertSpread(bestMs(copy), bytes / 1e6),
    peakGflopPerS: invertSpread(bestMs(compute), (2 * CPU_CHAINS * CPU_ITERATIONS) / 1e6),
    dispatchUs: scaleSpread(bestMs(call), 1000),
    probeBytes: bytes,
    gpuTimestamps: false,
  };
}

const WG = 64;
/** Invocations of the GPU read and compute probes: 1024 workgroups of 64. */
const GPU_GROUPS = 1024;
const GPU_INVOCATIONS = GPU_GROUPS * WG;
/** vec4 multiply-adds per invocation of the compute probe, in 8 independent chains. */
const GPU_FMA_ITERATIONS = 4096;
const GPU_CHAINS = 8;

/**
 * The read stream in two orders, the faster of which is the read ceiling: grid-stride (each
 * step of the grid reads one contiguous span, the order a GPU's memory system favours) and
 * blocked (each workgroup streams its own contiguous chunk, lanes interleaved within it: the
 * order a CPU-backed adapter such as lavapipe, whose threads run whole workgroups, favours).
 * A kernel that reads rows the blocked way would otherwise beat a grid-stride "ceiling".
 */
const READ_WGSL = /* wgsl */ `
override WG: u32 = 64u;
override N_VEC4: u32;
// 0: grid-stride; otherwise the vec4s each workgroup streams (a multiple of WG).
override CHUNK: u32 = 0u;
@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> partial: array<f32>;

@compute @workgroup_size(WG)
fn main(
  @builtin(global_invocation_id) gid: vec3<u32>,
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
  @builtin(num_workgroups) nwg: vec3<u32>,
) {
  // Four independent accumulators: four loads in flight per step, and a quarter of the loop
  // overhead (on a CPU-backed adapter the loop, not memory, would otherwise set the rate).
  var s0 = vec4<f32>(0.0); var s1 = vec4<f32>(0.0); var s2 = vec4<f32>(0.0); var s3 = vec4<f32>(0.0);
  var step = nwg.x * WG;
  var i = gid.x;
  var end = N_VEC4;
  if (CHUNK != 0u) {
    step = WG;
    i = wid.x * CHUNK + lid;
    end = min((wid.x + 1u) * CHUNK, N_VEC4);
  }
  for (; i + 3u * step < end; i += 4u * step) {
    s0 += src[i]; s1 += src[i + step]; s2 += src[i + 2u * step]; s3 += src[i + 3u * step];
  }
  for (; i < end; i += step) { s0 += src[i]; }
  let sum = s0 + s1 + s2 + s3;
  partial[gid.x] = sum.x + sum.y + sum.z + sum.w;
}`;

const COMPUTE_WGSL = /* wgsl */ `
override WG: u32 = 64u;
override ITERATIONS: u32;
@group(0) @binding(0) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let m = vec4<f32>(0.999999);
  let c = vec4<f32>(1e-7);
  let seed = f32(gid.x) * 1e-6;
  var a0 = vec4<f32>(seed); var a1 = a0 + 0.1; var a2 = a0 + 0.2; var a3 = a0 + 0.3;
  var a4 = a0 + 0.4; var a5 = a0 + 0.5; var a6 = a0 + 0.6; var a7 = a0 + 0.7;
  for (var i = 0u; i < ITERATIONS; i++) {
    a0 = fma(a0, m, c); a1 = fma(a1, m, c); a2 = fma(a2, m, c); a3 = fma(a3, m, c);
    a4 = fma(a4, m, c); a5 = fma(a5, m, c); a6 = fma(a6, m, c); a7 = fma(a7, m, c);
  }
  let s = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7;
  out[gid.x] = s.x + s.y + s.z + s.w;
}`;

const EMPTY_WGSL = /* wgsl */ `
@group(0) @binding(0) var<storage, read_write> out: array<u32>;
@compute @workgroup_size(1)
fn main() { out[0] = out[0] + 1u; }`;

/** Dispatches per batch unit of the per-dispatch probe. */
const EMPTY_DISPATCHES = 64;

/**
 * The adapter's roofline: a vec4 sum reduction over `probeBytes` (one dispatch per binding-
 * sized range), the copy kernel over two halves, vec4 multiply-add chains, and the cost of a
 * one-invocation dispatch. GPU time from timestamp queries where the adapter has them.
 *
 * @example
 * ```ts ignore
 * const webgpu = await gpuRoofline(await requestGpu(), { reps: 5, minBatchMs: 100, probeBytes: 1 << 30 });
 * ```
 */
export async function gpuRoofline(gpu: Gpu, options: ProbeOptions): Promise<Roofline> {
  const timer = TimestampTimer.supported(gpu) ? new TimestampTimer(gpu) : undefined;
  const maxBinding = Math.min(gpu.limits.maxStorageBufferBindingSize, 128 << 20);
  const rangeBytes = Math.floor(maxBinding / 16) * 16;
  const half = options.probeBytes / 2;
  // Two buffers: a dispatch may not read and write one buffer through two bindings.
  const halves = [gpu.createBuffer(half, "probe a"), gpu.createBuffer(half, "probe b")];
  const partial = gpu.createBuffer(GPU_INVOCATIONS * 4, "probe partial sums");
  try {
    const ranges: { offset: number; size: number }[] = [];
    for (let at = 0; at < half; at += rangeBytes) {
      ranges.push({ offset: at, size: Math.min(rangeBytes, half - at) });
    }
    // Copy first: it also writes every page of the half the read probe then streams.
    const copies = await Promise.all(
      ranges.map(async (r) =>
        (await copyKernel(gpu, r.size / 4)).bind({
          src: { buffer: halves[0], ...r },
          dst: { buffer: halves[1], ...r },
        })
      ),
    );
    const copy = await repeat(
      gpuRunner(gpu, timer, (units) => submitUnits(gpu, copies.flat(), units)),
      options,
    );
    const readIn = (order: "grid-stride" | "blocked") =>
      Promise.all(
        halves.flatMap((buffer) =>
          ranges.map(async (r) => {
            const nVec4 = r.size / 16;
            const chunk = order === "blocked"
              ? Math.ceil(Math.ceil(nVec4 / GPU_GROUPS) / WG) * WG
              : 0;
            const kernel = await compileKernel(
              gpu,
              `read probe (${order})`,
              READ_WGSL,
              { WG, N_VEC4: nVec4, CHUNK: chunk },
              ["src", "partial"],
              [GPU_GROUPS],
            );
            return kernel.bind({ src: { buffer, ...r }, partial });
          })
        ),
      );
    const reads = [];
    for (const order of ["grid-stride", "blocked"] as const) {
      const kernels = (await readIn(order)).flat();
      reads.push(
        bestMs(
          await repeat(gpuRunner(gpu, timer, (units) => submitUnits(gpu, kernels, units)), options),
        ),
      );
    }
    // the faster order is the ceiling
    const read = reads[0].median <= reads[1].median ? reads[0] : reads[1];
    const fma = (await compileKernel(
      gpu,
      "compute probe",
      COMPUTE_WGSL,
      { WG, ITERATIONS: GPU_FMA_ITERATIONS },
      ["out"],
      [GPU_GROUPS],
    )).bind({ out: partial });
    const compute = await repeat(
      gpuRunner(gpu, timer, (units) => submitUnits(gpu, fma, units)),
      options,
    );
    const empty = (await compileKernel(gpu, "empty probe", EMPTY_WGSL, {}, ["out"], [1]))
      .bind({ out: partial });
    const dispatch = await repeat(
      gpuRunner(
        gpu,
        timer,
        (units) => submitUnits(gpu, new Array(EMPTY_DISPATCHES).fill(empty).flat(), units),
      ),
      options,
    );
    const flops = GPU_INVOCATIONS * GPU_FMA_ITERATIONS * GPU_CHAINS * 8; // vec4 fma: 8 FLOPs
    return {
      readGbPerS: invertSpread(read, options.probeBytes / 1e6),
      copyGbPerS: invertSpread(bestMs(copy), options.probeBytes / 1e6),
      peakGflopPerS: invertSpread(bestMs(compute), flops / 1e6),
      dispatchUs: scaleSpread(bestMs(dispatch), 1000 / EMPTY_DISPATCHES),
      probeBytes: options.probeBytes,
      gpuTimestamps: timer !== undefined,
    };
  } finally {
    for (const b of halves) b.destroy();
    partial.destroy();
    timer?.destroy();
  }
}
