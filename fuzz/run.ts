/**
 * The fuzzing loop: for each case, a valid file from a target, mutated (or, one case in ten,
 * left valid), loaded and run. Every case must run or throw the documented error naming the
 * file, within a time limit and without a large allocation; anything else is a failure,
 * reported with what reproduces it.
 *
 * @module
 */
import { Rng } from "../reference/random.ts";
import { mutate } from "./mutate.ts";
import type { FuzzTarget } from "./target.ts";

/** Options of {@linkcode runFuzz}. */
export interface FuzzOptions {
  /** Cases in all, spread over the targets in turn. */
  cases: number;
  /** Seed of every choice: the same seed repeats the same cases. */
  seed: number;
  /** A case slower than this many milliseconds is a failure (default 2000). */
  maxCaseMs?: number;
  /** Resident memory a case may add: this many bytes plus 16 × the file (default 64 MiB). */
  maxGrowthBytes?: number;
  /** Called after each case. */
  onCase?: (result: FuzzCase) => void;
}

/** One case's outcome. */
export interface FuzzCase {
  /** Target name. */
  target: string;
  /** Case index (with the seed, what reproduces it). */
  index: number;
  /** The mutations applied (empty: the valid file). */
  mutations: string[];
  /** "ran"-style label from the target, "rejected", or "failure". */
  outcome: string;
  /** For a rejection or failure: the error's class and message, or why the case failed. */
  detail?: string;
  /** Milliseconds the case took. */
  ms: number;
}

/** Counts per target and outcome, and the failures. */
export interface FuzzReport {
  /** Cases run. */
  cases: number;
  /** `counts[target][outcome]`. */
  counts: Record<string, Record<string, number>>;
  /** Every failing case. */
  failures: FuzzCase[];
  /** The slowest case, in milliseconds. */
  slowestMs: number;
}

/** The file name each case's bytes go by in errors. */
export function caseSource(target: string, index: number): string {
  return `fuzz-${target}-${index}.bin`;
}

/**
 * Runs `options.cases` cases over `targets`, in turn.
 *
 * @example
 * ```ts
 * import { runFuzz } from "./run.ts";
 * const report = await runFuzz([{
 *   name: "bytes",
 *   sample: () => ({ bytes: new Uint8Array(8), fields: [], sections: [] }),
 *   exercise: () => "ran",
 * }], { cases: 5, seed: 1 });
 * if (report.counts.bytes.ran !== 5) throw new Error("wrong");
 * ```
 */
export async function runFuzz(
  targets: readonly FuzzTarget[],
  options: FuzzOptions,
): Promise<FuzzReport> {
  const { cases, seed, maxCaseMs = 2000, maxGrowthBytes = 64 * 1024 * 1024, onCase } = options;
  if (targets.length === 0) throw new RangeError("targets: expected at least one, got none");
  if (!Number.isInteger(cases) || cases < 0) {
    throw new RangeError(`cases: expected an integer >= 0, got ${cases}`);
  }
  const report: FuzzReport = { cases, counts: {}, failures: [], slowestMs: 0 };
  for (const target of targets) report.counts[target.name] = {};
  for (let index = 0; index < cases; index++) {
    const target = targets[index % targets.length];
    // Each case has its own stream, so any case reproduces alone from (seed, index).
    const rng = new Rng((Math.imul(seed, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca6b)) >>> 0);
    const result = await runCase(target, index, rng, maxCaseMs, maxGrowthBytes);
    const counts = report.counts[target.name];
    counts[result.outcome] = (counts[result.outcome] ?? 0) + 1;
    report.slowestMs = Math.max(report.slowestMs, result.ms);
    if (result.outcome === "failure") report.failures.push(result);
    onCase?.(result);
  }
  return report;
}

async function runCase(
  target: FuzzTarget,
  index: number,
  rng: Rng,
  maxCaseMs: number,
  maxGrowthBytes: number,
): Promise<FuzzCase> {
  const source = caseSource(target.name, index);
  const sample = target.sample(rng);
  const valid = rng.next() < 0.1;
  const { bytes, steps } = valid ? { bytes: sample.bytes, steps: [] } : mutate(sample, rng);
  const rssBefore = Deno.memoryUsage().rss;
  const start = performance.now();
  let outcome: string;
  let detail: string | undefined;
  try {
    outcome = await target.exercise(bytes, source);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    detail = `${error instanceof Error ? error.constructor.name : typeof error}: ${message}`;
    const documented = error instanceof RangeError && message.startsWith(`${source}: `) &&
      !message.includes("\n");
    outcome = documented && !valid ? "rejected" : "failure";
    if (documented && valid) detail = `a valid file was rejected: ${detail}`;
  }
  const ms = performance.now() - start;
  const growth = Deno.memoryUsage().rss - rssBefore;
  if (outcome !== "failure" && ms > maxCaseMs) {
    outcome = "failure";
    detail = `took ${ms.toFixed(0)} ms (limit ${maxCaseMs})`;
  }
  if (outcome !== "failure" && growth > maxGrowthBytes + 16 * bytes.length) {
    outcome = "failure";
    detail = `resident memory grew by ${
      (growth / 2 ** 20).toFixed(0)
    } MiB for a ${bytes.length}-byte file`;
  }
  return { target: target.name, index, mutations: steps, outcome, detail, ms };
}
