/**
 * Command-line flag parsing shared by the `generate` and `bench` entry points: unknown or
 * malformed flags become one-line {@linkcode UsageError}s (exit code 2).
 *
 * @module
 */
import { parseArgs, type ParseArgsOptionsConfig } from "node:util";

/** Bad command-line usage: reported in one line with a pointer to `--help`. */
export class UsageError extends Error {}

/**
 * Parses `args` strictly against `options` (no positionals); parse errors, which `node:util`
 * spreads over several lines, become one-line {@linkcode UsageError}s.
 *
 * @example
 * ```ts
 * import { parseFlags } from "./flags.ts";
 * const flags = parseFlags(["--steps", "3"], { steps: { type: "string" } });
 * if (flags.steps !== "3") throw new Error("wrong");
 * ```
 */
export function parseFlags<T extends ParseArgsOptionsConfig>(
  args: string[],
  options: T,
): ReturnType<
  typeof parseArgs<{ args: string[]; options: T; strict: true; allowPositionals: false }>
>["values"] {
  // `--steps -1` would read "-1" as a flag; bind a negative number to its flag so the flag's
  // own check can name the bad value.
  const bound = args.map((arg, i) => {
    const name = args[i - 1]?.startsWith("--") ? args[i - 1].slice(2) : undefined;
    return name && options[name]?.type === "string" && /^-(\d|\.\d|Infinity)/.test(arg)
      ? undefined
      : arg;
  });
  const joined: string[] = [];
  bound.forEach((arg, i) => {
    if (arg === undefined) joined[joined.length - 1] += `=${args[i]}`;
    else joined.push(arg);
  });
  try {
    return parseArgs({ args: joined, options, strict: true, allowPositionals: false }).values;
  } catch (error) {
    throw new UsageError(
      (error instanceof Error ? error.message : String(error)).replace(/\s*\n\s*/g, " "),
    );
  }
}
