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
 * import { parseFlags } from "./_cli_flags.ts";
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
  try {
    return parseArgs({ args, options, strict: true, allowPositionals: false }).values;
  } catch (error) {
    throw new UsageError(
      (error instanceof Error ? error.message : String(error)).replace(/\s*\n\s*/g, " "),
    );
  }
}
