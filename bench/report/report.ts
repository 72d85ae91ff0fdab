/**
 * The benchmark's results: the versioned JSON document (every raw sample), the speedups set
 * beside the time model's predictions, the stdout tables, the Markdown report and the charts.
 * Every time is a median with its min-max range; every speedup is a ratio of medians with its
 * seeded bootstrap 95% interval, a difference only where the interval excludes 1.
 *
 * @module
 */
import type { BatchAxis } from "../batch.ts";
import { batchChartFiles, batchMarkdown } from "./batch.ts";
import { barChart, lineChart, PALETTE } from "./svg.ts";
import type { Backend, KernelResult } from "../measure.ts";
import type { CheckResult, DecoderCell, RejectedVariant, SkippedSeries } from "../matrix.ts";
import type { Roofline } from "../probes.ts";
import { bootstrapRatio, type RatioInterval } from "../stats.ts";
import type { Spread, Timing } from "../../gpu/timing.ts";
import type { AttentionAblation } from "../ablation.ts";
import type { SyncCosts } from "../sync_cost.ts";
import type { PrecisionCell } from "../precision.ts";
import { precisionTargetsMarkdown } from "./precision.ts";
import { ablationMarkdown, ablationSentence, decodeFits } from "./ablation.ts";
import type { CpuCeilings } from "../ceilings.ts";
import type { TimeModel } from "../time_model.ts";
import { ceilingChecks, ceilingsMarkdown, ceilingVerdict } from "./ceilings.ts";
import { timeModelMarkdown, timeModelText } from "./time_model.ts";

/**
 * Version of the JSON layout; bump when fields change meaning. 3: wall-clock headlines (decode
 * of 32 tokens per call), every raw sample, bootstrap intervals, the attention ablation and the
 * WebGPU synchronisation costs.
 */
export const RESULTS_SCHEMA = 3;

/** One CPU cache, from `/sys/devices/system/cpu/cpu0/cache/`. */
export interface CacheInfo {
  /** 1, 2, 3... */
  level: number;
  /** Data, Instruction or Unified. */
  type: string;
  /** Bytes. */
  bytes: number;
}

/** The WebGPU adapter a run used. */
export interface AdapterInfo {
  /** The adapter's description. */
  description: string;
  /** Vendor. */
  vendor: string;
  /** Architecture. */
  architecture: string;
  /** Device. */
  device: string;
  /** Whether the browser/runtime marks it a fallback (software) adapter. */
  isFallbackAdapter?: boolean;
  /** Device features. */
  features: string[];
  /** Device limits. */
  limits: Record<string, number>;
}

/** The machine a run measured, read from the system. */
export interface MachineInfo {
  /** CPU model (`node:os` cpus()). */
  cpu: string;
  /** Logical cores. */
  cores: number;
  /** Memory, GiB. */
  memoryGiB: number;
  /** CPU caches. */
  caches: CacheInfo[];
  /** Last-level cache bytes (0 when unknown). */
  llcBytes: number;
  /** Operating system and kernel release. */
  os: string;
  /** Deno version. */
  deno: string;
  /** V8 version. */
  v8: string;
  /** The WebGPU adapter, when one was used. */
  adapter?: AdapterInfo;
  /** The project's git commit, when known (with "-dirty" for local changes). */
  gitCommit?: string;
}

/** A measured speedup beside the time model's prediction and the raw cost ratios. */
export interface Speedup {
  /** Shape. */
  shape: string;
  /** Backend. */
  backend: Backend;
  /** What is compared, e.g. "KV cache vs recompute (MHA)" or "GQA-4 vs MHA". */
  comparison: string;
  /** Context length. */
  context: number;
  /** Mean timed position. */
  meanPosition: number;
  /** Ratio of median wall ms/token, baseline over variant, with its bootstrap 95% interval. */
  measured: RatioInterval;
  /** The time model's ratio. */
  predicted: number;
  /** FLOPs ratio. */
  flopsRatio: number;
  /** Total bytes (weights plus K/V) ratio. */
  bytesRatio: number;
  /** K/V-cache bytes only ratio. */
  kvBytesRatio: number;
  /** Whether each side's working set fits in the last-level cache: [baseline, variant]. */
  fitsInLlc: [boolean, boolean];
}

/** One peer program's result on one shape. */
export interface PeerRow {
  /** Label given on the command line. */
  label: string;
  /** Program path. */
  program: string;
  /** Its arguments (model and tokenizer paths are temporary). */
  args: string[];
  /** OMP_NUM_THREADS it ran with, or "unset". */
  ompNumThreads: string;
  /** Shape. */
  shape: string;
  /** Tokens generated from position 0. */
  steps: number;
  /** Its decode tok/s over the repetitions. */
  tokensPerSecond?: Spread;
  /** Every sample's tok/s, in the order taken. */
  samples?: number[];
  /** Why it failed. */
  error?: string;
  /** Bytes per token at the middle of its run: weights, and K/V read plus written. */
  weightBytesPerToken: number;
  /** K/V bytes per token, likewise. */
  kvBytesPerToken: number;
  /** Tokens/s the one-thread CPU read stream allows at those bytes. */
  bandwidthLimitTokensPerSecond: number;
  /** Tokens/s every core's read bandwidth at that working set allows: the ceiling. */
  ceilingTokensPerSecond?: number;
  /** Our KV-cache MHA decode tok/s at the cell nearest its mean position, per backend. */
  ours: Partial<Record<Backend, { tokensPerSecond: Spread; meanPosition: number }>>;
}

/** The settings a run measured with. */
export interface RunSettings {
  /** Samples per cell, kernel and probe. */
  reps: number;
  /** Contexts asked for. */
  contexts: number[];
  /** Positions per cached decode sample (one call; recompute samples time 2 at the same mean). */
  decodePositions: number;
  /** Per-cell budget, seconds. */
  cellBudgetS: number;
  /** Minimum batch length per backend, ms. */
  minBatchMs: Record<Backend, number>;
  /** Working set of the bandwidth probes, bytes. */
  probeBytes: number;
  /** No decoder cell started after this many minutes. */
  maxMinutes: number;
}

/** Everything one run measured. */
export interface BenchResults {
  /** {@linkcode RESULTS_SCHEMA}. */
  schema: number;
  /** When it ran (ISO 8601). */
  date: string;
  /** Whether this was the `--quick` subset. */
  quick: boolean;
  /** Seconds the measurements took. */
  elapsedS: number;
  /** Settings. */
  settings: RunSettings;
  /** The machine. */
  machine: MachineInfo;
  /** Each backend's measured roofline. */
  rooflines: Partial<Record<Backend, Roofline>>;
  /** Every core's ceilings and the cache sweep (absent in older results). */
  cpuCeilings?: CpuCeilings;
  /** The calibrated time model's parameters and predictions (absent in older results). */
  timeModel?: TimeModel;
  /** Kernels. */
  kernels: KernelResult[];
  /** Decoder cells. */
  cells: DecoderCell[];
  /** Correctness checks that passed before timing. */
  checks: CheckResult[];
  /** Variants that failed their correctness check. */
  rejected: RejectedVariant[];
  /** Series the cell budget cut short. */
  skipped: SkippedSeries[];
  /** Measured speedups beside predictions. */
  speedups: Speedup[];
  /** llama2.c builds side by side, when `--llama2c` was given. */
  peers?: PeerRow[];
  /** The batch axis: batched decode steps by batch size, attention and KV layout. */
  batch?: BatchAxis;
  /** The controlled GQA/MQA ablation: attention alone by context. */
  ablation?: AttentionAblation;
  /** WebGPU wall cost of one submit and one read-back, when WebGPU ran. */
  syncCosts?: SyncCosts;
  /** The precision axis's cells (absent with `--no-precision` and in older results). */
  precision?: PrecisionCell[];
}

/**
 * Parses a results.json: the current schema as is; older ones are refused with the reason.
 *
 * @example
 * ```ts
 * import { parseResults } from "./report.ts";
 * try {
 *   parseResults('{"schema": 1}', "old.json");
 *   throw new Error("should refuse");
 * } catch (e) {
 *   if (!String(e).includes("schema 1")) throw e;
 * }
 * ```
 */
export function parseResults(text: string, file: string): BenchResults {
  let results: Partial<BenchResults>;
  try {
    results = JSON.parse(text);
  } catch (error) {
    throw new Error(`${file}: not JSON (${error instanceof Error ? error.message : error})`);
  }
  if (results.schema === 1) {
    throw new Error(
      `${file}: schema 1 (one sample per cell, no spread, copy-based roofline) cannot be ` +
        `re-rendered as schema ${RESULTS_SCHEMA}: its cells lack repetitions, GPU time and the ` +
        `measured ceilings; run the benchmark again`,
    );
  }
  if (results.schema === 2) {
    throw new Error(
      `${file}: schema 2 (summaries only, GPU-time headlines of 2-position decode calls, ` +
        `min-max "within noise" verdicts) cannot be re-rendered as schema ${RESULTS_SCHEMA}: ` +
        `its cells lack the raw samples the bootstrap intervals need; run the benchmark again`,
    );
  }
  if (results.schema !== RESULTS_SCHEMA) {
    throw new Error(`${file}: expected results schema ${RESULTS_SCHEMA}, got ${results.schema}`);
  }
  for (
    const field of [
      "settings",
      "machine",
      "rooflines",
      "kernels",
      "cells",
      "speedups",
      "checks",
      "rejected",
      "skipped",
    ] as const
  ) {
    if (results[field] === undefined) throw new Error(`${file}: missing field "${field}"`);
  }
  for (const field of ["kernels", "cells", "speedups", "checks", "rejected", "skipped"] as const) {
    if (!Array.isArray(results[field])) {
      throw new Error(`${file}: field "${field}": expected an array, got ${typeof results[field]}`);
    }
  }
  results.cells!.forEach((cell, i) => {
    const raw = (cell as Partial<DecoderCell>).timing?.samples?.wallMs;
    if (!Array.isArray(raw) || raw.length === 0 || raw.some((x) => !Number.isFinite(x))) {
      throw new Error(
        `${file}: cells[${i}].timing.samples.wallMs: expected an array of finite raw samples, ` +
          `got ${JSON.stringify(raw)}`,
      );
    }
  });
  return results as BenchResults;
}

/** A cell's raw wall ms/token samples (its median alone where they were not kept). */
function rawWallMs(cell: DecoderCell): number[] {
  return cell.timing.samples?.wallMs ?? [cell.msPerToken.median];
}

/**
 * Speedups of the KV cache over recompute and of each GQA/MQA variant over MHA, wherever both
 * decode cells were measured: ratios of median wall ms/token with seeded bootstrap 95%
 * intervals over their raw samples, beside the time model's ratio.
 */
export function computeSpeedups(cells: readonly DecoderCell[]): Speedup[] {
  const decode = cells.filter((c) => c.phase === "decode");
  const find = (c: DecoderCell, cache: string, attention: string) =>
    decode.find((o) =>
      o.shape === c.shape && o.backend === c.backend && o.context === c.context &&
      o.cache === cache && o.attention === attention
    );
  const speedup = (baseline: DecoderCell, variant: DecoderCell, comparison: string): Speedup => ({
    shape: variant.shape,
    backend: variant.backend,
    comparison,
    context: variant.context,
    meanPosition: variant.meanPosition,
    measured: bootstrapRatio(rawWallMs(baseline), rawWallMs(variant)),
    predicted: baseline.predictedMs / variant.predictedMs,
    flopsRatio: baseline.flopsPerToken / variant.flopsPerToken,
    bytesRatio: baseline.bytesPerToken / variant.bytesPerToken,
    kvBytesRatio: baseline.kvTrafficPerToken / variant.kvTrafficPerToken,
    fitsInLlc: [baseline.fitsInLlc, variant.fitsInLlc],
  });
  const out: Speedup[] = [];
  for (const kv of decode.filter((c) => c.cache === "kv-cache")) {
    const recompute = find(kv, "recompute", kv.attention);
    if (recompute) out.push(speedup(recompute, kv, `KV cache vs recompute (${kv.attention})`));
    const mha = kv.attention === "MHA" ? undefined : find(kv, "kv-cache", "MHA");
    if (mha) out.push(speedup(mha, kv, `${kv.attention} vs MHA`));
  }
  return out;
}

function table(header: string[], rows: string[][], markdown: boolean): string {
  if (markdown) {
    return [
      `| ${header.join(" | ")} |`,
      `|${header.map(() => "---").join("|")}|`,
      ...rows.map((r) => `| ${r.join(" | ")} |`),
    ].join("\n");
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd();
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

/** Significant digits enough for a figure: 3 by default. */
function n(x: number, digits = 3): string {
  if (!Number.isFinite(x)) return "-";
  if (x === 0) return "0";
  const magnitude = Math.floor(Math.log10(Math.abs(x)));
  return x.toFixed(Math.max(0, digits - 1 - magnitude));
}

/**
 * "median [min-max]".
 *
 * @example
 * ```ts
 * import { formatSpread } from "./report.ts";
 * import { summarize } from "../../gpu/timing.ts";
 * if (formatSpread(summarize([1, 2, 4])) !== "2.00 [1.00-4.00]") throw new Error("wrong");
 * ```
 */
export function formatSpread(s: Spread | undefined, digits = 3): string {
  return s ? `${n(s.median, digits)} [${n(s.min, digits)}-${n(s.max, digits)}]` : "-";
}

/**
 * "1.43x [1.21-1.66]" (the ratio and its interval), with "(no difference)" when the interval
 * includes 1.
 *
 * @example
 * ```ts
 * import { formatRatio } from "./report.ts";
 * const r = { ratio: 1.1, lo: 0.9, hi: 1.3, confidence: 0.95, resamples: 2000, differs: false };
 * if (formatRatio(r) !== "1.10x [0.900-1.30] (no difference)") throw new Error(formatRatio(r));
 * ```
 */
export function formatRatio(r: RatioInterval): string {
  return `${n(r.ratio)}x [${n(r.lo)}-${n(r.hi)}]${r.differs ? "" : " (no difference)"}`;
}

const mib = (bytes: number) => `${n(bytes / 2 ** 20)} MiB`;
const kib = (bytes: number) => `${n(bytes / 1024)} KiB`;
const pct = (x: number) => `${n(x * 100)}%`;
/** Marks a cell whose working set fits in the last-level cache. */
const LLC_MARK = " (LLC)";

/** Decode ms/token (median [range]) per variant (rows) and context (columns). */
function decodeTable(results: BenchResults, markdown: boolean): string {
  const decode = results.cells.filter((c) => c.phase === "decode");
  const contexts = [...new Set(decode.map((c) => c.context))].sort((a, b) => a - b);
  const keyOf = (c: DecoderCell) => `${c.shape}|${c.backend}|${c.cache}|${c.attention}`;
  const keys = [...new Set(decode.map(keyOf))];
  const rows = keys.map((key) => {
    const series = decode.filter((c) => keyOf(c) === key);
    const first = series[0];
    return [
      first.shape,
      first.backend,
      first.cache,
      first.attention,
      kib(first.kvBytesPerToken),
      ...contexts.map((ctx) => {
        const cell = series.find((c) => c.context === ctx);
        return cell
          ? formatSpread(cell.msPerToken) +
            (cell.gpuMsPerToken ? ` (GPU ${n(cell.gpuMsPerToken.median)})` : "") +
            (cell.fitsInLlc ? LLC_MARK : "")
          : "";
      }),
    ];
  });
  const positions = (ctx: number) => decode.find((c) => c.context === ctx)!.meanPosition;
  return table(
    [
      "shape",
      "backend",
      "cache",
      "attention",
      "KV/token",
      ...contexts.map((c) => `pos ${positions(c)}`),
    ],
    rows,
    markdown,
  );
}

function cellsTable(results: BenchResults, markdown: boolean): string {
  const rows = results.cells.map((c) => [
    c.shape,
    c.backend,
    c.cache,
    c.attention,
    c.phase,
    c.execution,
    `${c.positions[0]}..${c.positions[1]}`,
    formatSpread(c.msPerToken),
    formatSpread(c.gpuMsPerToken),
    formatSpread(c.tokensPerSecond),
    mib(c.weightBytesPerToken),
    mib(c.kvTrafficPerToken),
    formatSpread(c.gbPerS),
    formatSpread(c.gflopPerS),
    pct(c.rooflineFraction),
    `${n(c.predictedMs)} (${n(c.measuredOverPredicted)}x)`,
    mib(c.workingSetBytes) + (c.fitsInLlc ? LLC_MARK : ""),
  ]);
  return table(
    [
      "shape",
      "backend",
      "cache",
      "attention",
      "phase",
      "execution",
      "positions",
      "wall ms/token",
      "GPU-timestamp ms/token",
      "tokens/s",
      "weights/token",
      "K/V/token",
      "GB/s",
      "GFLOP/s",
      "of read BW",
      "model ms (measured/model)",
      "working set",
    ],
    rows,
    markdown,
  );
}

function speedupTable(results: BenchResults, markdown: boolean): string {
  const rows = results.speedups.map((s) => [
    s.shape,
    s.backend,
    s.comparison,
    `${s.meanPosition}`,
    formatRatio(s.measured),
    `${n(s.predicted)}x`,
    `${n(s.measured.ratio / s.predicted)}`,
    `${n(s.flopsRatio)}x`,
    `${n(s.bytesRatio)}x`,
    `${n(s.kvBytesRatio)}x`,
    s.fitsInLlc[0] === s.fitsInLlc[1] ? (s.fitsInLlc[0] ? "both" : "neither") : "variant only",
  ]);
  return table(
    [
      "shape",
      "backend",
      "comparison",
      "position",
      "measured (95% CI)",
      "model",
      "measured/model",
      "FLOPs",
      "bytes",
      "K/V bytes",
      "fits in LLC",
    ],
    rows,
    markdown,
  );
}

function kernelTable(results: BenchResults, markdown: boolean): string {
  const rows = results.kernels.map((k) => [
    k.backend,
    k.kernel,
    k.variant,
    k.shape,
    formatSpread(scaleUs(k.timing.gpuMs ?? k.timing.wallMs)),
    k.timing.gpuMs ? formatSpread(scaleUs(k.timing.wallMs)) : "-",
    mib(k.bytes) + (k.fitsInLlc ? LLC_MARK : ""),
    formatSpread(k.gbPerS),
    formatSpread(k.gflopPerS),
    pct(k.rooflineFraction),
    n(k.measuredOverPredicted),
  ]);
  return table(
    [
      "backend",
      "kernel",
      "variant",
      "shape",
      "µs/call",
      "wall µs/call",
      "bytes",
      "GB/s",
      "GFLOP/s",
      "of read BW",
      "measured/model",
    ],
    rows,
    markdown,
  );
}

function scaleUs(s: Spread): Spread {
  return { ...s, median: s.median * 1000, min: s.min * 1000, max: s.max * 1000 };
}

function rooflineTable(results: BenchResults, markdown: boolean): string {
  const cpuRead = results.rooflines.cpu?.readGbPerS.median;
  const cpuCopy = results.rooflines.cpu?.copyGbPerS.median;
  const rows = Object.entries(results.rooflines).map(([backend, r]) => [
    backend,
    formatSpread(r!.readGbPerS),
    formatSpread(r!.scalarReadGbPerS),
    formatSpread(r!.copyGbPerS),
    formatSpread(r!.peakGflopPerS),
    formatSpread(r!.dispatchUs),
    mib(r!.probeBytes) +
    (results.cpuCeilings?.knee.kneeBytes
      ? ` (${n(r!.probeBytes / results.cpuCeilings.knee.kneeBytes)}x knee)`
      : ""),
    r!.gpuTimestamps ? "GPU" : "wall",
    cpuRead ? pct(r!.readGbPerS.median / cpuRead) : "-",
    cpuCopy ? pct(r!.readGbPerS.median / cpuCopy) : "-",
  ]);
  return table(
    [
      "backend",
      "read GB/s",
      "JS-loop read GB/s",
      "copy GB/s",
      "peak GFLOP/s",
      "µs/dispatch",
      "probe",
      "time",
      "read vs CPU read",
      "read vs CPU copy",
    ],
    rows,
    markdown,
  );
}

function peerTable(results: BenchResults, markdown: boolean): string {
  const rows = (results.peers ?? []).map((p) => [
    p.shape,
    p.label,
    `OMP_NUM_THREADS=${p.ompNumThreads}`,
    p.tokensPerSecond ? formatSpread(p.tokensPerSecond) : `failed: ${p.error}`,
    formatSpread(p.ours.cpu?.tokensPerSecond),
    formatSpread(p.ours.webgpu?.tokensPerSecond),
    mib(p.weightBytesPerToken),
    mib(p.kvBytesPerToken),
    n(p.bandwidthLimitTokensPerSecond),
    p.ceilingTokensPerSecond ? n(p.ceilingTokensPerSecond) : "-",
  ]);
  return table(
    [
      "shape",
      "peer",
      "threads",
      "peer tok/s",
      "ours cpu tok/s",
      "ours webgpu tok/s",
      "weights/token",
      "K/V/token",
      "1-thread read limit tok/s",
      "all-core ceiling tok/s",
    ],
    rows,
    markdown,
  );
}

/** The machine in one line, from the run's metadata. */
export function machineLine(results: BenchResults): string {
  const m = results.machine;
  const llc = m.llcBytes > 0 ? `, ${mib(m.llcBytes)} last-level cache (/sys)` : "";
  const adapter = m.adapter
    ? `; WebGPU adapter: ${m.adapter.description || "unnamed"}, vendor ${m.adapter.vendor}${
      m.adapter.isFallbackAdapter ? " (fallback/software adapter)" : ""
    }`
    : "";
  return `${m.cpu}, ${m.cores} cores, ${n(m.memoryGiB)} GiB${llc}, ${m.os}, Deno ${m.deno}` +
    adapter + (m.gitCommit ? `; commit ${m.gitCommit}` : "");
}

/** How the run measured, in one line. */
export function settingsLine(results: BenchResults): string {
  const s = results.settings;
  return `${s.reps} samples per cell (up to ${2 * s.reps} where they spread over 25% of the ` +
    `median, the cells compared with them sampled alike), variants of a context interleaved ` +
    `round-robin; ms/token and tokens/s are wall-clock: a cached decode sample is one call ` +
    `decoding ${s.decodePositions} tokens (WebGPU: GPU-resident \`generate\`), a recompute ` +
    `sample 2 positions at the same mean; GPU-timestamp time beside it as "GPU"; batches of at ` +
    `least ${s.minBatchMs.cpu} ms (CPU) and ${s.minBatchMs.webgpu} ms (WebGPU); figures are ` +
    `median [min-max]; speedups are ratios of medians [bootstrap 95% interval, 2000 seeded ` +
    `resamples], a difference only where the interval excludes 1; "(LLC)" marks a working set ` +
    `at most the measured cache knee`;
}

/** Whether a submit, a read-back and a bare map cost the same within 10% (medians). */
function sameCost(costs: SyncCosts): boolean {
  const medians = [costs.submit, costs.readBack, costs.mapAsync].map((t) => t.wallMs.median);
  return Math.max(...medians) <= 1.1 * Math.min(...medians);
}

/** The WebGPU synchronisation costs, one table. */
function syncCostTable(costs: SyncCosts, markdown: boolean): string {
  const row = (what: string, t: Timing) => [what, formatSpread(t.wallMs), `${t.wallMs.n}`];
  return table(
    ["WebGPU call", "wall ms per call", "samples"],
    [
      row("one submit, waited for (empty pass, onSubmittedWorkDone)", costs.submit),
      row("one read-back of 4 bytes (copy, submit, mapAsync)", costs.readBack),
      row("mapAsync alone (nothing submitted)", costs.mapAsync),
    ],
    markdown,
  );
}

/** The stdout summary. */
export function formatText(results: BenchResults): string {
  return [
    `machine: ${machineLine(results)}`,
    `settings: ${settingsLine(results)}`,
    "",
    "roofline (measured):",
    rooflineTable(results, false),
    "",
    "decode wall ms/token by mean position:",
    decodeTable(results, false),
    ...(results.syncCosts
      ? ["", "WebGPU synchronisation (wall):", syncCostTable(results.syncCosts, false)]
      : []),
    "",
    "GQA/MQA ablation:",
    ...[...new Set(results.cells.map((c) => c.backend))].map((backend) =>
      `  ${
        ablationSentence(
          results.ablation,
          decodeFits(results.cells),
          backend,
          headlineShape(results),
        )
      }`
    ),
    "",
    "speedups (ratio of medians [bootstrap 95% interval] vs the time model):",
    speedupTable(results, false),
    "",
    ceilingVerdict(ceilingChecks(results)),
    ...timeModelText(results.timeModel),
    "",
    "kernels:",
    kernelTable(results, false),
    ...(results.rejected.length
      ? [
        "",
        "REJECTED (wrong logits, not timed):",
        ...results.rejected.map((r) => `  ${r.variant}: ${r.reason}`),
      ]
      : []),
    ...(results.peers ? ["", "peers side by side:", peerTable(results, false)] : []),
  ].join("\n");
}

/** File names of the charts, by what they show. */
export function chartFiles(results: BenchResults): Record<string, string> {
  const files: Record<string, string> = {};
  for (const first of uniqueBy(results.cells, (c) => `${c.shape} ${c.backend}`)) {
    const name = `decode_${first.shape}_${first.backend}`.replace(/[^A-Za-z0-9.-]+/g, "_");
    files[`${name}.svg`] = decodeChart(results, first.shape, first.backend);
  }
  files["kv_bytes.svg"] = barChart({
    title: "KV-cache bytes per token",
    unit: "KiB per token (keys and values, all layers, fp32)",
    bars: uniqueBy(results.cells, (c) => `${c.shape} ${c.attention}`).map((c) => ({
      name: `${c.shape} ${c.attention}`,
      value: c.kvBytesPerToken / 1024,
    })),
    format: (v) => `${v.toFixed(1)} KiB`,
  });
  files["roofline.svg"] = barChart({
    title: "Kernels: achieved bandwidth over the measured read-stream bandwidth",
    unit: "fraction of the backend's read-stream bandwidth (median; bar: min-max)",
    bars: results.kernels.map((k) => {
      const ceiling = results.rooflines[k.backend]?.readGbPerS.median ?? NaN;
      return {
        name: `${k.backend} ${k.kernel} ${k.shape}`,
        value: k.rooflineFraction,
        range: [k.gbPerS.min / ceiling, k.gbPerS.max / ceiling] as [number, number],
      };
    }),
    format: (v) => `${(v * 100).toFixed(1)}%`,
  });
  if (results.batch) Object.assign(files, batchChartFiles(results.batch, results.rooflines));
  return files;
}

const ATTENTION_ORDER = ["MHA", "GQA-2", "GQA-4", "GQA-8", "MQA"];

function decodeChart(results: BenchResults, shape: string, backend: Backend): string {
  const cells = results.cells.filter((c) =>
    c.shape === shape && c.backend === backend && c.phase === "decode"
  );
  const series = uniqueBy(cells, (c) => `${c.cache} ${c.attention}`).map((first) => {
    const own = cells.filter((c) => c.cache === first.cache && c.attention === first.attention);
    return {
      name: `${first.attention} ${first.cache}`,
      color: PALETTE[Math.max(0, ATTENTION_ORDER.indexOf(first.attention)) % PALETTE.length],
      dashed: first.cache === "recompute",
      points: own.map((c) => [c.context, c.msPerToken.median] as [number, number]),
      ranges: own.map((c) => [c.msPerToken.min, c.msPerToken.max] as [number, number]),
    };
  });
  return lineChart({
    title: `${shape} on ${backend}: decode ms/token (median, bars min-max)`,
    xLabel: "context (tokens); dashed: recompute, solid: KV cache",
    yLabel: "ms per token",
    series,
  });
}

function uniqueBy<T>(items: readonly T[], key: (item: T) => string): T[] {
  const seen = new Map<string, T>();
  for (const item of items) if (!seen.has(key(item))) seen.set(key(item), item);
  return [...seen.values()];
}

/** The Markdown report; `charts` are the chart file names to embed. */
export function formatMarkdown(results: BenchResults, charts: string[]): string {
  const llcCells = results.cells.filter((c) => c.fitsInLlc).length;
  return [
    `# Benchmark results${results.quick ? " (quick subset)" : ""}`,
    "",
    `Measured ${results.date} (${n(results.elapsedS / 60)} min) on: ${machineLine(results)}.`,
    "",
    `Method: ${settingsLine(results)}. GPU times come from timestamp queries where the adapter ` +
    "has them (beside the wall time, never instead of it); GB/s and roofline fractions divide by the backend's " +
    "measured read-stream bandwidth; the time model is `max(FLOPs / peak, bytes / read " +
    "bandwidth) + dispatches × per-dispatch cost`.",
    "",
    "## Roofline",
    "",
    rooflineTable(results, true),
    "",
    ...Object.entries(results.rooflines).flatMap(([backend, r]) =>
      r!.readSource
        ? [
          `${backend}'s read ceiling is a measured rate beyond the cache which outran the read ` +
          `probe (${formatSpread(r!.probeReadGbPerS!)} GB/s): ${r!.readSource}. Every fraction ` +
          "of the read ceiling, the precision axis's terms and the time model use it.",
          "",
        ]
        : []
    ),
    ceilingsMarkdown(results, results.machine.llcBytes),
    timeModelMarkdown(results.timeModel),
    "",
    "## Decode wall ms/token by mean position",
    "",
    `${llcCells} of ${results.cells.length} cells have a working set (weights plus K/V cache) ` +
    "at most the measured cache knee (marked (LLC)): their bytes/s are not DRAM bandwidth.",
    "",
    decodeTable(results, true),
    "",
    ...charts.filter((c) => c.startsWith("decode_")).map((c) => `![${c}](${c})\n`),
    ...(results.syncCosts
      ? [
        "## WebGPU synchronisation costs",
        "",
        "What a WebGPU decode pays per call besides its passes, wall-clock: a 32-token " +
        "`generate` pays two submits and one read-back, a one-token step one of each per token.",
        "",
        syncCostTable(results.syncCosts, true),
        "",
        ...(sameCost(results.syncCosts)
          ? [
            "The three cost the same within 10%: the wait (the runtime's completion polling), not " +
            "the work, sets the price of every synchronisation.",
            "",
          ]
          : []),
      ]
      : []),
    ablationMarkdown(results.ablation, results.cells, headlineShape(results)),
    "## Speedups: measured beside the time model",
    "",
    "Ratios of median wall ms/token with their bootstrap 95% interval (2000 seeded resamples " +
    'of each side\'s raw samples, percentile); "(no difference)" where the interval includes 1. ' +
    "FLOPs, bytes (weights plus K/V) and K/V-only bytes ratios beside them.",
    "",
    speedupTable(results, true),
    "",
    "## KV-cache bytes per token",
    "",
    "![kv_bytes.svg](kv_bytes.svg)",
    "",
    "## Kernels against the read-stream roofline",
    "",
    kernelTable(results, true),
    "",
    "![roofline.svg](roofline.svg)",
    "",
    ...(results.batch ? [batchMarkdown(results.batch, charts), ""] : []),
    ...(results.precision
      ? [
        "## Precision targets: quantized weights against f32",
        "",
        precisionTargetsMarkdown(results.precision) ||
        "No shape ran the targets' pairs (f32/f32 beside Q8_0 or Q4_0 with the f32 cache).",
        "Every precision pair, with its accuracy: [precision.md](precision.md).",
        "",
      ]
      : []),
    "## Every cell",
    "",
    cellsTable(results, true),
    "",
    "## Correctness checks before timing",
    "",
    ...results.checks.map((c) =>
      `- ${c.variant}: logits at positions ${c.positions.join(", ")} within NMSE ${
        c.maxNmse.toExponential(1)
      } of the CPU reference`
    ),
    ...(results.skipped.length
      ? [
        "",
        `## Cut short by the cell budget (${results.settings.cellBudgetS} s) or the run's`,
        "",
        ...results.skipped.map((k) =>
          `- ${k.variant} ${k.phase}: from context ${k.fromContext} (${
            k.reason ?? "cell budget"
          }: predicted ${n(k.predictedS)} s)`
        ),
      ]
      : []),
    ...(results.rejected.length
      ? [
        "",
        "## Rejected variants (wrong logits, not timed)",
        "",
        ...results.rejected.map((r) => `- ${r.variant}: ${r.reason}`),
      ]
      : []),
    ...(results.peers
      ? [
        "",
        "## Peers side by side (llama2.c, llama.cpp)",
        "",
        ...uniqueBy(results.peers, (p) => p.label).map((p) =>
          `- ${p.label}: \`${p.program} ${p.args.join(" ")}\`, OMP_NUM_THREADS=${p.ompNumThreads}`
        ),
        "",
        peerTable(results, true),
      ]
      : []),
    "",
  ].join("\n");
}

/**
 * The shape the headline is about: `attention-heavy` where measured, else the first shape.
 *
 * @example
 * ```ts ignore
 * headlineShape(results); // "attention-heavy"
 * ```
 */
export function headlineShape(results: BenchResults): string {
  return results.cells.some((c) => c.shape === "attention-heavy")
    ? "attention-heavy"
    : results.cells[0]?.shape ?? "";
}
