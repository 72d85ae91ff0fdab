/**
 * Statistics of comparisons between repeated measurements (their summary, {@linkcode Spread},
 * lives with the timer in `gpu/timing.ts`): ratios of medians with the range their samples allow, and the "within noise" test.
 *
 * @module
 */
import { type Spread, summarize } from "../gpu/timing.ts";

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

/** A ratio of medians with the range the samples allow. */
export interface RatioRange {
  /** `baseline.median / variant.median`. */
  ratio: number;
  /** `baseline.min / variant.max`: the least the samples allow. */
  lo: number;
  /** `baseline.max / variant.min`: the most. */
  hi: number;
  /** True when the two min-max ranges overlap: the data cannot tell them apart. */
  withinNoise: boolean;
}

/**
 * Whether two min-max ranges overlap.
 *
 * @example
 * ```ts
 * import { overlaps } from "./stats.ts";
 * import { summarize } from "../gpu/timing.ts";
 * if (!overlaps(summarize([1, 3]), summarize([2, 4])) || overlaps(summarize([1, 2]), summarize([3, 4]))) {
 *   throw new Error("wrong");
 * }
 * ```
 */
export function overlaps(a: Spread, b: Spread): boolean {
  return a.min <= b.max && b.min <= a.max;
}

/**
 * The speedup of `variant` over `baseline` (both times): the ratio of medians, its range, and
 * whether the ranges overlap ("within noise").
 *
 * @example
 * ```ts
 * import { ratioOfMedians } from "./stats.ts";
 * import { summarize } from "../gpu/timing.ts";
 * const r = ratioOfMedians(summarize([10, 11, 12]), summarize([4, 5, 6]));
 * if (r.ratio !== 11 / 5 || r.lo !== 10 / 6 || r.hi !== 12 / 4 || r.withinNoise) throw new Error("wrong");
 * ```
 */
export function ratioOfMedians(baseline: Spread, variant: Spread): RatioRange {
  return {
    ratio: baseline.median / variant.median,
    lo: baseline.min / variant.max,
    hi: baseline.max / variant.min,
    withinNoise: overlaps(baseline, variant),
  };
}

/** Extra rounds for the variants whose samples have not settled: where the noise is. */
export interface ExtraRounds<V, S> {
  /** At most this many extra rounds. */
  rounds: number;
  /** Whether a variant needs more samples. */
  unsettled: (samples: readonly S[], variant: V) => boolean;
}

/**
 * Runs `measure(variant, rep)` for `reps` rounds, each round visiting every variant once in an
 * order rotated by one per round, so that drift (thermal, other load) does not line up with a
 * variant; then up to `extra.rounds` more rounds over the variants still `unsettled`. Returns
 * each variant's samples.
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
    const active = variants.filter((v) => extra!.unsettled(samples.get(v)!, v));
    if (active.length === 0) break;
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
