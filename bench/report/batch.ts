// The batch axis in the report: tables (cells, layouts, capacity, crossovers), a roofline chart
// per backend and tokens/s against batch size per attention variant.
import type { BatchAxis, BatchCell } from "../batch.ts";
import type { Backend } from "../measure.ts";
import type { Roofline } from "../probes.ts";
import { lineChart, PALETTE, type Series } from "./svg.ts";

const n = (x: number, digits = 3) =>
  !Number.isFinite(x)
    ? "-"
    : Math.abs(x) >= 100
    ? x.toFixed(0)
    : Number(x.toPrecision(digits)).toString();
const spread = (s: { median: number; min: number; max: number }) =>
  `${n(s.median)} [${n(s.min)}-${n(s.max)}]`;
const mib = (bytes: number) => `${n(bytes / 2 ** 20)} MiB`;

const ORDER = ["MHA", "GQA-2", "GQA-4", "GQA-8", "MQA"];
const colorOf = (attention: string) =>
  PALETTE[Math.max(0, ORDER.indexOf(attention)) % PALETTE.length];

/** The axis's charts: a roofline per backend, tokens/s against b per backend and context. */
export function batchChartFiles(
  axis: BatchAxis,
  rooflines: Partial<Record<Backend, Roofline>>,
): Record<string, string> {
  const files: Record<string, string> = {};
  const backends = [...new Set(axis.cells.map((c) => c.backend))];
  for (const backend of backends) {
    const cells = axis.cells.filter((c) => c.backend === backend);
    const roofline = rooflines[backend];
    const intensities = cells.map((c) => c.intensity);
    const [lo, hi] = [Math.min(...intensities) / 2, Math.max(...intensities) * 2];
    const series: Series[] = [];
    if (roofline) {
      const bw = roofline.readGbPerS.median, peak = roofline.peakGflopPerS.median;
      const knee = peak / bw;
      const xs = [lo, Math.min(Math.max(knee, lo), hi), hi];
      series.push({
        name: `ceiling: ${n(bw)} GB/s read, ${n(peak)} GFLOP/s`,
        color: "#888",
        dashed: true,
        points: xs.map((x) => [x, Math.min(peak, bw * x)] as [number, number]),
      });
    }
    for (const attention of ORDER.filter((a) => cells.some((c) => c.attention === a))) {
      const own = cells.filter((c) => c.attention === attention && c.layout === "paged")
        .sort((a, b) => a.intensity - b.intensity);
      series.push({
        name: `${attention} (b = ${own.map((c) => c.batch).join(",")})`,
        color: colorOf(attention),
        markersOnly: true,
        points: own.map((c) => [c.intensity, c.gflopPerS] as [number, number]),
      });
    }
    files[`batch_roofline_${backend}.svg`] = lineChart({
      title: `Batched decode on ${backend}: achieved GFLOP/s against arithmetic intensity`,
      xLabel: "FLOPs per byte of weights and K/V cache (log2)",
      yLabel: "GFLOP/s (median)",
      series,
    });
    for (const context of axis.contexts) {
      const own = cells.filter((c) => c.context === context && c.layout === "paged");
      if (own.length === 0) continue;
      files[`batch_tokens_${backend}_${context}.svg`] = lineChart({
        title: `${axis.shape} on ${backend}, context ${context}: tokens/s over all sequences`,
        xLabel: "sequences per step (b)",
        yLabel: "tokens/s (median, bars min-max)",
        series: ORDER.filter((a) => own.some((c) => c.attention === a)).map((attention) => {
          const line = own.filter((c) => c.attention === attention).sort((a, b) =>
            a.batch - b.batch
          );
          return {
            name: attention,
            color: colorOf(attention),
            points: line.map((c) => [c.batch, c.tokensPerSecond.median] as [number, number]),
            ranges: line.map((c) =>
              [c.tokensPerSecond.min, c.tokensPerSecond.max] as [number, number]
            ),
          };
        }),
      });
    }
  }
  return files;
}

function cellRow(c: BatchCell): string {
  const kvShare = c.cost.kvReadBytes / (c.cost.kvReadBytes + c.cost.weightBytes);
  return `| ${c.backend} | ${c.attention} | ${c.layout}${
    c.window ? ` (window ${c.window})` : ""
  } | ${c.batch} | ${c.context} | ${spread(c.msPerStep)} | ${spread(c.tokensPerSecond)} | ${
    mib(c.cost.weightBytes)
  } | ${mib(c.cost.kvReadBytes)} | ${n(kvShare * 100)}% | ${n(c.intensity)} | ${n(c.gflopPerS)} | ${
    n(c.gbPerS)
  } | ${n(c.modelMs)} | ${n(c.msPerStep.median / c.modelMs)} |`;
}

const CELL_HEADER = [
  "| backend | attention | layout | b | context | ms/step (GPU time where timed) | wall tokens/s | weights read | K/V read | K/V share | FLOP/byte | GFLOP/s | GB/s | model ms | measured/model |",
  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
];

/** The axis's tables for the Markdown report. */
export function batchMarkdown(axis: BatchAxis, charts: string[]): string {
  const layouts = axis.cells.filter((c) =>
    axis.cells.some((o) =>
      o !== c && o.backend === c.backend && o.batch === c.batch && o.context === c.context &&
      o.attention === c.attention && o.layout !== c.layout
    )
  );
  return [
    `## Batched decoding (\`${axis.shape}\`)`,
    "",
    "Each step decodes one token for each of b sequences at the given context (caches primed " +
    "with seeded random keys and values). Weights are read once per step, each sequence's K/V " +
    "cache by itself, so the K/V share of traffic grows with b and context. Medians with " +
    "[min-max]; GPU time where timestamps exist.",
    "",
    ...CELL_HEADER,
    ...axis.cells.filter((c) => c.layout === "paged").map(cellRow),
    "",
    ...charts.filter((c) => c.startsWith("batch_")).map((c) => `![${c}](${c})\n`),
    "### KV-cache layouts side by side",
    "",
    "The same step under each layout (the sliding rows are a different model: a window of " +
    "half the context, so they read less), with the K/V memory each reserves against what its " +
    "sequences' positions use:",
    "",
    ...CELL_HEADER,
    ...layouts.map(cellRow),
    "",
    "| backend | attention | layout | b | context | K/V reserved | K/V used | used/reserved |",
    "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ...layouts.map((c) =>
      `| ${c.backend} | ${c.attention} | ${c.layout} | ${c.batch} | ${c.context} | ${
        mib(c.kvReservedBytes)
      } | ${mib(c.kvUsedBytes)} | ${n((c.kvUsedBytes / c.kvReservedBytes) * 100)}% |`
    ),
    "",
    batchCapacityTable(axis),
    "",
    batchCrossoverTable(axis),
    ...(axis.rejected.length
      ? [
        "",
        "Rejected (wrong logits, not timed):",
        ...axis.rejected.map((r) => `- ${r.variant}: ${r.reason}`),
      ]
      : []),
    ...(axis.skipped.length ? ["", "Not run:", ...axis.skipped.map((s) => `- ${s}`)] : []),
  ].join("\n");
}

/** Sequences per KV budget, by context, attention and layout. */
export function batchCapacityTable(axis: BatchAxis): string {
  const contexts = [...new Set(axis.capacity.map((c) => c.context))];
  const keys = [...new Set(axis.capacity.map((c) => `${c.attention}|${c.layout}`))];
  return [
    `Sequences whose K/V cache fits in ${mib(axis.budgetBytes)} (fp32; contiguous reserves the ` +
    "model's maxSeqLen per sequence, paged what the context needs in blocks of 16, sliding a " +
    "ring of a 512-position window):",
    "",
    `| attention | layout | ${contexts.map((c) => `context ${c}`).join(" | ")} |`,
    `| --- | --- | ${contexts.map(() => "---").join(" | ")} |`,
    ...keys.map((key) => {
      const [attention, layout] = key.split("|");
      return `| ${attention} | ${layout} | ${
        contexts.map((context) =>
          axis.capacity.find((c) =>
            c.context === context && c.attention === attention && c.layout === layout
          )?.sequences ?? "-"
        ).join(" | ")
      } |`;
    }),
  ].join("\n");
}

/** The crossover batch: predicted by the cost and time models, and measured. */
export function batchCrossoverTable(axis: BatchAxis): string {
  return [
    "Where cache traffic overtakes weight traffic: the batch at which a step reads as many K/V " +
    "bytes as weight bytes (cost model, at the context), the batch at which the time model " +
    "doubles the b = 1 step, and the first measured batch (of those timed, powers of two; at " +
    "the steps' mean position, a few dozen past the context) whose step took twice as long:",
    "",
    "| backend | attention | context | K/V = weights at b | time model doubles at b | measured doubling at b |",
    "| --- | --- | --- | --- | --- | --- |",
    ...axis.crossovers.map((c) =>
      `| ${c.backend} | ${c.attention} | ${c.context} | ${n(c.kvEqualsWeightsBatch)} | ${
        n(c.predictedDoublingBatch)
      } | ${c.measuredDoublingBatch ?? `> ${Math.max(...axis.batches)}`} |`
    ),
  ].join("\n");
}

/** The axis in the README: tokens/s by batch per attention variant, capacity and crossovers. */
export function batchReadme(axis: BatchAxis): string {
  const paged = axis.cells.filter((c) => c.layout === "paged");
  const groups = [...new Set(paged.map((c) => `${c.backend}|${c.context}|${c.attention}`))];
  return [
    `Batched decoding on \`${axis.shape}\` (paged KV cache): tokens/s over all sequences, ` +
    "median [min-max], by sequences per step:",
    "",
    `| backend | context | attention | ${axis.batches.map((b) => `b = ${b}`).join(" | ")} |`,
    `| --- | --- | --- | ${axis.batches.map(() => "---").join(" | ")} |`,
    ...groups.map((key) => {
      const [backend, context, attention] = key.split("|");
      return `| ${backend} | ${context} | ${attention} | ${
        axis.batches.map((b) => {
          const cell = paged.find((c) =>
            c.backend === backend && c.context === Number(context) && c.attention === attention &&
            c.batch === b
          );
          return cell ? spread(cell.tokensPerSecond) : "-";
        }).join(" | ")
      } |`;
    }),
    "",
    batchCrossoverTable(axis),
    "",
    batchCapacityTable(axis),
  ].join("\n");
}
