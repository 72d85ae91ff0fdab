/**
 * The CPU's ceilings on every core: one Worker per core runs hand-assembled WebAssembly SIMD
 * kernels over its own slice of one shared memory, all started together and timed by the wall
 * clock until the last finishes. Read (a sum), copy and multiply-add peaks, and a read sweep
 * over working sets from 1 MiB up to 2 GiB (capped by free memory) that finds the cache knee.
 * No program on this machine streams or computes faster, so these are what a peer or a cell is
 * checked against.
 *
 * @module
 */
import { summarize } from "../gpu/timing.ts";
import { type CacheKnee, findCacheKnee, readCeilingAt, type SweepPoint } from "./cache_knee.ts";
import type { CeilingJob } from "./_ceiling_worker.ts";
import { FMA_CHAINS, RELAXED_SIMD } from "./_wasm_kernels.ts";
import type { Spread } from "../gpu/timing.ts";

/** The CPU's all-core ceilings. */
export interface CpuCeilings {
  /** Workers that ran (one per core). */
  threads: number;
  /** Read bandwidth at the sweep's largest working set (main memory), GB/s. */
  readGbPerS: Spread;
  /** Copy bandwidth (bytes read plus written) over the same working set, GB/s. */
  copyGbPerS: Spread;
  /**
   * Multiply-add peak (2 FLOPs a lane), GFLOP/s: f32x4 fused multiply-adds where the runtime has
   * relaxed SIMD, else a multiply then an add. 128-bit vectors: native code with 256- or 512-bit
   * vectors can exceed it, so peers are held to the read ceilings only.
   */
  fmaGflopPerS: Spread;
  /** Whether the multiply-add probe was fused (relaxed SIMD). */
  fmaFused: boolean;
  /** The read sweep, by working set. */
  sweep: SweepPoint[];
  /** The knee the sweep shows. */
  knee: CacheKnee;
  /** Seconds the probes took. */
  elapsedS: number;
}

/** Options of {@linkcode measureCpuCeilings}. */
export interface CeilingOptions {
  /** Workers (default: the logical cores). */
  threads?: number;
  /** Samples per point (default 3). */
  reps?: number;
  /** Minimum milliseconds per sample (default 30). */
  minMs?: number;
  /** Largest working set of the sweep, bytes (default 2 GiB, quick 512 MiB; capped by free memory). */
  maxBytes?: number;
  /** Fewer sweep points (1, 4, 16, 64, 256, 512 MiB): a quick run. */
  quick?: boolean;
}

const MIB = 2 ** 20;
const PAGE = 65536;

/**
 * Sweep sizes: powers of two from 1 MiB to `maxBytes` (quick: powers of four, plus `maxBytes`).
 *
 * @example
 * ```ts
 * import { sweepSizes } from "./ceilings.ts";
 * const mib = sweepSizes(64 * 2 ** 20, false).map((b) => b / 2 ** 20);
 * if (mib.join() !== "1,2,4,8,16,32,64") throw new Error(mib.join());
 * ```
 */
export function sweepSizes(maxBytes: number, quick: boolean): number[] {
  const sizes: number[] = [];
  for (let b = MIB; b <= maxBytes; b *= quick ? 4 : 2) sizes.push(b);
  if (sizes.at(-1) !== maxBytes && maxBytes > MIB) sizes.push(maxBytes);
  return sizes;
}

/** The largest sweep size this machine can hold: 2 GiB, at most a quarter of free memory. */
function sweepLimit(requested: number): number {
  let available = Infinity;
  try {
    available = Deno.systemMemoryInfo().available;
  } catch { /* needs --allow-sys=systemMemoryInfo; then the request stands */ }
  const limit = Math.min(requested, 2 * 2 ** 30, available / 4);
  return Math.max(MIB, 2 ** Math.floor(Math.log2(limit)));
}

/** Workers over one shared memory, each answering the jobs it is sent. */
class Pool {
  readonly workers: Worker[];
  constructor(threads: number) {
    this.workers = Array.from(
      { length: threads },
      () => new Worker(new URL("./_ceiling_worker.ts", import.meta.url), { type: "module" }),
    );
  }
  /** Runs one job per worker (the same for all, or made per worker); wall ms until all answer. */
  async run(job: (worker: number) => CeilingJob): Promise<number> {
    const start = performance.now();
    await Promise.all(this.workers.map((w, i) =>
      new Promise<void>((resolve, reject) => {
        w.onmessage = () => resolve();
        w.onerror = (e) => {
          e.preventDefault();
          reject(new Error(`ceiling worker ${i}: ${e.message}`));
        };
        w.postMessage(job(i));
      })
    ));
    return performance.now() - start;
  }
  close(): void {
    for (const w of this.workers) w.terminate();
  }
}

/** Samples of a job whose repeats are calibrated to last at least `minMs`. */
async function timed(
  pool: Pool,
  reps: number,
  minMs: number,
  job: (repeats: number, worker: number) => CeilingJob,
): Promise<number[]> {
  let repeats = 1;
  for (;;) {
    const ms = await pool.run((w) => job(repeats, w));
    if (ms >= minMs || repeats >= 1 << 20) break;
    repeats = Math.min(
      1 << 20,
      Math.ceil(repeats * Math.max(2, (minMs * 1.2) / Math.max(ms, 0.01))),
    );
  }
  const samples: number[] = [];
  for (let r = 0; r < reps; r++) samples.push((await pool.run((w) => job(repeats, w))) / repeats);
  return samples;
}

/** GB/s from per-pass milliseconds: min and max swap. */
function rate(msPerPass: number[], bytes: number): Spread {
  return summarize(msPerPass.map((ms) => bytes / ms / 1e6));
}

/**
 * Measures the all-core ceilings and the cache sweep (a few seconds; about one in `quick`).
 *
 * @example
 * ```ts ignore
 * const cpu = await measureCpuCeilings({ quick: true });
 * console.log(cpu.readGbPerS.median, "GB/s on", cpu.threads, "cores; knee", cpu.knee.kneeBytes);
 * ```
 */
export async function measureCpuCeilings(options: CeilingOptions = {}): Promise<CpuCeilings> {
  const started = performance.now();
  const threads = options.threads ?? navigator.hardwareConcurrency ?? 1;
  const reps = options.reps ?? 3;
  const minMs = options.minMs ?? 25;
  const maxBytes = sweepLimit(options.maxBytes ?? (options.quick ? 512 * MIB : 2 * 2 ** 30));
  const sizes = sweepSizes(maxBytes, options.quick ?? false);
  const maxPages = Math.ceil(maxBytes / PAGE) + 1;
  const memory = new WebAssembly.Memory({ initial: maxPages, maximum: maxPages, shared: true });
  // Every page written, so that reads stream real memory rather than the zero page.
  new Float32Array(memory.buffer).fill(0.25);
  const pool = new Pool(threads);
  try {
    await pool.run(() => ({ op: "init", memory, maxPages }));
    // Each worker's slice: a multiple of 64 bytes, one after another.
    const slice = (bytes: number) => Math.floor(bytes / threads / 64) * 64;
    const sweep: SweepPoint[] = [];
    for (const bytes of sizes) {
      const each = slice(bytes);
      const samples = await timed(pool, reps, minMs, (repeats, w) => ({
        op: "read",
        ptr: w * each,
        bytes: each,
        repeats,
      }));
      sweep.push({ bytes, readGbPerS: rate(samples, each * threads) });
    }
    // Copy: the first half of the largest working set onto the second.
    const half = slice(maxBytes / 2);
    const copy = await timed(pool, reps, minMs, (repeats, w) => ({
      op: "copy",
      ptr: w * half,
      dst: maxBytes / 2 + w * half,
      bytes: half,
      repeats,
    }));
    const iterations = 1 << 16;
    const fma = await timed(pool, reps, minMs, (repeats) => ({ op: "fma", iterations, repeats }));
    const flops = threads * iterations * FMA_CHAINS * 4 * 2;
    return {
      threads,
      readGbPerS: sweep.at(-1)!.readGbPerS,
      copyGbPerS: rate(copy, 2 * half * threads),
      fmaGflopPerS: rate(fma, flops),
      fmaFused: RELAXED_SIMD,
      sweep,
      knee: findCacheKnee(sweep),
      elapsedS: (performance.now() - started) / 1000,
    };
  } finally {
    pool.close();
  }
}

/**
 * The bandwidth no program streaming a working set of `bytes` beats: the sweep's read ceiling
 * at that size, or the copy's (bytes read plus written, over the largest working set) where
 * that is higher, since a cell's bytes also count writes.
 *
 * @example
 * ```ts
 * import { streamCeilingAt } from "./ceilings.ts";
 * const s = (x: number) => ({ median: x, min: x, max: x, q1: x, q3: x, n: 1 });
 * const ceilings = { copyGbPerS: s(13), sweep: [{ bytes: 2 ** 20, readGbPerS: s(40) }, { bytes: 2 ** 31, readGbPerS: s(8) }] };
 * if (streamCeilingAt(ceilings, 2 ** 31) !== 13 || streamCeilingAt(ceilings, 2 ** 20) !== 40) throw new Error("wrong");
 * ```
 */
export function streamCeilingAt(
  ceilings: Pick<CpuCeilings, "sweep" | "copyGbPerS">,
  bytes: number,
): number {
  return Math.max(readCeilingAt(ceilings.sweep, bytes), ceilings.copyGbPerS.max);
}
