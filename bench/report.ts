/**
 * The benchmark's results: the versioned JSON document, the speedups set beside their
 * predictions, the stdout table, the Markdown report and the charts.
 *
 * @module
 */
import { barChart, lineChart, PALETTE } from "./svg.ts";
import type { Backend, KernelResult } from "./measure.ts";
import type { DecoderCell, RejectedVariant } from "./matrix.ts";
import type { PeerResult } from "./llama2c.ts";

/** Version of the JSON layout; bump when fields change meaning. */
export const RESULTS_SCHEMA = 1;

/** The machine a run measured. */
export interface MachineInfo {
  /** CPU model. */
  cpu: string;
  /** Logical cores. */
  cores: number;
  /** Memory, GiB. */
  memoryGiB: number;
  /** Operating system. */
  os: string;
  /** Deno version. */
  deno: string;
  /** WebGPU adapter, when one was used. */
  adapter?: string;
}

/** A measured speedup beside the ratio a cost model predicts. */
export interface Speedup {
  /** Shape. */
  shape: string;
  /** Backend. */
  backend: Backend;
  /** What is compared, e.g. "KV cache vs recompute (MHA)" or "GQA-4 vs MHA". */
  comparison: string;
  /** Context length. */
  context: number;
  /** Baseline ms/token over variant ms/token. */
  measured: number;
  /** The cost model's ratio. */
  predicted: number;
  /** What the prediction counts: FLOPs or bytes. */
  basis: "FLOPs" | "bytes";
}

/** The peer comparison on one shape. */
export interface PeerRow extends PeerResult {
  /** Our CPU reference decode tokens/s at the context nearest the middle of the peer's run. */
  cpuTokensPerSecond?: number;
  /** Our WebGPU decode tokens/s, likewise. */
  webgpuTokensPerSecond?: number;
  /** Bytes read per decoded token. */
  bytesPerToken: number;
  /** Tokens/s the CPU's copy bandwidth allows at that many bytes per token. */
  bandwidthLimitTokensPerSecond: number;
}

/** Everything one run measured. */
export interface BenchResults {
  /** {@linkcode RESULTS_SCHEMA}. */
  schema: number;
  /** When it ran (ISO 8601). */
  date: string;
  /** Whether this was the `--quick` subset. */
  quick: boolean;
  /** The machine. */
  machine: MachineInfo;
  /** Copy bandwidth per backend, GB/s (read + write). */
  copyGbPerS: Partial<Record<Backend, number>>;
  /** Kernel throughput. */
  kernels: KernelResult[];
  /** Decoder cells. */
  cells: DecoderCell[];
  /** Variants that failed their correctness check. */
  rejected: RejectedVariant[];
  /** Measured speedups beside predictions. */
  speedups: Speedup[];
  /** llama2.c side by side, when `--llama2c` was given. */
  peer?: PeerRow[];
}

/**
 * Speedups of the KV cache over recompute (predicted by FLOPs) and of each GQA/MQA variant
 * over MHA (predicted by bytes), wherever both cells were measured.
 */
export function computeSpeedups(cells: readonly DecoderCell[]): Speedup[] {
  const decode = cells.filter((c) => c.phase === "decode");
  const find = (c: DecoderCell, cache: string, attention: string) =>
    decode.find((o) =>
      o.shape === c.shape && o.backend === c.backend && o.context === c.context &&
      o.cache === cache && o.attention === attention
    );
  const out: Speedup[] = [];
  for (const kv of decode.filter((c) => c.cache === "kv-cache")) {
    const recompute = find(kv, "recompute", kv.attention);
    if (recompute) {
      out.push({
        shape: kv.shape,
        backend: kv.backend,
        comparison: `KV cache vs recompute (${kv.attention})`,
        context: kv.context,
        measured: recompute.msPerToken / kv.msPerToken,
        predicted: recompute.flopsPerToken / kv.flopsPerToken,
        basis: "FLOPs",
      });
    }
    const mha = kv.attention === "MHA" ? undefined : find(kv, "kv-cache", "MHA");
    if (mha) {
      out.push({
        shape: kv.shape,
        backend: kv.backend,
        comparison: `${kv.attention} vs MHA`,
        context: kv.context,
        measured: mha.msPerToken / kv.msPerToken,
        predicted: mha.bytesPerToken / kv.bytesPerToken,
        basis: "bytes",
      });
    }
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

const f = (x: number, digits = 2) => (Number.isFinite(x) ? x.toFixed(digits) : "-");
const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(bytes < 2 ** 20 ? 3 : 1)} MiB`;
const kib = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB`;

/** Decode ms/token per variant (rows) and context (columns). */
function decodeTable(results: BenchResults, markdown: boolean): string {
  const contexts = [...new Set(results.cells.map((c) => c.context))].sort((a, b) => a - b);
  const keyOf = (c: DecoderCell) => `${c.shape}|${c.backend}|${c.cache}|${c.attention}`;
  const keys = [...new Set(results.cells.filter((c) => c.phase === "decode").map(keyOf))];
  const rows = keys.map((key) => {
    const [shape, backend, cache, attention] = key.split("|");
    const series = results.cells.filter((c) => c.phase === "decode" && keyOf(c) === key);
    const first = series[0];
    return [
      shape,
      backend,
      cache,
      attention,
      kib(first.kvBytesPerToken),
      ...contexts.map((ctx) => {
        const cell = series.find((c) => c.context === ctx);
        return cell ? f(cell.msPerToken) : "";
      }),
    ];
  });
  return table(
    [
      "shape",
      "backend",
      "cache",
      "attention",
      "KV/token",
      ...contexts.map((c) => `${c}`),
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
    `${c.context}`,
    f(c.msPerToken, 3),
    f(c.tokensPerSecond, 1),
    kib(c.kvBytesPerToken),
    mib(c.kvBytes),
    mib(c.bytesPerToken),
    f(c.gbPerS),
    `${f(c.rooflineFraction * 100, 1)}%`,
  ]);
  return table(
    [
      "shape",
      "backend",
      "cache",
      "attention",
      "phase",
      "context",
      "ms/token",
      "tokens/s",
      "KV/token",
      "KV total",
      "read/token",
      "GB/s",
      "of copy BW",
    ],
    rows,
    markdown,
  );
}

function speedupTable(results: BenchResults, markdown: boolean): string {
  const rows = results.speedups.map((
    s,
  ) => [
    s.shape,
    s.backend,
    s.comparison,
    `${s.context}`,
    `${f(s.measured)}x`,
    `${f(s.predicted)}x (${s.basis})`,
  ]);
  return table(
    ["shape", "backend", "comparison", "context", "measured", "predicted"],
    rows,
    markdown,
  );
}

function kernelTable(results: BenchResults, markdown: boolean): string {
  const rows = results.kernels.map((
    k,
  ) => [
    k.backend,
    k.variant && k.variant !== "default" && k.variant !== "reference"
      ? `${k.kernel} ${k.variant}`
      : k.kernel,
    k.shape,
    f(k.ms, 3),
    mib(k.bytes),
    f(k.gbPerS),
    `${f(k.rooflineFraction * 100, 1)}%`,
  ]);
  return table(
    ["backend", "kernel", "shape", "ms/call", "bytes", "GB/s", "of copy BW"],
    rows,
    markdown,
  );
}

function peerTable(results: BenchResults, markdown: boolean): string {
  const rows = (results.peer ?? []).map((p) => [
    p.shape,
    p.tokensPerSecond !== undefined ? f(p.tokensPerSecond, 1) : `failed: ${p.error}`,
    p.cpuTokensPerSecond !== undefined ? f(p.cpuTokensPerSecond, 1) : "-",
    p.webgpuTokensPerSecond !== undefined ? f(p.webgpuTokensPerSecond, 1) : "-",
    mib(p.bytesPerToken),
    f(p.bandwidthLimitTokensPerSecond, 1),
  ]);
  return table(
    [
      "shape",
      "llama2.c tok/s",
      "ours cpu tok/s",
      "ours webgpu tok/s",
      "read/token",
      "bandwidth limit tok/s",
    ],
    rows,
    markdown,
  );
}

function machineLine(results: BenchResults): string {
  const m = results.machine;
  const copy = Object.entries(results.copyGbPerS).map(([b, g]) => `${b} copy ${f(g ?? NaN)} GB/s`)
    .join(", ");
  return `${m.cpu}, ${m.cores} cores, ${m.memoryGiB.toFixed(0)} GiB, ${m.os}, Deno ${m.deno}` +
    (m.adapter ? `; WebGPU adapter: ${m.adapter}` : "") + (copy ? `; ${copy}` : "");
}

/** The stdout summary. */
export function formatText(results: BenchResults): string {
  return [
    `machine: ${machineLine(results)}`,
    "",
    "decode ms/token by context:",
    decodeTable(results, false),
    "",
    "speedups (measured vs predicted):",
    speedupTable(results, false),
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
    ...(results.peer ? ["", "llama2.c side by side:", peerTable(results, false)] : []),
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
    title: "Kernels: achieved bandwidth as a fraction of copy bandwidth",
    unit: "fraction of the backend's copy bandwidth (1 = roofline)",
    bars: results.kernels.map((k) => ({
      name: `${k.backend} ${k.kernel} ${k.shape}`,
      value: k.rooflineFraction,
    })),
    format: (v) => `${(v * 100).toFixed(1)}%`,
  });
  return files;
}

const ATTENTION_ORDER = ["MHA", "GQA-2", "GQA-4", "GQA-8", "MQA"];

function decodeChart(results: BenchResults, shape: string, backend: Backend): string {
  const cells = results.cells.filter((c) =>
    c.shape === shape && c.backend === backend && c.phase === "decode"
  );
  const series = uniqueBy(cells, (c) => `${c.cache} ${c.attention}`).map((first) => ({
    name: `${first.attention} ${first.cache}`,
    color: PALETTE[Math.max(0, ATTENTION_ORDER.indexOf(first.attention)) % PALETTE.length],
    dashed: first.cache === "recompute",
    points: cells
      .filter((c) => c.cache === first.cache && c.attention === first.attention)
      .map((c) => [c.context, c.msPerToken] as [number, number]),
  }));
  return lineChart({
    title: `${shape} on ${backend}: decode ms/token against context`,
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
  return [
    `# Benchmark results${results.quick ? " (quick subset)" : ""}`,
    "",
    `Measured ${results.date} on: ${machineLine(results)}.`,
    "",
    "## Decode ms/token by context",
    "",
    decodeTable(results, true),
    "",
    ...charts.filter((c) => c.startsWith("decode_")).map((c) => `![${c}](${c})\n`),
    "## Speedups: measured beside predicted",
    "",
    "KV cache vs recompute is predicted by FLOPs; GQA/MQA vs MHA by bytes read per decoded token",
    "(weights plus KV cache).",
    "",
    speedupTable(results, true),
    "",
    "## KV-cache bytes per token",
    "",
    "![kv_bytes.svg](kv_bytes.svg)",
    "",
    "## Kernels against the copy roofline",
    "",
    kernelTable(results, true),
    "",
    "![roofline.svg](roofline.svg)",
    "",
    "## Every cell",
    "",
    cellsTable(results, true),
    ...(results.rejected.length
      ? [
        "",
        "## Rejected variants (wrong logits, not timed)",
        "",
        ...results.rejected.map((r) => `- ${r.variant}: ${r.reason}`),
      ]
      : []),
    ...(results.peer ? ["", "## llama2.c side by side", "", peerTable(results, true)] : []),
    "",
  ].join("\n");
}
