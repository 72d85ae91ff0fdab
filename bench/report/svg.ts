/**
 * Small, dependency-free SVG charts for the benchmark report: line charts (log-scaled axes)
 * and horizontal bar charts.
 *
 * @module
 */

/** Palette, exported so related charts can color the same variant alike. */
export const PALETTE: readonly string[] = [
  "#1f77b4",
  "#ff7f0e",
  "#2ca02c",
  "#d62728",
  "#9467bd",
  "#8c564b",
  "#e377c2",
  "#7f7f7f",
  "#bcbd22",
  "#17becf",
];

/** One line of a line chart. */
export interface Series {
  /** Legend label. */
  name: string;
  /** (x, y) points; x ascending. */
  points: [number, number][];
  /** Stroke color; picked from a palette by default. */
  color?: string;
  /** Dashed line. */
  dashed?: boolean;
  /** Points only, no line between them (a scatter). */
  markersOnly?: boolean;
  /** Per point, the [low, high] of its error bar (e.g. min and max of the samples). */
  ranges?: [number, number][];
}

const FONT = 'font-family="system-ui, sans-serif" font-size="12"';

function escape(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

function ticks(lo: number, hi: number, log: boolean): number[] {
  if (log) {
    const out: number[] = [];
    const steps = Math.log10(hi / lo) <= 2 ? [1, 2, 5] : [1];
    for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
      for (const m of steps) out.push(m * 10 ** e);
    }
    return out.filter((t) => t >= lo / 1.0001 && t <= hi * 1.0001).length >= 2
      ? out.filter((t) => t >= lo / 1.0001 && t <= hi * 1.0001)
      : [lo, hi];
  }
  const step = 10 ** Math.floor(Math.log10((hi - lo) / 4 || 1));
  const nice = [1, 2, 5, 10].map((m) => m * step).find((s) => (hi - lo) / s <= 6) ?? step * 10;
  const out: number[] = [];
  for (let t = Math.ceil(lo / nice) * nice; t <= hi + 1e-9; t += nice) {
    out.push(Number(t.toPrecision(6)));
  }
  return out;
}

function label(value: number): string {
  if (value >= 1e6 || (value > 0 && value < 1e-2)) return value.toExponential(0);
  return Number(value.toPrecision(3)).toString();
}

/**
 * A line chart; `logX` plots x on a log2 axis (context lengths), `logY` y on log10.
 *
 * @example
 * ```ts
 * import { lineChart } from "./svg.ts";
 * const svg = lineChart({ title: "t", xLabel: "x", yLabel: "y", series: [{ name: "a", points: [[16, 1], [32, 2]] }] });
 * if (!svg.startsWith("<svg")) throw new Error("wrong");
 * ```
 */
export function lineChart(options: {
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  logX?: boolean;
  logY?: boolean;
}): string {
  const { title, xLabel, yLabel, series, logX = true, logY = true } = options;
  const width = 760, height = 440, left = 70, right = 200, top = 40, bottom = 50;
  const all = series.flatMap((s) => [
    ...s.points,
    ...(s.ranges ?? []).flatMap(([lo, hi], i) =>
      s.points[i] ? [[s.points[i][0], lo], [s.points[i][0], hi]] as [number, number][] : []
    ),
  ]).filter(([x, y]) => x > 0 && (!logY || y > 0));
  if (all.length === 0) return emptyChart(title, width, height);
  const fx = (x: number) => (logX ? Math.log2(x) : x);
  const fy = (y: number) => (logY ? Math.log10(y) : y);
  let [x0, x1] = [Math.min(...all.map((p) => fx(p[0]))), Math.max(...all.map((p) => fx(p[0])))];
  let [y0, y1] = [Math.min(...all.map((p) => fy(p[1]))), Math.max(...all.map((p) => fy(p[1])))];
  if (x0 === x1) [x0, x1] = [x0 - 1, x1 + 1];
  if (y0 === y1) [y0, y1] = [y0 - 1, y1 + 1];
  if (!logY) y0 = Math.min(0, y0);
  const px = (x: number) => left + ((fx(x) - x0) / (x1 - x0)) * (width - left - right);
  const py = (y: number) => height - bottom - ((fy(y) - y0) / (y1 - y0)) * (height - top - bottom);
  const parts: string[] = [];
  const xTicks = logX
    ? Array.from({ length: Math.round(x1 - x0) + 1 }, (_, i) => 2 ** (Math.round(x0) + i))
    : ticks(x0, x1, false);
  for (const t of xTicks) {
    parts.push(
      `<line x1="${px(t)}" y1="${top}" x2="${px(t)}" y2="${height - bottom}" stroke="#eee"/>`,
    );
    parts.push(
      `<text x="${px(t)}" y="${height - bottom + 16}" text-anchor="middle" ${FONT}>${
        logX ? String(t) : label(t)
      }</text>`,
    );
  }
  const yTicks = ticks(logY ? 10 ** y0 : y0, logY ? 10 ** y1 : y1, logY);
  for (const t of yTicks) {
    parts.push(
      `<line x1="${left}" y1="${py(t)}" x2="${width - right}" y2="${py(t)}" stroke="#eee"/>`,
    );
    parts.push(
      `<text x="${left - 6}" y="${py(t) + 4}" text-anchor="end" ${FONT}>${label(t)}</text>`,
    );
  }
  series.forEach((s, i) => {
    const color = s.color ?? PALETTE[i % PALETTE.length];
    const dash = s.dashed ? ' stroke-dasharray="6 4"' : "";
    const points = s.points.filter(([x, y]) => x > 0 && (!logY || y > 0));
    if (points.length > 0) {
      const path = points.map(([x, y], j) =>
        `${j ? "L" : "M"}${px(x).toFixed(1)},${py(y).toFixed(1)}`
      ).join(" ");
      if (!s.markersOnly) {
        parts.push(`<path d="${path}" fill="none" stroke="${color}" stroke-width="2"${dash}/>`);
      }
      for (const [x, y] of points) {
        parts.push(
          `<circle cx="${px(x).toFixed(1)}" cy="${py(y).toFixed(1)}" r="3" fill="${color}"/>`,
        );
      }
      s.ranges?.forEach(([lo, hi], j) => {
        const x = s.points[j]?.[0];
        if (x === undefined || !(x > 0) || (logY && !(lo > 0))) return;
        const cx = px(x).toFixed(1);
        const [y0, y1] = [py(lo).toFixed(1), py(hi).toFixed(1)];
        parts.push(
          `<path d="M${cx},${y0} L${cx},${y1} M${+cx - 4},${y0} L${+cx + 4},${y0} M${
            +cx - 4
          },${y1} L${+cx + 4},${y1}" stroke="${color}" stroke-width="1.5" class="error-bar"/>`,
        );
      });
    }
    const ly = top + 16 * i;
    parts.push(
      `<line x1="${width - right + 8}" y1="${ly - 8}" x2="${width - right + 28}" y2="${
        ly - 8
      }" stroke="${color}" stroke-width="2"${dash}/>`,
    );
    parts.push(`<text x="${width - right + 30}" y="${ly - 4}" ${FONT}>${escape(s.name)}</text>`);
  });
  return frame(title, width, height, [
    `<rect x="${left}" y="${top}" width="${width - left - right}" height="${
      height - top - bottom
    }" fill="none" stroke="#999"/>`,
    ...parts,
    `<text x="${(left + width - right) / 2}" y="${height - 12}" text-anchor="middle" ${FONT}>${
      escape(xLabel)
    }</text>`,
    `<text transform="translate(16 ${
      (top + height - bottom) / 2
    }) rotate(-90)" text-anchor="middle" ${FONT}>${escape(yLabel)}</text>`,
  ]);
}

/**
 * A horizontal bar chart, one bar per entry, labelled with `format(value)`.
 *
 * @example
 * ```ts
 * import { barChart } from "./svg.ts";
 * const svg = barChart({ title: "t", unit: "x", bars: [{ name: "a", value: 2 }] });
 * if (!svg.includes("<rect")) throw new Error("wrong");
 * ```
 */
export function barChart(options: {
  title: string;
  unit: string;
  bars: { name: string; value: number; range?: [number, number] }[];
  format?: (value: number) => string;
  max?: number;
}): string {
  const { title, unit, bars, format = label } = options;
  const width = 760, left = 260, right = 110, top = 40, barHeight = 18, gap = 6;
  const height = top + bars.length * (barHeight + gap) + 40;
  if (bars.length === 0) return emptyChart(title, width, 120);
  const max = options.max ??
    Math.max(
      ...bars.map((b) => Math.max(b.value, b.range?.[1] ?? 0)).filter(Number.isFinite),
      1e-12,
    );
  const parts = bars.flatMap((bar, i) => {
    const y = top + i * (barHeight + gap);
    const scale = (v: number) => Math.max(1, (Math.min(v, max) / max) * (width - left - right));
    const w = scale(bar.value);
    const whisker = bar.range && Number.isFinite(bar.range[0]) && Number.isFinite(bar.range[1])
      ? [
        `<path d="M${left + scale(bar.range[0])},${y + barHeight / 2} L${
          left + scale(bar.range[1])
        },${y + barHeight / 2}" stroke="#333" stroke-width="1.5" class="error-bar"/>`,
      ]
      : [];
    return [
      `<text x="${left - 8}" y="${y + 13}" text-anchor="end" ${FONT}>${escape(bar.name)}</text>`,
      `<rect x="${left}" y="${y}" width="${w.toFixed(1)}" height="${barHeight}" fill="${
        PALETTE[0]
      }"/>`,
      ...whisker,
      `<text x="${left + w + 6}" y="${y + 13}" ${FONT}>${escape(format(bar.value))}</text>`,
    ];
  });
  parts.push(`<text x="${left}" y="${height - 12}" ${FONT}>${escape(unit)}</text>`);
  return frame(title, width, height, parts);
}

function frame(title: string, width: number, height: number, parts: string[]): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${
      width / 2
    }" y="22" text-anchor="middle" font-family="system-ui, sans-serif" font-size="15" font-weight="bold">${
      escape(title)
    }</text>`,
    ...parts,
    "</svg>",
    "",
  ].join("\n");
}

function emptyChart(title: string, width: number, height: number): string {
  return frame(title, width, height, [
    `<text x="${width / 2}" y="${height / 2}" text-anchor="middle" ${FONT}>no data</text>`,
  ]);
}
