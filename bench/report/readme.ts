/**
 * `bench/results/README.md`, readable in a minute and copied into the project README's
 * "Headline result": the machine line, one chart (wall ms/token against context, one line per
 * variant, the time model's prediction dashed), one table of at most 8 rows and three
 * sentences made from the numbers. Everything else is in `report.md`.
 *
 * @module
 */
import type { Backend } from "../measure.ts";
import type { DecoderCell } from "../matrix.ts";
import { ablationSentence, decodeFits } from "./ablation.ts";
import { type BenchResults, formatRatio, headlineShape, machineLine } from "./report.ts";
import { precisionTargetsMarkdown } from "./precision.ts";
import type { PrecisionCell } from "../precision.ts";
import { lineChart, PALETTE } from "./svg.ts";

/** The README chart's file name, beside README.md. */
export const README_CHART = "headline_decode.svg";

const ATTENTION_ORDER = ["MHA", "GQA-2", "GQA-4", "GQA-8", "MQA"];

/** Significant digits: 3. */
function n(x: number, digits = 3): string {
  if (!Number.isFinite(x)) return "-";
  if (x === 0) return "0";
  const magnitude = Math.floor(Math.log10(Math.abs(x)));
  return x.toFixed(Math.max(0, digits - 1 - magnitude));
}

/**
 * The headline shape's cached decode cells, per backend and attention variant: at most 8
 * series, so with more variants than fit, MHA, MQA and the GQA variants with the most K/V heads.
 */
function headlineSeries(results: BenchResults): DecoderCell[][] {
  const shape = headlineShape(results);
  const cells = results.cells.filter((c) =>
    c.shape === shape && c.phase === "decode" && c.cache === "kv-cache"
  );
  const backends = [...new Set(cells.map((c) => c.backend))].sort();
  const order = (a: string) => ATTENTION_ORDER.indexOf(a);
  const perBackend = Math.floor(8 / Math.max(1, backends.length));
  const kept = (attentions: string[]) => {
    const sorted = attentions.sort((a, b) => order(a) - order(b));
    if (sorted.length <= perBackend) return sorted;
    const ends: string[] = sorted.filter((a) => a === "MHA" || a === "MQA");
    const middle = sorted.filter((a) => !ends.includes(a)).slice(0, perBackend - ends.length);
    return sorted.filter((a) => ends.includes(a) || middle.includes(a));
  };
  return backends.flatMap((backend) => {
    const own = cells.filter((c) => c.backend === backend);
    return kept([...new Set(own.map((c) => c.attention))]).map((attention) =>
      own.filter((c) => c.attention === attention).sort((a, b) => a.context - b.context)
    );
  });
}

/** The README's chart: `{ [README_CHART]: svg }`, or nothing without decode cells. */
export function readmeChartFiles(results: BenchResults): Record<string, string> {
  const series = headlineSeries(results);
  if (series.length === 0) return {};
  const color = (c: DecoderCell) =>
    PALETTE[
      (Math.max(0, ATTENTION_ORDER.indexOf(c.attention)) + (c.backend === "webgpu" ? 5 : 0)) %
      PALETTE.length
    ];
  return {
    [README_CHART]: lineChart({
      title: `${headlineShape(results)}: decode wall ms/token against context`,
      xLabel: "mean position (log scale); dashed: the time model's prediction",
      yLabel: "wall ms per token",
      series: series.flatMap((own) => [
        {
          name: `${own[0].attention} ${own[0].backend}`,
          color: color(own[0]),
          points: own.map((c) => [c.meanPosition, c.msPerToken.median] as [number, number]),
          ranges: own.map((c) => [c.msPerToken.min, c.msPerToken.max] as [number, number]),
        },
        {
          name: `${own[0].attention} ${own[0].backend} model`,
          color: color(own[0]),
          dashed: true,
          points: own.map((c) => [c.meanPosition, c.predictedMs] as [number, number]),
        },
      ]),
    }),
  };
}

/**
 * `bench/results/README.md`: about 40 lines, every figure from `results.json`. Links are
 * written from the repository root, as the project README copies the section.
 */
export function formatReadmeSection(results: BenchResults): string {
  const shape = headlineShape(results);
  const series = headlineSeries(results);
  const fits = decodeFits(results.cells);
  const contexts = [...new Set(series.flat().map((c) => c.context))].sort((a, b) => a - b);
  const [shortest, longest] = [contexts[0], contexts.at(-1)];
  const rows = series.map((own) => {
    const first = own[0];
    const at = (ctx: number | undefined) => own.find((c) => c.context === ctx);
    const speedup = results.speedups.find((s) =>
      s.shape === shape && s.backend === first.backend && s.context === longest &&
      s.comparison === `${first.attention} vs MHA`
    );
    const fit = fits.find((f) =>
      f.shape === shape && f.backend === first.backend && f.attention === first.attention
    );
    const rate = (c: DecoderCell | undefined) =>
      c
        ? `${n(c.tokensPerSecond.median)} [${n(c.tokensPerSecond.min)}-${n(c.tokensPerSecond.max)}]`
        : "-";
    return [
      `${first.attention} ${first.backend}`,
      `${n(first.kvBytesPerToken / 1024)} KiB`,
      `${n(first.weightBytesPerToken / 2 ** 20)} MiB`,
      rate(at(shortest)),
      ...(longest !== shortest ? [rate(at(longest))] : []),
      first.attention === "MHA" ? "1 (baseline)" : speedup ? formatRatio(speedup.measured) : "-",
      fit ? (fit.resolved ? n(fit.msPer1000) : `not resolved (r² ${n(fit.r2)})`) : "-",
    ];
  });
  const backends = [...new Set(series.map((own) => own[0].backend))];
  const lead: Backend = backends.includes("webgpu") ? "webgpu" : backends[0] ?? "cpu";
  const sync = results.syncCosts;
  const differ = results.speedups.filter((s) => s.measured.differs).length;
  const kv = results.speedups.find((s) =>
    s.shape === shape && s.backend === lead && s.comparison === "KV cache vs recompute (MHA)"
  );
  const sentences = [
    `Every rate is wall-clock: one call decodes ${results.settings.decodePositions} tokens ` +
    `(on WebGPU GPU-resident, as \`generate\` runs it), ${results.settings.reps} to ` +
    `${
      2 * results.settings.reps
    } samples interleaved round-robin, speedups a ratio of medians with its bootstrap 95% interval` +
    (sync
      ? `; on this adapter one submit costs ${n(sync.submit.wallMs.median)} ms and one ` +
        `read-back ${n(sync.readBack.wallMs.median)} ms of wall time`
      : "") +
    ".",
    ablationSentence(results.ablation, fits, lead, shape),
    (kv
      ? `With a KV cache, MHA decodes ${formatRatio(kv.measured)} faster than recomputing the ` +
        `prefix at position ${kv.meanPosition} on ${lead}; `
      : "") +
    `${differ} of ${results.speedups.length} measured speedups have an interval that excludes 1.`,
  ];
  return [
    "## Results",
    "",
    `Measured ${results.date.slice(0, 10)} by \`deno task bench${
      results.quick ? " --quick" : ""
    }\` on: ${machineLine(results)}. Written by the bench from ` +
    "[bench/results/results.json](bench/results/results.json) (every raw sample); every other " +
    "table and chart: [bench/results/report.md](bench/results/report.md).",
    "",
    ...(series.length ? [`![decode wall ms/token](bench/results/${README_CHART})`, ""] : []),
    `\`${shape}\`, decode with a KV cache, wall-clock tokens/s median [min-max]:`,
    "",
    `| variant | KV bytes/token | weights | tok/s at context ${shortest ?? "-"} | ${
      longest !== shortest ? `tok/s at context ${longest} | ` : ""
    }speedup over MHA at ${longest ?? "-"} (95% CI) | ms per 1,000 positions |`,
    `|${"---|".repeat(longest !== shortest ? 7 : 6)}`,
    ...rows.map((r) => `| ${r.join(" | ")} |`),
    "",
    sentences.join(" "),
    "",
    ...precisionSection(results.precision),
  ].join("\n");
}

/** The precision targets, where the run measured them: quantized weights against f32. */
function precisionSection(cells: readonly PrecisionCell[] | undefined): string[] {
  const targets = cells ? precisionTargetsMarkdown(cells) : "";
  if (!targets) return [];
  return [
    "Quantized weights against f32 weights on the same backend (decode wall ms/token, f32 KV " +
    "cache, samples interleaved). A step's terms: bytes at the measured read ceiling, dispatches " +
    "at the measured cost of one, the rest (arithmetic, dequantization included); a missed " +
    "target's shortfall splits exactly into the terms' excesses over f32's divided by the " +
    "target, and the largest holds it back. Every pair and its accuracy: " +
    "[bench/results/precision.md](bench/results/precision.md).",
    "",
    targets,
  ];
}
