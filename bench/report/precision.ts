/**
 * The precision axis in the report: the table (one row per shape, backend and precision pair),
 * the targets quantized weights must reach, and the speed-against-accuracy chart.
 *
 * @module
 */
import type { PrecisionCell } from "../precision.ts";
import { targetVerdicts } from "../precision_cells.ts";
import { KV_FORMATS, type KvFormat } from "../../reference/kv_cache.ts";
import { TENSOR_FORMATS, type TensorFormat } from "../../reference/quantize.ts";

const fmt = (n: number | undefined, digits = 2) => n === undefined ? "" : n.toFixed(digits);
const mib = (n: number) => (n / 2 ** 20).toFixed(n < 2 ** 20 ? 3 : 1);
const exp = (n: number) => n === 0 ? "0" : n.toExponential(1);

/**
 * The precision table as Markdown: one row per shape, backend and precision pair.
 *
 * @example
 * ```ts ignore
 * await Deno.writeTextFile("precision.md", precisionMarkdown(cells));
 * ```
 */
export function precisionMarkdown(cells: readonly PrecisionCell[]): string {
  const lines = [
    "| shape | backend | weights | KV | ms/token (min–max) | speedup vs f32 [95% CI] | bytes ratio | read ceiling | ms: bytes + dispatches + rest | dispatches/token | weights MiB | KV KiB/position | mean KL [95% CI] | KL p99 | KL max | same top-1 | Δp f32 top | logit NMSE | perplexity (f32) |",
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
  ];
  for (const c of cells) {
    const time = c.msPerToken === undefined
      ? `not run: ${c.skipped}`
      : `${fmt(c.msPerToken)} (${fmt(c.spread![0])}–${fmt(c.spread![1])})`;
    // Perplexity only where it means something: a real model over a real text.
    const perplexity = c.perplexity === undefined
      ? ""
      : `${fmt(c.perplexity, 4)} (${fmt(c.f32Perplexity, 4)})`;
    lines.push(
      `| ${c.shape} | ${c.backend} | ${c.weights} | ${c.kv} | ${time} | ${speedupText(c)} | ${
        fmt(c.bytesRatio)
      }x | ${
        c.readCeilingFraction === undefined ? "" : `${(100 * c.readCeilingFraction).toFixed(0)}%`
      } | ${termsText(c)} | ${c.dispatchesPerToken ?? ""} | ${mib(c.weightBytes)} | ${
        fmt(c.kvBytesPerPosition / 1024, 1)
      } | ${exp(c.kl.mean)} [${exp(c.kl.low)}, ${exp(c.kl.high)}] | ${exp(c.klP99)} | ${
        exp(c.klMax)
      } | ${fmt(c.sameTop1, 3)} | ${exp(c.topDeltaP)} | ${exp(c.nmse)} | ${perplexity} |`,
    );
  }
  return lines.join("\n") + "\n";
}

/** "1.21x [1.15–1.30]", or the point alone where there is no interval. */
function speedupText(c: PrecisionCell): string {
  if (!c.speedup) return "";
  const interval = c.speedupInterval;
  return interval
    ? `${fmt(c.speedup)}x [${fmt(interval[0])}–${fmt(interval[1])}]`
    : `${fmt(c.speedup)}x`;
}

/** "3.10 + 1.20 + 4.00": the step's terms in ms/token. */
function termsText(c: PrecisionCell): string {
  const t = c.terms;
  return t ? `${fmt(t.bytes)} + ${fmt(t.dispatches)} + ${fmt(t.rest)}` : "";
}

/** What each term of a decode step is, for the targets table. */
const TERM_NAMES = {
  bytes: "bytes (at the read ceiling)",
  dispatches: "dispatches",
  rest: "arithmetic (dequantization) and the rest",
} as const;

/**
 * The targets quantized weights must reach against f32 (`PRECISION_TARGETS`), judged on every
 * shape: the speedup with its 95% interval, met / missed / not resolved, whether it is faster
 * than f32 outside noise, and where a target is not met the step's terms beside f32's and the
 * term that holds it back. Empty when no shape has a target's pairs.
 *
 * @example
 * ```ts ignore
 * console.log(precisionTargetsMarkdown(cells));
 * ```
 */
export function precisionTargetsMarkdown(cells: readonly PrecisionCell[]): string {
  const verdicts = targetVerdicts(cells);
  if (verdicts.length === 0) return "";
  const lines = [
    "| shape | backend | weights | target | speedup vs f32 [95% CI] | verdict | faster than f32 | ms: bytes + dispatches + rest (f32's) | held back by |",
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
  ];
  for (const v of verdicts) {
    const base = cells.find((c) =>
      c.shape === v.shape && c.backend === v.target.backend && c.weights === "f32" &&
      c.kv === "f32"
    )!;
    lines.push(
      `| ${v.shape} | ${v.target.backend} | ${v.target.weights} | >= ${
        fmt(v.target.speedup, 1)
      }x | ${speedupText(v.cell)} | ${v.verdict} | ${v.fasterThanF32 ? "yes" : "no"} | ${
        v.cell.terms ? `${termsText(v.cell)} (${termsText(base)})` : ""
      } | ${v.heldBackBy ? TERM_NAMES[v.heldBackBy] : ""} |`,
    );
  }
  return lines.join("\n") + "\n";
}

/**
 * `precision.md`: the targets (where a shape has their pairs), then every pair.
 *
 * @example
 * ```ts ignore
 * await Deno.writeTextFile("precision.md", formatPrecisionMarkdown(cells));
 * ```
 */
export function formatPrecisionMarkdown(cells: readonly PrecisionCell[]): string {
  const targets = precisionTargetsMarkdown(cells);
  return [
    "# Precision axis",
    "",
    ...(targets
      ? [
        "## Targets: quantized weights against f32 on the same backend",
        "",
        "Decode wall ms/token with the f32 KV cache, samples interleaved with f32/f32's; a target is met when the speedup's 95% interval lies at or above it. A step's terms: the bytes a token reads (one row of a separate embedding table) at the backend's read ceiling (the read probe's rate, or a faster kernel's beyond the last-level cache, as in the roofline section), dispatches per token at the measured cost of one, and the rest of the measured time (arithmetic, dequantization included). Where a target is not met, its shortfall (the format's ms/token minus f32's over the target) splits exactly into the terms' excesses (each term minus f32's same term over the target); the largest names the term holding it back. Bytes and dispatches are each measured alone and can overlap in a real step: a negative rest says by how much.",
        "",
        targets,
      ]
      : []),
    "## Every pair",
    "",
    precisionMarkdown(cells),
  ].join("\n");
}

/**
 * Speed against accuracy, one point per precision pair: x the mean KL divergence from f32 (log
 * scale; f32/f32 at the left edge), y the speedup against f32; one panel per shape and
 * backend.
 *
 * @example
 * ```ts ignore
 * await Deno.writeTextFile("precision.svg", precisionChart(cells));
 * ```
 */
export function precisionChart(cells: readonly PrecisionCell[]): string {
  const panels = [...new Set(cells.map((c) => `${c.shape} · ${c.backend}`))];
  const [w, h, pad] = [360, 240, 48];
  // Room for the panels and for the legend's one line (a weight and a KV format each 90 px).
  const width = Math.max(
    Math.max(1, panels.length) * w,
    (TENSOR_FORMATS.length + KV_FORMATS.length) * 90 + 20,
  );
  const colors: Record<TensorFormat, string> = {
    f32: "#444444",
    f16: "#1f77b4",
    q8_0: "#2ca02c",
    q4_0: "#d62728",
    q6_k: "#9467bd",
    q5_k: "#8c564b",
    q4_k: "#ff7f0e",
  };
  const shapesOf: Record<KvFormat, (x: number, y: number, color: string) => string> = {
    f32: (x, y, c) => `<circle cx="${x}" cy="${y}" r="5" fill="${c}"/>`,
    f16: (x, y, c) => `<rect x="${x - 4.5}" y="${y - 4.5}" width="9" height="9" fill="${c}"/>`,
    q8_0: (x, y, c) =>
      `<path d="M${x} ${y - 6}L${x + 6} ${y + 5}L${x - 6} ${y + 5}Z" fill="${c}"/>`,
  };
  const kls = cells.filter((c) => c.kl.mean > 0).map((c) => Math.log10(c.kl.mean));
  const [lo, hi] = [Math.floor(Math.min(-8, ...kls)) - 1, Math.ceil(Math.max(-1, ...kls))];
  const parts: string[] = [];
  panels.forEach((panel, p) => {
    const ox = p * w;
    const mine = cells.filter((c) => `${c.shape} · ${c.backend}` === panel && c.speedup);
    const maxSpeedup = Math.max(1.5, ...mine.map((c) => c.speedup!)) * 1.1;
    const x = (c: PrecisionCell) =>
      ox + pad + ((c.kl.mean > 0 ? Math.log10(c.kl.mean) : lo) - lo) / (hi - lo) * (w - 2 * pad);
    const y = (s: number) => h - pad - s / maxSpeedup * (h - 2 * pad);
    parts.push(
      `<text x="${ox + w / 2}" y="18" text-anchor="middle" font-weight="bold">${panel}</text>`,
      `<line x1="${ox + pad}" y1="${h - pad}" x2="${ox + w - pad}" y2="${h - pad}" stroke="#888"/>`,
      `<line x1="${ox + pad}" y1="${pad}" x2="${ox + pad}" y2="${h - pad}" stroke="#888"/>`,
      `<line x1="${ox + pad}" y1="${y(1)}" x2="${ox + w - pad}" y2="${
        y(1)
      }" stroke="#ccc" stroke-dasharray="4 3"/>`,
      `<text x="${ox + pad - 4}" y="${y(1) + 4}" text-anchor="end">1x</text>`,
      `<text x="${ox + pad - 4}" y="${pad + 4}" text-anchor="end">${fmt(maxSpeedup, 1)}x</text>`,
      `<text x="${ox + pad}" y="${h - pad + 16}">${lo === Math.floor(lo) ? "f32" : ""}</text>`,
      `<text x="${ox + w - pad}" y="${h - pad + 16}" text-anchor="end">1e${hi}</text>`,
      `<text x="${ox + w / 2}" y="${
        h - 8
      }" text-anchor="middle">mean KL divergence from f32 (log)</text>`,
    );
    for (const c of mine) parts.push(shapesOf[c.kv](x(c), y(c.speedup!), colors[c.weights]));
  });
  const legend = [
    ...TENSOR_FORMATS.map((f, i) =>
      `<circle cx="${20 + i * 90}" cy="${h + 14}" r="5" fill="${colors[f]}"/><text x="${
        30 + i * 90
      }" y="${h + 18}">weights ${f}</text>`
    ),
    ...KV_FORMATS.map((f, i) => {
      const at = 20 + (TENSOR_FORMATS.length + i) * 90;
      return `${shapesOf[f](at, h + 14, "#888")}<text x="${at + 10}" y="${h + 18}">KV ${f}</text>`;
    }),
  ];
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${
    h + 30
  }" font-family="sans-serif" font-size="11"><rect width="100%" height="100%" fill="white"/>${
    parts.join("")
  }${legend.join("")}</svg>\n`;
}
