/**
 * Statistics of comparisons between repeated measurements (their summary, {@linkcode Spread},
 * lives with the timer in `gpu/timing.ts`): ratios of medians with seeded bootstrap confidence
 * intervals, and round-robin sampling whose extra rounds go to both sides of a comparison.
 *
 * @module
 */
import { type Spread, summarize } from "../gpu/timing.ts";
import { Rng } from "../reference/random.ts";

/**
 * `spread` with every figure multiplied by `factor` (> 0, e.g. a unit change).
 *
 * @example
 * ```ts
 * import { scaleSpread } from "./stats.ts";
 * import { summarize } from "../gpu/timing.ts";
 * if (scaleSpread(summarize([1, 2, 3]), 1000).max !== 3000) throw new Error("wrong");
 * ```
 */
export function scaleSpread(spread: Spread, factor: number): Spread {
  return {
    median: spread.median * factor,
    min: spread.min * factor,
    max: spread.max * factor,
    q1: spread.q1 * factor,
    q3: spread.q3 * factor,
    n: spread.n,
  };
}

/**
 * `numerator / spread`'s samples (a time spread turned into a rate): the median maps to the
 * median, min and max swap.
 *
 * @example
 * ```ts
 * import { invertSpread } from "./stats.ts";
 * import { summarize } from "../gpu/timing.ts";
 * const rate = invertSpread(summarize([1, 2, 4]), 1000); // ms per call -> calls per second
 * if (rate.median !== 500 || rate.min !== 250 || rate.max !== 1000) throw new Error("wrong");
 * ```
 */
export function invertSpread(spread: Spread, numerator: number): Spread {
  return {
    median: numerator / spread.median,
    min: numerator / spread.max,
    max: numerator / spread.min,
    q1: numerator / spread.q3,
    q3: numerator / spread.q1,
    n: spread.n,
  };
}

/** The median of `samples` (at least one). */
function median(samples: readonly number[]): number {
  return summarize(samples).median;
}

/** The `p` quantile (0..1) of ascending `sorted`, linearly interpolated. */
function quantile(sorted: readonly number[], p: number): number {
  const at = (sorted.length - 1) * p;
  const lo = Math.floor(at);
  const hi = Math.ceil(at);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (at - lo);
}

/**
 * A speedup: the ratio of two medians with its bootstrap confidence interval, and whether the
 * data show a difference (the interval excludes 1).
 */
export interface RatioInterval {
  /** `median(baseline) / median(variant)`. */
  ratio: number;
  /** Lower end of the interval. */
  lo: number;
  /** Upper end of the interval. */
  hi: number;
  /** Confidence of the interval, e.g. 0.95. */
  confidence: number;
  /** Bootstrap resamples the interval was drawn from (0: too few samples for one). */
  resamples: number;
  /** True when the interval excludes 1: the two differ. */
  differs: boolean;
}

/** Options of {@linkcode bootstrapRatio}. */
export interface BootstrapOptions {
  /** Resamples (default 2000). */
  resamples?: number;
  /** Confidence (default 0.95). */
  confidence?: number;
  /** Seed of the resampling (default 1): the same data give the same interval. */
  seed?: number;
}

/**
 * The ratio of medians `baseline / variant` (times: the speedup of `variant`) with a seeded
 * percentile-bootstrap confidence interval: each side resampled with replacement, the ratio of
 * the resampled medians taken `resamples` times, the interval between its `(1 - confidence) / 2`
 * and `(1 + confidence) / 2` quantiles. With fewer than 2 samples on a side there is no
 * interval (lo = hi = ratio) and no claimed difference.
 *
 * @example
 * ```ts
 * import { bootstrapRatio } from "./stats.ts";
 * const r = bootstrapRatio([10, 10, 10], [5, 5, 5]); // no spread: the interval is the point
 * if (r.ratio !== 2 || r.lo !== 2 || r.hi !== 2 || !r.differs) throw new Error("wrong");
 * ```
 */
export function bootstrapRatio(
  baseline: readonly number[],
  variant: readonly number[],
  options: BootstrapOptions = {},
): RatioInterval {
  const { resamples = 2000, confidence = 0.95, seed = 1 } = options;
  const ratio = median(baseline) / median(variant);
  if (baseline.length < 2 || variant.length < 2) {
    return { ratio, lo: ratio, hi: ratio, confidence, resamples: 0, differs: false };
  }
  const rng = new Rng(seed);
  const draw = (samples: readonly number[], into: number[]) => {
    for (let i = 0; i < samples.length; i++) {
      into[i] = samples[rng.nextUint32() % samples.length];
    }
    return median(into);
  };
  const a = new Array<number>(baseline.length);
  const b = new Array<number>(variant.length);
  const ratios = new Float64Array(resamples);
  for (let i = 0; i < resamples; i++) ratios[i] = draw(baseline, a) / draw(variant, b);
  ratios.sort();
  const sorted = Array.from(ratios);
  const lo = quantile(sorted, (1 - confidence) / 2);
  const hi = quantile(sorted, (1 + confidence) / 2);
  return { ratio, lo, hi, confidence, resamples, differs: lo > 1 || hi < 1 };
}

/** Extra rounds for the variants whose samples have not settled: where the noise is. */
export interface ExtraRounds<V, S> {
  /** At most this many extra rounds. */
  rounds: number;
  /** Whether a variant needs more samples. */
  unsettled: (samples: readonly S[], variant: V) => boolean;
  /**
   * The variants `variant` is compared with: an extra round for an unsettled variant also
   * samples these (both sides of a comparison, interleaved). Default: every variant.
   */
  partners?: (variant: V) => readonly V[];
}

/**
 * Runs `measure(variant, rep)` for `reps` rounds, each round visiting every variant once in an
 * order rotated by one per round, so that drift (thermal, other load) does not line up with a
 * variant; then up to `extra.rounds` more rounds over the variants still `unsettled` and the
 * variants they are compared with (`extra.partners`, by default all), so that both sides of a
 * comparison get the same extra samples, interleaved. Returns each variant's samples.
 *
 * @example
 * ```ts
 * import { roundRobin } from "./stats.ts";
 * const order: string[] = [];
 * const samples = await roundRobin(["a", "b", "c"], 3, (v) => { order.push(v); return 1; });
 * if (order.join("") !== "abcbcacab" || samples.get("a")!.length !== 3) throw new Error("wrong");
 * ```
 */
export async function roundRobin<V, S = number>(
  variants: readonly V[],
  reps: number,
  measure: (variant: V, rep: number) => Promise<S> | S,
  extra?: ExtraRounds<V, S>,
): Promise<Map<V, S[]>> {
  const samples = new Map<V, S[]>(variants.map((v) => [v, []]));
  const round = async (active: readonly V[], rep: number) => {
    for (let i = 0; i < active.length; i++) {
      const variant = active[(i + rep) % active.length];
      samples.get(variant)!.push(await measure(variant, rep));
    }
  };
  for (let rep = 0; rep < reps; rep++) await round(variants, rep);
  for (let rep = reps; rep < reps + (extra?.rounds ?? 0); rep++) {
    const unsettled = variants.filter((v) => extra!.unsettled(samples.get(v)!, v));
    if (unsettled.length === 0) break;
    const wanted = new Set<V>(unsettled);
    for (const v of unsettled) for (const p of extra!.partners?.(v) ?? variants) wanted.add(p);
    const active = variants.filter((v) => wanted.has(v));
    await round(active, rep);
  }
  return samples;
}

/**
 * Whether samples spread wider than `tolerance` of their median (min to max): a sign that more
 * samples are worth taking.
 *
 * @example
 * ```ts
 * import { isNoisy } from "./stats.ts";
 * if (!isNoisy([1, 1.5, 1], 0.25) || isNoisy([1, 1.1, 1], 0.25)) throw new Error("wrong");
 * ```
 */
export function isNoisy(samples: readonly number[], tolerance: number): boolean {
  if (samples.length < 2) return true;
  const s = summarize(samples);
  return (s.max - s.min) / s.median > tolerance;
}
