/**
 * The calibrated time model: a decode step priced by kernel class at rates measured on this
 * machine, not by one peak. Matrix work (matvec at one row, matmul past it) at the kernel
 * table's achieved matvec GFLOP/s, attention at its attention kernel's GFLOP/s, every kernel
 * call at the roofline's per-dispatch cost (WebGPU: the recorded plan's real dispatches per
 * token), and every GPU round trip (submit plus read-back, probed here) at its wall cost. Set
 * against each cell's wall time; where it misses, the terms it lacks are named in the report.
 *
 * @module
 */
import type { Gpu } from "../gpu/device.ts";
import { summarize } from "../gpu/timing.ts";
import { headDim, type LlamaConfig } from "../model/config.ts";
import type { Backend, KernelResult } from "./measure.ts";
import type { DecoderCell } from "./matrix.ts";
import type { Roofline } from "./probes.ts";
import { matmul } from "../reference/matmul.ts";
import { MATMUL_PAIR } from "../gpu/matmul/pairs.ts";

/** One backend's parameters, each measured. */
export interface TimeModelParams {
  /** Matrix-vector GFLOP/s: the kernel table's f32 matvec median (the reference's is latency-bound). */
  matvecGflopPerS: number;
  /**
   * By shape, where probed: the matrix rate over a stream of that model's matrices (its whole
   * working set, so cache or memory as the decode meets them); preferred over `matvecGflopPerS`.
   */
  matrixGflopPerSByShape: Record<string, number>;
  /**
   * Matrix GFLOP/s over many rows (the tiled matmul on WebGPU, the row loop on the CPU): the
   * median of {@linkcode matmulRowsPair}'s measurements, which price passes of more than one row
   * (recompute, WebGPU's chunked prefill); NaN where not measured (then the matvec rate).
   */
  matmulGflopPerS: number;
  /** Attention GFLOP/s: the kernel table's f32 decode-attention median. */
  attentionGflopPerS: number;
  /** Cost of one kernel call, µs (the roofline's per-dispatch probe). */
  dispatchUs: number;
  /** Wall cost of one GPU round trip (an empty submit then a 4-byte read-back), µs; 0 on the CPU. */
  syncUs: number;
  /** Dispatches per decoded token of the recorded WebGPU plan, by shape (where known). */
  recordedDispatchesPerToken: Record<string, number>;
  /**
   * CPU only: the small kernels' kernel-table cost, µs per call at `elements` (the norm, the
   * residual add, the SwiGLU product, RoPE), scaled to a model's sizes in the prediction beyond
   * the per-call cost; empty on WebGPU, whose recorded plan fuses them and whose dispatches are
   * priced on their own.
   */
  smallKernels: Partial<Record<SmallKernel, { us: number; elements: number }>>;
  /** Load average (1 min) over the cores when the run started and ended: contention. */
  loadPerCore?: [number, number];
}

/** The small kernels of a layer the CPU model prices from the kernel table. */
export type SmallKernel = "rmsNorm" | "add" | "siluMul" | "rope";

/** Bytes the kernel table counts per element of each small kernel (inputs plus output). */
const SMALL_BYTES_PER_ELEMENT: Record<SmallKernel, number> = {
  rmsNorm: 12, // x, weight, out
  add: 12, // a, b, out
  siluMul: 12, // gate, up, out
  rope: 8, // in place: read and write
};

/**
 * GPU round trips of one `generate` call: the prompt's submit and `finish`, then the chunk's
 * read-back of its tokens and of the non-finite flag.
 */
export const ROUND_TRIPS_PER_GENERATE = 3;

/** One cell's prediction, by term. */
export interface CellPrediction {
  /** Shape, backend, cache, attention, phase and context, readable. */
  cell: string;
  /** Backend. */
  backend: Backend;
  /** Phase. */
  phase: "prefill" | "decode";
  /** Measured wall ms per token (median). */
  measuredMs: number;
  /** The model's ms per token. */
  predictedMs: number;
  /** Each term's ms per token. */
  terms: { matrix: number; attention: number; small: number; dispatch: number; sync: number };
}

/** The model: each backend's parameters and every cell's prediction. */
export interface TimeModel {
  /** Parameters by backend. */
  params: Partial<Record<Backend, TimeModelParams>>;
  /** Predictions. */
  cells: CellPrediction[];
}

/** A small kernel's kernel-table µs per call and elements (its first shape), if measured. */
function smallKernel(
  kernels: readonly KernelResult[],
  kernel: SmallKernel,
): { us: number; elements: number } | undefined {
  const k = kernels.find((k) => k.backend === "cpu" && k.kernel === kernel);
  return k
    ? { us: 1000 * k.timing.wallMs.median, elements: k.bytes / SMALL_BYTES_PER_ELEMENT[kernel] }
    : undefined;
}

/** The median of the kernel table's GFLOP/s for a kernel on a backend (NaN when absent). */
function kernelRate(kernels: readonly KernelResult[], backend: Backend, kernel: string): number {
  const rates = kernels
    .filter((k) => k.backend === backend && k.kernel === kernel)
    .map((k) => k.gflopPerS.median);
  return rates.length ? summarize(rates).median : NaN;
}

/**
 * The parameters from the probes: the kernel table, the rooflines, the recorded plans' dispatch
 * counts and a measured round trip.
 *
 * @example
 * ```ts
 * import { timeModelParams } from "./time_model.ts";
 * const params = timeModelParams([], {}, {}, 0);
 * if (Object.keys(params).length !== 0) throw new Error("no roofline, no parameters");
 * ```
 */
export function timeModelParams(
  kernels: readonly KernelResult[],
  rooflines: Partial<Record<Backend, Roofline>>,
  recordedDispatchesPerToken: Record<string, number>,
  syncUs: number,
  cpuMatrixGflopPerSByShape: Record<string, number> = {},
  loadPerCore?: [number, number],
): Partial<Record<Backend, TimeModelParams>> {
  const out: Partial<Record<Backend, TimeModelParams>> = {};
  for (const [backend, roofline] of Object.entries(rooflines) as [Backend, Roofline][]) {
    out[backend] = {
      matvecGflopPerS: kernelRate(kernels, backend, "matvec"),
      matrixGflopPerSByShape: backend === "cpu" ? cpuMatrixGflopPerSByShape : {},
      matmulGflopPerS: kernelRate(kernels, backend, "matmul"),
      attentionGflopPerS: kernelRate(kernels, backend, "attention decode"),
      dispatchUs: roofline.dispatchUs.median,
      syncUs: backend === "webgpu" ? syncUs : 0,
      recordedDispatchesPerToken: backend === "webgpu" ? recordedDispatchesPerToken : {},
      smallKernels: backend === "cpu"
        ? Object.fromEntries(
          (["rmsNorm", "add", "siluMul", "rope"] as const).flatMap((name) => {
            const k = smallKernel(kernels, name);
            return k ? [[name, k]] : [];
          }),
        )
        : {},
      ...(loadPerCore ? { loadPerCore } : {}),
    };
  }
  return out;
}

/**
 * Predicts a cell's ms per token from `params` and the shape's `config` (with the cell's KV
 * heads): matrix FLOPs (everything but attention) at the matvec rate, attention FLOPs at the
 * attention rate, the small kernels scaled from the kernel table (CPU), dispatches at the
 * per-dispatch cost, and on WebGPU {@linkcode ROUND_TRIPS_PER_GENERATE} round trips per decode
 * sample (one `generate` call over the cell's timed positions; one per prefill pass otherwise).
 *
 * @example
 * ```ts ignore
 * const p = predictCell(cell, config, params);
 * console.log(p.predictedMs, p.terms);
 * ```
 */
export function predictCell(
  cell: DecoderCell,
  config: LlamaConfig,
  params: TimeModelParams,
): CellPrediction {
  const hd = headDim(config);
  const count = cell.positions[1] - cell.positions[0] + 1;
  // Keys each timed token's query scores against, as the cell ran it.
  const attended = cell.cache === "recompute"
    ? Array.from({ length: count }, (_, i) => {
      const end = cell.positions[0] + i + 1;
      return (end * (end + 1)) / 2;
    }).reduce((a, b) => a + b, 0) / count
    : (cell.positions[0] + cell.positions[1]) / 2 + 1;
  const attentionFlops = config.nLayers * config.nHeads * hd * 4 * attended;
  const matrixFlops = Math.max(0, cell.flopsPerToken - attentionFlops);
  const recorded = params.recordedDispatchesPerToken[cell.shape];
  const dispatches = cell.backend === "webgpu" && cell.phase === "decode" &&
      cell.cache === "kv-cache" && recorded
    ? recorded
    : cell.dispatchesPerToken;
  // Rows each timed token's passes run the small kernels over (recompute: its whole prefix).
  const rowsPerToken = cell.cache === "recompute"
    ? (cell.positions[0] + cell.positions[1]) / 2 + 1
    : 1;
  const syncsPerToken = cell.backend !== "webgpu"
    ? 0
    : cell.phase === "decode"
    ? ROUND_TRIPS_PER_GENERATE / count
    : 1 / Math.max(1, count);
  const terms = {
    matrix: matrixFlops / (matrixRate(cell, params) * 1e6),
    attention: attentionFlops / (params.attentionGflopPerS * 1e6),
    small: config.nLayers * smallKernelsUs(config, params, rowsPerToken) / 1000,
    dispatch: dispatches * params.dispatchUs / 1000,
    sync: syncsPerToken * params.syncUs / 1000,
  };
  return {
    cell:
      `${cell.shape} ${cell.attention} ${cell.backend} ${cell.cache} ${cell.phase} ctx ${cell.context}`,
    backend: cell.backend,
    phase: cell.phase,
    measuredMs: cell.timing.wallMs.median,
    predictedMs: terms.matrix + terms.attention + terms.small + terms.dispatch + terms.sync,
    terms,
  };
}

/** The matrix rate a cell's passes run at: many rows (recompute, WebGPU prefill) or one. */
function matrixRate(cell: DecoderCell, params: TimeModelParams): number {
  const manyRows = cell.cache === "recompute" ||
    (cell.phase === "prefill" && cell.execution !== "sequential");
  if (manyRows && params.matmulGflopPerS > 0) return params.matmulGflopPerS;
  return params.matrixGflopPerSByShape[cell.shape] ?? params.matvecGflopPerS;
}

/**
 * The matmul registry entry at each model's feed-forward shape over `rows` rows: the kernel
 * table measures it as "matmul" beside the matvecs, and the time model prices passes of many
 * rows at its rate (on WebGPU the tiled kernel, which reads each weight once per tile of rows,
 * not once per row).
 *
 * @example
 * ```ts
 * import { matmulRowsPair } from "./time_model.ts";
 * import { preset } from "../model/config.ts";
 * const pair = matmulRowsPair([preset("stories15M")], 64);
 * if (pair.bench.full[0].rows !== 64 || pair.bench.full[0].outDim !== 768) throw new Error("wrong");
 * ```
 */
export function matmulRowsPair(
  configs: readonly LlamaConfig[],
  rows: number,
): typeof MATMUL_PAIR {
  const shapes = [...new Map(configs.map((c) => [`${c.hiddenDim}x${c.dim}`, c])).values()]
    .map((c) => ({ rows, outDim: c.hiddenDim, inDim: c.dim }));
  return { ...MATMUL_PAIR, bench: { quick: shapes, full: shapes } };
}

/**
 * One layer's small kernels on `rows` rows, µs: each kernel's per-call cost plus its work beyond
 * that scaled from the kernel table's size to the model's (2 norms and 2 adds of `dim`, one
 * SwiGLU product of `hiddenDim`, RoPE on the queries and the keys).
 */
function smallKernelsUs(config: LlamaConfig, params: TimeModelParams, rows: number): number {
  const hd = headDim(config);
  const calls: [SmallKernel, number][] = [
    ["rmsNorm", config.dim],
    ["rmsNorm", config.dim],
    ["add", config.dim],
    ["add", config.dim],
    ["siluMul", config.hiddenDim],
    ["rope", config.nHeads * hd],
    ["rope", config.nKvHeads * hd],
  ];
  let us = 0;
  for (const [name, elements] of calls) {
    const k = params.smallKernels[name];
    if (!k) continue;
    us += params.dispatchUs + Math.max(0, k.us - params.dispatchUs) * rows * elements / k.elements;
  }
  return us;
}

/**
 * The wall cost of one GPU round trip: an empty submit followed by a 4-byte read-back, the
 * median of `reps` after one warm-up; µs.
 *
 * @example
 * ```ts ignore
 * console.log(await measureSyncUs(await requestGpu(), 20), "µs per round trip");
 * ```
 */
export async function measureSyncUs(gpu: Gpu, reps: number): Promise<number> {
  const buffer = gpu.createBuffer(16, "sync probe");
  try {
    const samples: number[] = [];
    for (let i = 0; i <= reps; i++) {
      const start = performance.now();
      await gpu.submit([], "sync probe");
      await gpu.read(buffer, 4);
      if (i > 0) samples.push((performance.now() - start) * 1000);
    }
    return summarize(samples).median;
  } finally {
    buffer.destroy();
  }
}

/**
 * The CPU reference's matrix rate over one model's matrices: every layer's projections and the
 * classifier, each a separate array as the decoder holds them, multiplied by a vector in turn
 * (`matmul` with one row, as `storedMatmul` runs f32 weights); the median GFLOP/s of `reps`
 * passes after a warm-up. The whole working set is streamed, so cache effects are the
 * decoder's own. Values are a constant: the rate does not depend on them.
 *
 * @example
 * ```ts
 * import { cpuMatrixRate } from "./time_model.ts";
 * import { makeConfig } from "../model/config.ts";
 * const config = makeConfig({ dim: 64, hiddenDim: 128, nLayers: 1, nHeads: 4, nKvHeads: 4, vocabSize: 32, maxSeqLen: 8 });
 * if (!(cpuMatrixRate(config, 2) > 0)) throw new Error("a positive rate");
 * ```
 */
export function cpuMatrixRate(config: LlamaConfig, reps: number): number {
  const { dim, hiddenDim, nLayers, vocabSize } = config;
  const hd = headDim(config);
  const qDim = config.nHeads * hd, kvDim = config.nKvHeads * hd;
  const shapes: [number, number][] = [];
  for (let l = 0; l < nLayers; l++) {
    shapes.push([qDim, dim], [kvDim, dim], [kvDim, dim], [dim, qDim]);
    shapes.push([hiddenDim, dim], [hiddenDim, dim], [dim, hiddenDim]);
  }
  shapes.push([vocabSize, dim]);
  const matrices = shapes.map(([rows, cols]) => new Float32Array(rows * cols).fill(0.01));
  const x = new Float32Array(Math.max(dim, hiddenDim, qDim)).fill(0.5);
  const flops = shapes.reduce((n, [rows, cols]) => n + 2 * rows * cols, 0);
  const samples: number[] = [];
  let sink = 0;
  for (let r = 0; r <= reps; r++) {
    const start = performance.now();
    for (let i = 0; i < shapes.length; i++) {
      const [rows, cols] = shapes[i];
      sink += matmul(matrices[i], x.subarray(0, cols), 1, rows, cols)[0];
    }
    if (r > 0) samples.push(flops / ((performance.now() - start) * 1e6));
  }
  if (Number.isNaN(sink)) throw new Error("unreachable");
  return summarize(samples).median;
}

/**
 * The 1-minute load average over the logical cores (NaN where the system does not say): above
 * about 1, other processes share the cores and every timing is contended.
 *
 * @example
 * ```ts ignore
 * console.log(loadPerCore()); // 0.1 on an idle machine
 * ```
 */
export function loadPerCore(): number {
  try {
    return Deno.loadavg()[0] / (navigator.hardwareConcurrency || 1);
  } catch {
    return NaN; // needs --allow-sys
  }
}
