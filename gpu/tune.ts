/**
 * Tuning by measurement: for every kernel shape a model needs, each applicable variant is
 * checked against the reference on this adapter, then timed; the fastest correct one is
 * chosen. The result is a `Tuning` (see `gpu/tuning.ts`) plus every measurement, for reports.
 *
 * @module
 */
import { attentionKernel } from "./attention/attention.ts";
import { tiledAttentionKernel } from "./attention/tiled.ts";
import type { Dispatch, Gpu } from "./device.ts";
import type { KernelPair, KernelVariant } from "./pair.ts";
import { ATTENTION_PAIR, TILED_ATTENTION_VARIANT } from "./attention/pairs.ts";
import { judgeCase, pairCases } from "./conformance.ts";
import {
  PACKED_PROJECTION_PAIR,
  type PackedProjectionInputs,
  type PackedProjectionPairShape,
  PROJECTION_PAIR,
  type ProjectionPairShape,
} from "./matmul/pairs.ts";
import { packedProjectionVariant } from "./matmul/packed_projection.ts";
import type { GpuWeightFormat } from "./matmul/quant.ts";
import { createState } from "./state.ts";
import {
  PAIR,
  PROJECTION_VARIANTS,
  type ProjectionEpilogue,
  projectionKernel,
} from "./matmul/projection.ts";
import { attentionKey, projectionKey, type Tuning } from "./tuning.ts";
import { Rng } from "../reference/random.ts";
import type { RopeLayout } from "../reference/rope.ts";
import { calibrateBatch, gpuRunner, submitUnits, toTiming } from "./timing.ts";

/**
 * The model dimensions tuning needs (a `LlamaConfig` from `model/` has them all): the kernel
 * shapes of one decoder layer, the classifier and the context.
 */
export interface TuneShape {
  /** Model width. */
  readonly dim: number;
  /** SwiGLU hidden width. */
  readonly hiddenDim: number;
  /** Query heads. */
  readonly nHeads: number;
  /** Key/value heads. */
  readonly nKvHeads: number;
  /** Vocabulary (the classifier's rows). */
  readonly vocabSize: number;
  /** Longest context. */
  readonly maxSeqLen: number;
  /** RoPE pairing of the fused QKV projection. */
  readonly ropeLayout: RopeLayout;
}

/** Width of one attention head. */
const headDim = (shape: TuneShape): number => shape.dim / shape.nHeads;

/** One variant measured at one kernel shape. */
export interface TuneMeasurement {
  /** The tuning key (role and shape). */
  key: string;
  /** The variant. */
  variant: string;
  /** Whether it matched the reference. */
  passed: boolean;
  /** Median milliseconds per call (NaN when it failed). */
  ms: number;
  /** Bytes read and written per call / time. */
  gbPerS: number;
  /** Floating-point operations per call / time. */
  gflopPerS: number;
  /** Why it failed, if it did. */
  error?: string;
}

/** Options of {@linkcode tune}. */
export interface TuneOptions {
  /**
   * Fewer candidates (see `QUICK_CANDIDATES`) and shorter samples (3 of 40 ms instead of 7 of
   * 100 ms): the bench's `--quick`.
   */
  quick?: boolean;
  /** Samples per measurement (overrides `quick`'s 3 and the default 7). */
  samples?: number;
  /** Shortest sample in milliseconds (overrides `quick`'s 40 and the default 100). */
  minSampleMs?: number;
  /** Prefill chunk (rows of a prefill pass); 64 or maxSeqLen if smaller. */
  prefillRows?: number;
  /**
   * Milliseconds per call of `dispatches` (the bench passes its GPU-timestamp timer); by default
   * wall clock over batches (see `time`).
   */
  timer?: (dispatches: Dispatch[]) => Promise<number>;
  /**
   * Also tune the packed projections for weights in this format (`--weights`): their keys carry
   * the format, their candidates are `PACKED_PROJECTION_VARIANTS`.
   */
  weights?: GpuWeightFormat;
  /** Which candidates to measure (all by default). */
  filter?: (key: string, variant: string) => boolean;
  /** Called after each measurement. */
  onMeasurement?: (m: TuneMeasurement) => void;
}

/** What {@linkcode tune} returns. */
export interface TuneResult {
  /** The choices, keyed by adapter and Deno version. */
  tuning: Tuning;
  /** Every measurement. */
  measurements: TuneMeasurement[];
}

/**
 * What `quick` measures: every decode projection layout, prefill projections as `row` or
 * `tiled` only (a workgroup per row of a 64-token matmul can take seconds on a software
 * adapter), and 1, 4 or 16 attention splits beside the kernel's own choice.
 */
const QUICK_CANDIDATES =
  /^(projection \S+ decode .*|projection \S+ prefill \S+ (row|tiled)|attention decode .* (split auto|split1|split4|split16)|attention prefill .*)$/;

/** A kernel shape to tune: its candidates as runnable recipes. */
interface Job {
  key: string;
  bytes: number;
  flops: number;
  candidates: { variant: string; build(): Promise<Candidate> }[];
}

/** A compiled candidate: dispatches to time and a correctness check. */
interface Candidate {
  dispatches: Dispatch[];
  check(): Promise<string | undefined>;
}

/** Judges one variant of a registry entry at one shape with the conformance harness. */
async function conformance<S, I>(
  gpu: Gpu,
  pair: KernelPair<S, I>,
  variant: KernelVariant<S, I>,
  shape: S,
): Promise<string | undefined> {
  const [testCase] = pairCases({ ...pair, conformance: [shape], variants: [variant] });
  const result = await judgeCase(gpu, testCase);
  if (result.passed) return undefined;
  return result.error ?? result.skipped ??
    (result.guardsIntact
      ? `NMSE ${result.nmse.toExponential(2)}, max abs error ${result.maxAbsError.toExponential(2)}`
      : "wrote outside its output");
}

function projectionJob(
  gpu: Gpu,
  epilogue: ProjectionEpilogue,
  norm: boolean,
  rows: number,
  units: number,
  inDim: number,
): Job {
  const pair = epilogue.kind === "siluMul" || epilogue.kind === "qkvRope" ? 2 : 1;
  const key = projectionKey(epilogue.kind, norm, rows, units, inDim);
  const outputs = epilogue.kind === "qkvRope" ? 2 * units : units;
  // the harness checks at most two token tiles: the kernel differs only in its row count
  const checkRows = Math.min(rows, 17);
  const checkShape: ProjectionPairShape = epilogue.kind === "qkvRope"
    ? {
      kind: "qkvRope",
      rows: checkRows,
      inDim,
      outDim: epilogue.nHeads * epilogue.headDim,
      norm,
      attention: {
        nHeads: epilogue.nHeads,
        nKvHeads: epilogue.nKvHeads,
        headDim: epilogue.headDim,
        pos: 0,
        maxSeqLen: checkRows,
        layout: epilogue.layout ?? "interleaved",
      },
    }
    : { kind: epilogue.kind, rows: checkRows, inDim, outDim: units, norm };
  return {
    key,
    bytes: 4 * (pair * units * inDim + rows * inDim +
      rows * outputs * (epilogue.kind === "add" ? 2 : 1)),
    flops: 2 * rows * pair * units * inDim,
    candidates: PROJECTION_VARIANTS.filter((v) =>
      v.applies({ rows, units, inDim }, gpu) &&
      v.features.every((f) => gpu.device.features.has(f))
    )
      .map((variant) => ({
        variant: variant.name,
        build: async () => {
          const kernel = await projectionKernel(
            gpu,
            { rows, units, inDim },
            epilogue,
            variant,
            { norm },
          );
          const rng = new Rng(units * 7 + inDim + rows);
          const w = gpu.upload(rng.uniformArray(pair * units * inDim));
          const x = gpu.upload(rng.uniformArray(rows * inDim));
          let bindings: Record<string, GPUBuffer>;
          if (epilogue.kind === "qkvRope") {
            const kvDim = epilogue.nKvHeads * epilogue.headDim;
            bindings = {
              q: gpu.createBuffer(rows * epilogue.nHeads * epilogue.headDim * 4),
              keyCache: gpu.createBuffer(epilogue.maxSeqLen * kvDim * 4),
              valueCache: gpu.createBuffer(epilogue.maxSeqLen * kvDim * 4),
              table: gpu.createBuffer(epilogue.maxSeqLen * epilogue.headDim * 4),
              state: createState(gpu),
            };
          } else {
            bindings = { out: gpu.createBuffer(rows * units * 4) };
          }
          const entry = PROJECTION_PAIR.variants.find((v) => v.name === variant.name)!;
          return {
            dispatches: kernel.bind({ w, x, ...bindings } as never),
            check: () => conformance(gpu, PROJECTION_PAIR, entry, checkShape),
          };
        },
      })),
  };
}

function packedProjectionJob(
  gpu: Gpu,
  format: GpuWeightFormat,
  epilogue: ProjectionEpilogue,
  norm: boolean,
  rows: number,
  units: number,
  inDim: number,
): Job {
  const pair = PAIR[epilogue.kind];
  const key = projectionKey(epilogue.kind, norm, rows, units, inDim, format);
  const shape: PackedProjectionPairShape = epilogue.kind === "qkvRope"
    ? {
      format,
      kind: "qkvRope",
      rows,
      inDim,
      outDim: epilogue.nHeads * epilogue.headDim,
      norm,
      attention: {
        nHeads: epilogue.nHeads,
        nKvHeads: epilogue.nKvHeads,
        headDim: epilogue.headDim,
        pos: 0,
        maxSeqLen: Math.max(rows, 2),
        layout: epilogue.layout ?? "interleaved",
      },
    }
    : { format, kind: epilogue.kind, rows, inDim, outDim: units, norm };
  const packedShape = { format, rows, units, inDim, pair, norm };
  let inputs: PackedProjectionInputs | undefined;
  return {
    key,
    bytes: PACKED_PROJECTION_PAIR.bytes(shape),
    flops: PACKED_PROJECTION_PAIR.flops(shape),
    candidates: PACKED_PROJECTION_PAIR.variants
      .filter((v) => {
        const variant = packedProjectionVariant(v.name);
        return variant.dot === "auto" && variant.applies(packedShape, gpu) &&
          variant.features.every((f) => gpu.device.features.has(f));
      })
      .map((entry) => ({
        variant: entry.name,
        build: async () => {
          inputs ??= PACKED_PROJECTION_PAIR.inputs(shape);
          const buffers = {
            input: (data: Float32Array | Uint32Array) => gpu.upload(data),
            output: (length: number, initial?: Float32Array | Uint32Array) =>
              initial ? gpu.upload(initial) : gpu.createBuffer(length * 4),
          };
          return {
            dispatches: await entry.record(gpu, shape, inputs, buffers),
            check: () => conformance(gpu, PACKED_PROJECTION_PAIR, entry, shape),
          };
        },
      })),
  };
}

function attentionJob(gpu: Gpu, config: TuneShape, rows: number, context: number): Job {
  const { nHeads, nKvHeads } = config;
  const hd = headDim(config);
  const key = attentionKey(rows, nHeads, nKvHeads, hd);
  const pos = context - rows; // queries at pos..context-1
  const kvDim = nKvHeads * hd;
  const shape = { rows, nHeads, nKvHeads, headDim: hd };
  const names = rows === 1
    ? ["split auto", "split1", "split2", "split4", "split8", "split16", "split32"]
    : ["split auto", "tiled"];
  const build = async (name: string): Promise<Candidate> => {
    const splits = name.startsWith("split") && name !== "split auto"
      ? Number(name.slice(5))
      : undefined;
    const kernel = name === "tiled"
      ? await tiledAttentionKernel(gpu, shape)
      : await attentionKernel(gpu, { ...shape, splits });
    const rng = new Rng(nHeads * 13 + context);
    const q = rng.uniformArray(rows * nHeads * hd);
    const variant = name === "tiled" ? TILED_ATTENTION_VARIANT : ATTENTION_PAIR.variants[0];
    return {
      dispatches: kernel.bind({
        q: gpu.upload(q),
        keyCache: gpu.upload(rng.uniformArray(context * kvDim)),
        valueCache: gpu.upload(rng.uniformArray(context * kvDim)),
        state: createState(gpu, { pos }),
        out: gpu.createBuffer(q.length * 4),
      }),
      // checked where the decoder's queries reach farthest: a kernel can fail only past some
      // context (the tiled one once ran out of llvmpipe's loop budget past ~480 keys)
      check: () =>
        conformance(gpu, ATTENTION_PAIR, variant, {
          ...shape,
          pos: config.maxSeqLen - rows,
          splits,
        }),
    };
  };
  // decode reads every cached key and value; prefill (causal) about half of them per query
  return {
    key,
    bytes: 4 * (2 * context * kvDim + 2 * rows * nHeads * hd),
    flops: 4 * rows * nHeads * hd * (rows === 1 ? context : context / 2),
    candidates: names.map((variant) => ({ variant, build: () => build(variant) })),
  };
}

/**
 * A tuning that runs `config`'s fused decode step with the projection variant `projection`
 * everywhere (the fused QKV, output, gate/up and down projections, and the classifier), the
 * rest at the adapter's defaults: how a test makes the decoder run one layout (e.g.
 * `subgroup64`, which no default selects). `deno` is recorded as given (a page has no Deno).
 *
 * @example
 * ```ts
 * import { projectionTuning } from "./tune.ts";
 * const adapter = { vendor: "v", architecture: "a", device: "d", description: "x" };
 * const shape = { dim: 64, hiddenDim: 172, nHeads: 8, nKvHeads: 4, vocabSize: 512, maxSeqLen: 512, ropeLayout: "interleaved" as const };
 * const tuning = projectionTuning(adapter, shape, "subgroup64");
 * if (tuning.choices["projection store decode 512x64"] !== "subgroup64") throw new Error("wrong");
 * ```
 */
export function projectionTuning(
  adapter: Tuning["adapter"],
  config: TuneShape,
  projection: string,
  deno = "-",
): Tuning {
  const { dim, hiddenDim, nHeads, nKvHeads, vocabSize } = config;
  const hd = headDim(config);
  const [qDim, kvDim] = [nHeads * hd, nKvHeads * hd];
  const choices: Record<string, string> = {
    decoder: "fused",
    [projectionKey("qkvRope", true, 1, (qDim + 2 * kvDim) / 2, dim)]: projection,
    [projectionKey("add", false, 1, dim, qDim)]: projection,
    [projectionKey("siluMul", true, 1, hiddenDim, dim)]: projection,
    [projectionKey("add", false, 1, dim, hiddenDim)]: projection,
    [projectionKey("store", false, 1, vocabSize, dim)]: projection,
  };
  return { version: 1, adapter, deno, choices };
}

/** Every kernel shape of `config`'s decode step and prefill passes. */
function jobs(
  gpu: Gpu,
  config: TuneShape,
  prefillRows: number,
  weights?: GpuWeightFormat,
): Job[] {
  const { dim, hiddenDim, nHeads, nKvHeads, vocabSize, maxSeqLen, ropeLayout: layout } = config;
  const hd = headDim(config);
  const qDim = nHeads * hd;
  const kvDim = nKvHeads * hd;
  const qkv = { kind: "qkvRope", nHeads, nKvHeads, headDim: hd, maxSeqLen, layout } as const;
  const list: Job[] = [];
  for (const rows of [1, prefillRows]) {
    if (rows > 1 && prefillRows < 2) continue;
    list.push(
      projectionJob(gpu, qkv, true, rows, (qDim + 2 * kvDim) / 2, dim),
      projectionJob(gpu, { kind: "add" }, false, rows, dim, qDim),
      projectionJob(gpu, { kind: "siluMul" }, true, rows, hiddenDim, dim),
      projectionJob(gpu, { kind: "add" }, false, rows, dim, hiddenDim),
      attentionJob(gpu, config, rows, rows === 1 ? Math.max(1, Math.floor(maxSeqLen / 2)) : rows),
    );
  }
  list.push(projectionJob(gpu, { kind: "store" }, false, 1, vocabSize, dim));
  if (weights) {
    const packed = (epilogue: ProjectionEpilogue, norm: boolean, units: number, inDim: number) =>
      packedProjectionJob(gpu, weights, epilogue, norm, 1, units, inDim);
    list.push(
      packed(qkv, true, (qDim + 2 * kvDim) / 2, dim),
      packed({ kind: "add" }, false, dim, qDim),
      packed({ kind: "siluMul" }, true, hiddenDim, dim),
      packed({ kind: "add" }, false, dim, hiddenDim),
      packed({ kind: "store" }, false, vocabSize, dim),
    );
  }
  return list;
}

/**
 * Median milliseconds per call of `dispatches`, repeated in one submit per sample: batches
 * grow until a sample lasts `minSampleMs`, since completion is only observed at Deno's device
 * poll (every ~10 ms). A candidate whose first call took over 50 ms and 4x the quickest first
 * call of its kernel (`quickestOnce`) is clearly slower and is not sampled further. Returns the
 * time and that first call's wall time.
 */
async function time(
  gpu: Gpu,
  dispatches: Dispatch[],
  samples: number,
  minSampleMs: number,
  quickestOnce: number,
): Promise<{ ms: number; once: number }> {
  // The one timer (`timing.ts`), wall clock: batches of calls in one submit each.
  const run = gpuRunner(gpu, undefined, (calls) => submitUnits(gpu, dispatches, calls));
  await run(1); // warm-up: some drivers finish compiling a pipeline at its first dispatch
  const once = (await run(1)).wallMs;
  if (once > 50 && once > 4 * quickestOnce) return { ms: once, once };
  const calls = once >= minSampleMs ? 1 : await calibrateBatch(run, minSampleMs, 4096);
  const batches = [];
  for (let s = 0; s < samples; s++) batches.push(await run(calls));
  return { ms: toTiming(batches, calls).wallMs.median, once };
}

/**
 * Tunes every kernel shape of `config` on `gpu`: checks each applicable variant against the
 * reference, times the correct ones, and chooses the fastest.
 *
 * @example
 * ```ts ignore
 * const { tuning } = await tune(gpu, preset("stories15M"));
 * await Deno.writeTextFile("tuning.json", JSON.stringify(tuning, null, 2));
 * ```
 */
export async function tune(
  gpu: Gpu,
  config: TuneShape,
  options: TuneOptions = {},
): Promise<TuneResult> {
  const samples = options.samples ?? (options.quick ? 3 : 7);
  const minSampleMs = options.minSampleMs ?? (options.quick ? 40 : 100);
  const prefillRows = options.prefillRows ?? Math.min(64, config.maxSeqLen);
  const measurements: TuneMeasurement[] = [];
  const choices: Record<string, string> = { decoder: "fused" };
  for (const job of jobs(gpu, config, prefillRows, options.weights)) {
    let best: TuneMeasurement | undefined;
    let quickestOnce = Infinity;
    for (const candidate of job.candidates) {
      if (options.filter && !options.filter(job.key, candidate.variant)) continue;
      if (options.quick && !QUICK_CANDIDATES.test(`${job.key} ${candidate.variant}`)) continue;
      const m: TuneMeasurement = {
        key: job.key,
        variant: candidate.variant,
        passed: false,
        ms: NaN,
        gbPerS: NaN,
        gflopPerS: NaN,
      };
      try {
        const built = await candidate.build();
        m.error = await built.check();
        m.passed = m.error === undefined;
        if (m.passed) {
          if (options.timer) {
            m.ms = await options.timer(built.dispatches);
          } else {
            const timed = await time(gpu, built.dispatches, samples, minSampleMs, quickestOnce);
            quickestOnce = Math.min(quickestOnce, timed.once);
            m.ms = timed.ms;
          }
          m.gbPerS = job.bytes / (m.ms * 1e6);
          m.gflopPerS = job.flops / (m.ms * 1e6);
        }
      } catch (error) {
        m.error = error instanceof Error ? error.message.split("\n")[0] : String(error);
      }
      measurements.push(m);
      options.onMeasurement?.(m);
      if (m.passed && (!best || m.ms < best.ms)) best = m;
    }
    if (best) choices[job.key] = best.variant;
  }
  const deno = (globalThis as { Deno?: { version?: { deno?: string } } }).Deno?.version?.deno ??
    "unknown";
  return { tuning: { version: 1, adapter: gpu.adapter, deno, choices }, measurements };
}

/**
 * The measurements as a table: key, variant, ms, GB/s, GFLOP/s, and which variant was chosen.
 *
 * @example
 * ```ts
 * import { formatTuneTable } from "./tune.ts";
 * const text = formatTuneTable([{ key: "k", variant: "row", passed: true, ms: 1, gbPerS: 2, gflopPerS: 3 }], { k: "row" });
 * if (!text.includes("chosen")) throw new Error("wrong");
 * ```
 */
export function formatTuneTable(
  measurements: readonly TuneMeasurement[],
  choices: Record<string, string>,
): string {
  const header = ["kernel", "variant", "ms", "GB/s", "GFLOP/s", ""];
  const rows = measurements.map((m) => [
    m.key,
    m.variant,
    m.passed ? m.ms.toFixed(4) : "-",
    m.passed ? m.gbPerS.toFixed(2) : "-",
    m.passed ? m.gflopPerS.toFixed(2) : "-",
    m.passed ? (choices[m.key] === m.variant ? "chosen" : "") : `FAIL: ${m.error ?? ""}`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd();
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}
