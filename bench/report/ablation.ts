/**
 * The GQA/MQA ablation in the report: attention alone by context (the controlled view), the
 * whole decode step split by a least-squares line into an intercept (weights) and a slope per
 * 1,000 positions, the context where K/V traffic equals weight traffic, and one sentence, made
 * from the numbers, on what the run shows.
 *
 * @module
 */
import type { AttentionAblation } from "../ablation.ts";
import type { DecoderCell } from "../matrix.ts";
import type { Backend } from "../measure.ts";
import type { RatioInterval } from "../stats.ts";

/** A least-squares line `y = intercept + slope x`. */
export interface LineFit {
  /** Value at x = 0. */
  intercept: number;
  /** Change per unit x. */
  slope: number;
  /** Coefficient of determination (1: every point on the line; NaN with constant y). */
  r2: number;
}

/**
 * The ordinary least-squares line through `(xs[i], ys[i])` (at least two distinct x).
 *
 * @example
 * ```ts
 * import { fitLine } from "./ablation.ts";
 * const fit = fitLine([0, 1, 2], [1, 3, 5]);
 * if (fit.intercept !== 1 || fit.slope !== 2 || fit.r2 !== 1) throw new Error("wrong");
 * ```
 */
export function fitLine(xs: readonly number[], ys: readonly number[]): LineFit {
  if (xs.length !== ys.length || new Set(xs).size < 2) {
    throw new RangeError(
      `fitLine: expected two or more distinct x with one y each, got ${xs.length} x, ${ys.length} y`,
    );
  }
  const n = xs.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    sxy += (xs[i] - mx) * (ys[i] - my);
    sxx += (xs[i] - mx) ** 2;
    syy += (ys[i] - my) ** 2;
  }
  const slope = sxy / sxx;
  const intercept = my - slope * mx;
  let residual = 0;
  for (let i = 0; i < n; i++) residual += (ys[i] - intercept - slope * xs[i]) ** 2;
  return { intercept, slope, r2: syy > 0 ? 1 - residual / syy : NaN };
}

/** One variant's whole decode step, split into weights and context. */
export interface DecodeFit {
  /** Shape. */
  shape: string;
  /** Backend. */
  backend: Backend;
  /** Attention variant. */
  attention: string;
  /** Wall ms per token at position 0: the weights' share (and fixed per-token costs). */
  interceptMs: number;
  /** Wall ms per token added by 1,000 positions of context. */
  msPer1000: number;
  /** The fit's r². */
  r2: number;
  /**
   * Whether the slope is resolved: positive with r² ≥ {@linkcode MIN_FIT_R2}. Over a short span
   * of contexts the noise outweighs the cache's growth and the fitted slope means nothing.
   */
  resolved: boolean;
  /** Weight bytes read per token (GQA/MQA: smaller `wk`/`wv` than MHA's). */
  weightBytesPerToken: number;
  /** K/V-cache bytes per position of context. */
  kvBytesPerToken: number;
  /** The context where K/V traffic equals weight traffic. */
  crossoverContext: number;
  /** Mean positions fitted. */
  positions: number[];
}

/** Contexts a decode series needs before a line is fitted through it. */
export const MIN_FIT_POINTS = 3;

/** The r² below which a fitted slope is reported as not resolved. */
export const MIN_FIT_R2 = 0.5;

/**
 * A line through each KV-cache decode series (wall ms/token median against mean position) of
 * every shape, backend and attention variant with {@linkcode MIN_FIT_POINTS} or more contexts.
 */
export function decodeFits(cells: readonly DecoderCell[]): DecodeFit[] {
  const decode = cells.filter((c) => c.phase === "decode" && c.cache === "kv-cache");
  const key = (c: DecoderCell) => `${c.shape}|${c.backend}|${c.attention}`;
  const fits: DecodeFit[] = [];
  for (const k of new Set(decode.map(key))) {
    const series = decode.filter((c) => key(c) === k);
    // two nearby points fit noise: a line needs three contexts
    if (new Set(series.map((c) => c.meanPosition)).size < MIN_FIT_POINTS) continue;
    const fit = fitLine(series.map((c) => c.meanPosition), series.map((c) => c.msPerToken.median));
    const first = series[0];
    fits.push({
      shape: first.shape,
      backend: first.backend,
      attention: first.attention,
      interceptMs: fit.intercept,
      msPer1000: fit.slope * 1000,
      r2: fit.r2,
      resolved: fit.slope > 0 && fit.r2 >= MIN_FIT_R2,
      weightBytesPerToken: first.weightBytesPerToken,
      kvBytesPerToken: first.kvBytesPerToken,
      crossoverContext: first.weightBytesPerToken / first.kvBytesPerToken,
      positions: series.map((c) => c.meanPosition),
    });
  }
  return fits;
}

/** Significant digits: 3. */
function n(x: number, digits = 3): string {
  if (!Number.isFinite(x)) return "-";
  if (x === 0) return "0";
  const magnitude = Math.floor(Math.log10(Math.abs(x)));
  return x.toFixed(Math.max(0, digits - 1 - magnitude));
}

/** "2.40x [1.67-3.50]" and, where the interval includes 1, "no difference". */
function ratio(r: RatioInterval): string {
  return `${n(r.ratio)}x [${n(r.lo)}-${n(r.hi)}]${r.differs ? "" : " (no difference)"}`;
}

/**
 * One sentence on `backend`, from the numbers: attention alone at the longest context (the
 * variant with the fewest K/V heads, its speedup over MHA with its interval beside its bytes
 * and FLOPs ratios, and which of the two its time follows: the one its interval holds, or the
 * exponent `e` of time ∝ bytes^e where it holds neither), the first context where a GQA/MQA
 * variant's attention beats MHA's, and the whole step's slopes and K/V-equals-weights context.
 */
export function ablationSentence(
  ablation: AttentionAblation | undefined,
  fits: readonly DecodeFit[],
  backend: Backend,
  shape: string,
): string {
  const parts: string[] = [];
  const speedups = ablation?.speedups.filter((s) => s.backend === backend) ?? [];
  if (speedups.length > 0) {
    const longest = Math.max(...speedups.map((s) => s.context));
    // the variant with the fewest K/V heads: where bytes and FLOPs part the most
    const best = speedups.filter((s) => s.context === longest)
      .sort((a, b) => b.bytesRatio - a.bytesRatio)[0];
    // Which ratio the interval holds: the bytes', the FLOPs' (equal work: 1), both or neither
    // (then time ∝ bytes^e, e between 0 for the FLOPs and 1 for the bytes).
    const { lo, hi } = best.measured;
    const holds = (x: number) => lo <= x && x <= hi;
    const e = Math.log(best.measured.ratio) / Math.log(best.bytesRatio);
    const follows = holds(best.bytesRatio) && !holds(best.flopsRatio)
      ? "its time follows bytes"
      : holds(best.flopsRatio) && !holds(best.bytesRatio)
      ? "its time follows FLOPs"
      : holds(best.bytesRatio)
      ? "the run cannot tell bytes from FLOPs"
      : `its time lies between the two, as bytes^${n(e, 2)}`;
    const pays = speedups.filter((s) => s.measured.differs && s.measured.ratio > 1)
      .sort((a, b) => a.context - b.context)[0];
    parts.push(
      `on ${backend}, attention alone at context ${longest} ${
        best.measured.differs
          ? `runs ${ratio(best.measured)} ${
            best.measured.ratio > 1 ? "faster" : "slower"
          } with ${best.attention} than with MHA`
          : `shows no difference between ${best.attention} and MHA (${n(best.measured.ratio)}x [${
            n(lo)
          }-${n(hi)}])`
      } (bytes ${n(best.bytesRatio)}x, FLOPs ${n(best.flopsRatio)}x: ${follows})` +
        (pays
          ? `, and GQA/MQA attention first beats MHA's at context ${pays.context} (${pays.attention} ${
            ratio(pays.measured)
          })`
          : ", and no GQA/MQA attention differs from MHA's at any measured context"),
    );
  }
  const own = fits.filter((f) => f.backend === backend && f.shape === shape);
  const mha = own.find((f) => f.attention === "MHA");
  const fewest = own.filter((f) => f.attention !== "MHA")
    .sort((a, b) => a.kvBytesPerToken - b.kvBytesPerToken)[0];
  if (mha && fewest && mha.resolved && fewest.resolved) {
    parts.push(
      `over the whole decode step of \`${shape}\` MHA costs ${n(mha.interceptMs)} ms/token plus ${
        n(mha.msPer1000)
      } ms per 1,000 positions against ${fewest.attention}'s ${n(fewest.interceptMs)} plus ${
        n(fewest.msPer1000)
      }, and MHA's K/V traffic equals its weight traffic at context ${
        Math.round(mha.crossoverContext)
      }`,
    );
  }
  if (parts.length === 0) return `On ${backend} this run measured no GQA/MQA comparison.`;
  const text = parts.join("; ");
  return `${text[0].toUpperCase()}${text.slice(1)}.`;
}

/** Markdown table rows helper. */
function table(header: string[], rows: string[][]): string {
  return [
    `| ${header.join(" | ")} |`,
    `|${header.map(() => "---").join("|")}|`,
    ...rows.map((r) => `| ${r.join(" | ")} |`),
  ].join("\n");
}

/** The ablation's section of the report: both views, the crossover, the sentence per backend. */
export function ablationMarkdown(
  ablation: AttentionAblation | undefined,
  cells: readonly DecoderCell[],
  shape: string,
): string {
  const fits = decodeFits(cells);
  const backends = [
    ...new Set([...(ablation?.cells ?? []).map((c) => c.backend), ...fits.map((f) => f.backend)]),
  ];
  const lines = ["## GQA/MQA ablation", ""];
  for (const backend of backends) {
    lines.push(`- ${ablationSentence(ablation, fits, backend, shape)}`);
  }
  lines.push(
    "",
    "The GQA/MQA models of the decoder matrix are `makeConfig({ ...config, nKvHeads })`, which " +
      "also shrinks `wk` and `wv`, so their weights are smaller than MHA's and their whole-step " +
      "speedups mix smaller weights with a smaller cache; the attention-only view below changes " +
      "nothing but the K/V heads and is the controlled one.",
    "",
  );
  if (ablation && ablation.cells.length > 0) {
    const clock = ablation.cells.some((c) => c.clock === "gpu")
      ? "GPU time on WebGPU (timestamp queries), wall on the CPU"
      : "wall time";
    lines.push(
      `### Attention alone (the controlled view)`,
      "",
      `One decoded token's attention in one layer: ${ablation.nHeads} query heads of ` +
        `${ablation.headDim} features, only the K/V heads changing; ms per token and layer ` +
        `(${clock}), median [min-max], K/V bytes read per token and layer beside it.`,
      "",
    );
    const keys = [...new Set(ablation.cells.map((c) => `${c.backend}|${c.attention}`))];
    lines.push(table(
      ["backend", "attention", ...ablation.contexts.map((c) => `ctx ${c}`)],
      keys.map((key) => {
        const series = ablation.cells.filter((c) => `${c.backend}|${c.attention}` === key);
        return [
          series[0].backend,
          series[0].attention,
          ...ablation.contexts.map((ctx) => {
            const c = series.find((s) => s.context === ctx);
            return c
              ? `${n(c.msPerToken.median)} [${n(c.msPerToken.min)}-${n(c.msPerToken.max)}] ms, ${
                n(c.kvBytesPerToken / 1024)
              } KiB`
              : "-";
          }),
        ];
      }),
    ));
    lines.push(
      "",
      "Speedup over MHA (ratio of median ms, bootstrap 95% interval; a difference only where the " +
        "interval excludes 1), bytes and FLOPs ratios beside it:",
      "",
      table(
        ["backend", "attention", "context", "speedup", "bytes", "FLOPs"],
        ablation.speedups.map((s) => [
          s.backend,
          s.attention,
          `${s.context}`,
          ratio(s.measured),
          `${n(s.bytesRatio)}x`,
          `${n(s.flopsRatio)}x`,
        ]),
      ),
      "",
    );
    if (ablation.rejected.length) {
      lines.push(...ablation.rejected.map((r) => `- REJECTED: ${r}`), "");
    }
  }
  if (fits.length > 0) {
    lines.push(
      "### The whole decode step: intercept and slope",
      "",
      "A least-squares line through each KV-cache decode series of three or more contexts (wall ms/token against mean " +
        "position): the intercept is the per-token cost with no context (weights and fixed " +
        "costs, GQA/MQA's smaller `wk`/`wv` included), the slope the cost of context. " +
        "The last column is the context where K/V traffic equals weight traffic (weight bytes " +
        "over K/V bytes per position).",
      "",
      table(
        [
          "shape",
          "backend",
          "attention",
          "intercept ms/token",
          "ms per 1,000 positions",
          "r²",
          "weights",
          "K/V per position",
          "K/V = weights at context",
          "positions fitted",
        ],
        fits.map((f) => [
          f.shape,
          f.backend,
          f.attention,
          n(f.interceptMs),
          n(f.msPer1000),
          n(f.r2),
          `${n(f.weightBytesPerToken / 2 ** 20)} MiB`,
          `${n(f.kvBytesPerToken / 1024)} KiB`,
          `${Math.round(f.crossoverContext)}${
            f.positions.some((p) => p >= f.crossoverContext) ? "" : " (beyond the fit)"
          }`,
          `${f.positions[0]}-${f.positions.at(-1)}`,
        ]),
      ),
      "",
    );
  }
  return lines.join("\n");
}
