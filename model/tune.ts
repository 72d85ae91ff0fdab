/**
 * Tuning by measurement: for every kernel shape a model needs, each applicable variant is
 * checked against the reference on this adapter, then timed; the fastest correct one is
 * chosen. The result is a `Tuning` (see `gpu/tuning.ts`) plus every measurement, for reports.
 *
 * @module
 */
import { headDim, type LlamaConfig } from "./config.ts";
import { attentionKernel } from "../gpu/attention.ts";
import { tiledAttentionKernel } from "../gpu/attention_tiled.ts";
import type { Dispatch, Gpu } from "../gpu/device.ts";
import { guardedBuffer, readGuarded, stateBuffer } from "../gpu/conformance.ts";
import {
  PROJECTION_VARIANTS,
  type ProjectionEpilogue,
  projectionKernel,
  type ProjectionVariant,
} from "../gpu/projection.ts";
import { attentionKey, projectionKey, type Tuning } from "../gpu/tuning.ts";
import { decodeAttention } from "../reference/attention.ts";
import { compare } from "../reference/compare.ts";
import { matmul } from "../reference/matmul.ts";
import { Rng } from "../reference/random.ts";

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
  /** Fewer and shorter samples (3 of 40 ms instead of 7 of 100 ms): the bench's `--quick`. */
  quick?: boolean;
  /** Samples per measurement (overrides `quick`'s 3 and the default 7). */
  samples?: number;
  /** Shortest sample in milliseconds (overrides `quick`'s 40 and the default 100). */
  minSampleMs?: number;
  /** Prefill chunk (rows of a prefill pass); 64 or maxSeqLen if smaller. */
  prefillRows?: number;
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

const PRODUCT_NMSE = 1e-8;

function projectionJob(
  gpu: Gpu,
  epilogue: ProjectionEpilogue,
  norm: boolean,
  rows: number,
  units: number,
  inDim: number,
  xOffset = 0,
): Job {
  const pair = epilogue.kind === "siluMul" || epilogue.kind === "qkvRope" ? 2 : 1;
  const outRows = pair * units;
  const key = projectionKey(epilogue.kind, norm, rows, units, inDim);
  const rng = new Rng(units * 7 + inDim + rows);
  const w = rng.uniformArray(outRows * inDim);
  const xRows = rows + xOffset / inDim;
  const x = rng.uniformArray(xRows * inDim);
  const applicable = PROJECTION_VARIANTS.filter((v) =>
    v.applies({ rows, units, inDim }, gpu.limits)
  );
  return {
    key,
    bytes: 4 *
      (outRows * inDim + xRows * inDim + rows * (units + (epilogue.kind === "add" ? units : 0))),
    flops: 2 * rows * outRows * inDim,
    candidates: applicable.map((variant) => ({
      variant: variant.name,
      build: () => buildProjection(gpu, variant, epilogue, norm, rows, units, inDim, w, x, xOffset),
    })),
  };
}

/**
 * Times the projection as the decoder runs it; checks it without the norm and with a plain
 * `store` epilogue (the epilogues and prologue are covered by conformance; here the question
 * is whether this layout computes this shape right on this adapter).
 */
async function buildProjection(
  gpu: Gpu,
  variant: ProjectionVariant,
  epilogue: ProjectionEpilogue,
  norm: boolean,
  rows: number,
  units: number,
  inDim: number,
  w: Float32Array,
  x: Float32Array,
  xOffset: number,
): Promise<Candidate> {
  const pair = epilogue.kind === "siluMul" || epilogue.kind === "qkvRope" ? 2 : 1;
  const shape = { rows, units, inDim };
  const kernel = await projectionKernel(gpu, shape, epilogue, variant, { norm, xOffset });
  const wBuffer = gpu.upload(w);
  const xBuffer = gpu.upload(x);
  let bindings: Record<string, GPUBuffer>;
  if (epilogue.kind === "qkvRope") {
    const kvDim = epilogue.nKvHeads * epilogue.headDim;
    bindings = {
      q: gpu.createBuffer(rows * epilogue.nHeads * epilogue.headDim * 4),
      keyCache: gpu.createBuffer(epilogue.maxSeqLen * kvDim * 4),
      valueCache: gpu.createBuffer(epilogue.maxSeqLen * kvDim * 4),
      table: gpu.createBuffer(epilogue.maxSeqLen * epilogue.headDim * 4),
      state: stateBuffer(gpu, 0),
    };
  } else {
    bindings = { out: gpu.createBuffer(rows * units * 4) };
  }
  const dispatch = kernel.bind({ w: wBuffer, x: xBuffer, ...bindings } as never);
  return {
    dispatches: [dispatch],
    async check() {
      // the same layout with a plain store, rows capped at two token tiles
      const checkRows = Math.min(rows, 17);
      const plain = await projectionKernel(
        gpu,
        { rows: checkRows, units: units * pair, inDim },
        { kind: "store" },
        variant,
        { xOffset },
      );
      const out = guardedBuffer(gpu, checkRows * units * pair);
      await gpu.submit([plain.bind({ w: wBuffer, x: xBuffer, out: out.range })]);
      const got = await readGuarded(gpu, out);
      const xs = x.subarray(xOffset, xOffset + checkRows * inDim);
      const stats = compare(got.values, matmul(w, xs, checkRows, units * pair, inDim));
      if (!got.guardsIntact) return "wrote outside its output";
      if (stats.firstNonFinite >= 0 || !(stats.nmse <= PRODUCT_NMSE)) {
        return `NMSE ${stats.nmse.toExponential(2)} over ${PRODUCT_NMSE}`;
      }
      return undefined;
    },
  };
}

function attentionJob(gpu: Gpu, config: LlamaConfig, rows: number, context: number): Job {
  const { nHeads, nKvHeads } = config;
  const hd = headDim(config);
  const key = attentionKey(rows, nHeads, nKvHeads, hd);
  const pos = context - rows; // queries at pos..context-1
  const kvDim = nKvHeads * hd;
  const rng = new Rng(nHeads * 13 + context);
  const q = rng.uniformArray(rows * nHeads * hd);
  const keys = rng.uniformArray(context * kvDim);
  const values = rng.uniformArray(context * kvDim);
  const shape = { rows, nHeads, nKvHeads, headDim: hd };
  const names = rows === 1
    ? ["split auto", "split1", "split2", "split4", "split8", "split16", "split32"]
    : ["split auto", "tiled"];
  const build = async (name: string): Promise<Candidate> => {
    const kernel = name === "tiled"
      ? await tiledAttentionKernel(gpu, shape)
      : await attentionKernel(gpu, {
        ...shape,
        splits: name === "split auto" ? undefined : Number(name.slice(5)),
      });
    const buffers = {
      q: gpu.upload(q),
      keyCache: gpu.upload(keys),
      valueCache: gpu.upload(values),
      state: stateBuffer(gpu, pos),
    };
    const out = guardedBuffer(gpu, q.length);
    return {
      dispatches: kernel.bind({ ...buffers, out: out.range }),
      async check() {
        await gpu.submit(kernel.bind({ ...buffers, out: out.range }));
        const got = await readGuarded(gpu, out);
        const width = nHeads * hd;
        const expected = new Float32Array(q.length);
        for (let t = 0; t < rows; t++) {
          expected.set(
            decodeAttention(q.subarray(t * width, (t + 1) * width), keys, values, pos + t, {
              nHeads,
              nKvHeads,
              headDim: hd,
            }),
            t * width,
          );
        }
        const stats = compare(got.values, expected);
        if (!got.guardsIntact) return "wrote outside its output";
        if (stats.firstNonFinite >= 0 || !(stats.nmse <= PRODUCT_NMSE)) {
          return `NMSE ${stats.nmse.toExponential(2)} over ${PRODUCT_NMSE}`;
        }
        return undefined;
      },
    };
  };
  // decode reads every cached key and value; prefill (causal) about half of them per query tile
  return {
    key,
    bytes: 4 * (2 * context * kvDim + 2 * rows * nHeads * hd),
    flops: 4 * rows * nHeads * hd * (rows === 1 ? context : context / 2),
    candidates: names.map((variant) => ({ variant, build: () => build(variant) })),
  };
}

/** Every kernel shape of `config`'s decode step and prefill passes. */
function jobs(gpu: Gpu, config: LlamaConfig, prefillRows: number): Job[] {
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
  return list;
}

/**
 * Median milliseconds per call of `dispatches`, repeated in one submit per sample: batches
 * grow until a sample lasts `minSampleMs`, since completion is only observed at Deno's device
 * poll (every ~10 ms). A candidate already 4x slower than `best` after one call is not
 * sampled further.
 */
async function time(
  gpu: Gpu,
  dispatches: Dispatch[],
  samples: number,
  minSampleMs: number,
  best: number,
): Promise<number> {
  const run = async (calls: number) => {
    const start = performance.now();
    await gpu.submit(Array.from({ length: calls }, () => dispatches).flat());
    await gpu.finish();
    return performance.now() - start;
  };
  const once = await run(1);
  if (once > 4 * best) return once;
  let calls = 1;
  let elapsed = once;
  while (elapsed < minSampleMs && calls < 4096) {
    calls *= 2;
    elapsed = await run(calls);
  }
  const times = [elapsed / calls];
  for (let s = 1; s < samples; s++) times.push((await run(calls)) / calls);
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
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
  config: LlamaConfig,
  options: TuneOptions = {},
): Promise<TuneResult> {
  const samples = options.samples ?? (options.quick ? 3 : 7);
  const minSampleMs = options.minSampleMs ?? (options.quick ? 40 : 100);
  const prefillRows = options.prefillRows ?? Math.min(64, config.maxSeqLen);
  const measurements: TuneMeasurement[] = [];
  const choices: Record<string, string> = { decoder: "fused" };
  for (const job of jobs(gpu, config, prefillRows)) {
    let best: TuneMeasurement | undefined;
    for (const candidate of job.candidates) {
      if (options.filter && !options.filter(job.key, candidate.variant)) continue;
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
          m.ms = await time(gpu, built.dispatches, samples, minSampleMs, best?.ms ?? Infinity);
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
