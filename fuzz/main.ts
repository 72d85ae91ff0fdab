/**
 * `deno task fuzz [--cases N] [--seed S] [--target NAME,...] [--verbose]`: runs seeded
 * mutation fuzzing of every file format the project reads and prints the counts per target and
 * outcome; exits 1 if any case failed (each failure is printed with what reproduces it).
 *
 * @module
 */
import { parseFlags, UsageError } from "../cli/flags.ts";
import { type FuzzReport, runFuzz } from "./run.ts";
import { FUZZ_TARGETS } from "./targets.ts";

/** The fuzz command's help text. */
export const FUZZ_HELP: string = `Usage: deno task fuzz [options]

  --cases N          cases in all, spread over the targets in turn (default 1000)
  --seed S           seed of every choice; the same seed repeats the same cases (default 1)
  --target A,B       only these targets: ${FUZZ_TARGETS.map((t) => t.name).join(", ")}
  --max-case-ms MS   a case slower than this fails (default 2000)
  --verbose          print every case
  --help             this text`;

/**
 * Runs the fuzz command with `args`, printing through `print`; returns the exit code (0 all
 * cases fine, 1 failures, 2 bad usage).
 *
 * @example
 * ```ts ignore
 * Deno.exit(await fuzzMain(Deno.args));
 * ```
 */
export async function fuzzMain(
  args: string[],
  print: (line: string) => void = console.log,
): Promise<number> {
  let report: FuzzReport;
  try {
    const flags = parseFlags(args, {
      cases: { type: "string" },
      seed: { type: "string" },
      target: { type: "string" },
      "max-case-ms": { type: "string" },
      verbose: { type: "boolean" },
      help: { type: "boolean" },
    });
    if (flags.help) {
      print(FUZZ_HELP);
      return 0;
    }
    const integer = (flag: string, value: string | undefined, fallback: number, min: number) => {
      if (value === undefined) return fallback;
      const n = Number(value);
      if (value.trim() === "" || !Number.isInteger(n) || n < min) {
        throw new UsageError(`--${flag}: expected an integer >= ${min}, got "${value}"`);
      }
      return n;
    };
    const names = flags.target?.split(",").map((s) => s.trim());
    const targets = names
      ? names.map((name) => {
        const target = FUZZ_TARGETS.find((t) => t.name === name);
        if (!target) {
          throw new UsageError(
            `--target: expected one of ${
              FUZZ_TARGETS.map((t) => t.name).join(", ")
            }, got "${name}"`,
          );
        }
        return target;
      })
      : FUZZ_TARGETS;
    const cases = integer("cases", flags.cases, 1000, 0);
    const seed = integer("seed", flags.seed, 1, -(2 ** 31));
    const maxCaseMs = integer("max-case-ms", flags["max-case-ms"], 2000, 1);
    print(`fuzzing ${targets.map((t) => t.name).join(", ")}: ${cases} cases, seed ${seed}`);
    report = await runFuzz(targets, {
      cases,
      seed,
      maxCaseMs,
      onCase: (c) => {
        if (flags.verbose || c.outcome === "failure") {
          print(
            `${c.outcome === "failure" ? "FAILURE " : ""}${c.target} case ${c.index} ` +
              `[${c.mutations.join("; ") || "valid"}]: ${c.outcome}` +
              `${c.detail ? ` (${c.detail})` : ""}, ${c.ms.toFixed(1)} ms`,
          );
        }
      },
    });
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    print(`fuzz: ${error.message} (see --help)`);
    return 2;
  }
  for (const [target, counts] of Object.entries(report.counts)) {
    const parts = Object.entries(counts).map(([outcome, n]) => `${outcome} ${n}`);
    print(`${target}: ${parts.join(", ") || "no cases"}`);
  }
  print(
    `${report.cases} cases, ${report.failures.length} failures; slowest case ${
      report.slowestMs.toFixed(0)
    } ms`,
  );
  return report.failures.length > 0 ? 1 : 0;
}

if (import.meta.main) Deno.exit(await fuzzMain(Deno.args));
