/**
 * `deno task conformance`: runs every kernel against its reference on this machine's adapter,
 * prints one table, and exits non-zero if any case fails. With `--kernel module.ts`, checks the
 * kernels that module exports (`export const kernels: ForeignKernel[]`) instead, by the same
 * references, shapes and bounds.
 *
 * @module
 */
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { requestGpu } from "../gpu/device.ts";
import {
  type ConformanceCase,
  conformanceCases,
  formatConformanceTable,
  runConformance,
} from "../gpu/conformance.ts";
import { adapterHeadline, checkKernels, validateForeignKernels } from "../gpu/check_kernel.ts";
import { parseFlags, UsageError } from "./flags.ts";

/** The help text. */
export const CONFORMANCE_HELP: string = `Usage: deno task conformance [options]

Runs every kernel of this project against its reference on this machine's WebGPU adapter and
prints one table (NMSE, max abs error, guards, pass/fail per kernel, variant and shape).

Options:
  --kernel PATH     check the kernels the module at PATH exports instead
                    (export const kernels: ForeignKernel[]; see docs/kernel-authors.md)
  --limits WHICH    adapter (default): the device gets every limit the adapter offers;
                    default: only WebGPU's default limits (what a kernel can count on)
  --help            this text

Exit code: 0 when every case passes, 1 on any failure, 2 on bad usage.`;

/** Options of {@linkcode conformanceMain}. */
export interface ConformanceOptions {
  /** Request only WebGPU's default limits (`--limits default`). */
  defaultLimits?: boolean;
}

/**
 * Runs the cases and prints progress and the table through `print`; returns the exit code
 * (0 when every case passes, 1 otherwise).
 *
 * @example
 * ```ts ignore
 * import { conformanceMain } from "./conformance.ts";
 * Deno.exit(await conformanceMain());
 * ```
 */
export async function conformanceMain(
  cases: readonly ConformanceCase[] = conformanceCases(),
  print: (line: string) => void = console.log,
  options: ConformanceOptions = {},
): Promise<number> {
  const gpu = await requestGpu({ limits: options.defaultLimits ? "default" : "adapter" });
  try {
    print(`running ${cases.length} kernel cases on ${gpu.adapterDescription}`);
    const results = await runConformance(gpu, cases);
    print(formatConformanceTable(results, adapterHeadline(gpu)));
    return results.every((r) => r.passed || r.skipped) ? 0 : 1;
  } finally {
    gpu.destroy();
  }
}

/**
 * Checks the kernels a module exports (`export const kernels: ForeignKernel[]`) and prints the
 * table; returns the exit code (0 when every shape that ran passed, 1 otherwise).
 *
 * @example
 * ```ts ignore
 * import { kernelModuleMain } from "./conformance.ts";
 * Deno.exit(await kernelModuleMain("examples/kernels/rms_norm.ts"));
 * ```
 */
export async function kernelModuleMain(
  path: string,
  print: (line: string) => void = console.log,
  options: ConformanceOptions = {},
): Promise<number> {
  let module: unknown;
  try {
    module = await import(pathToFileURL(resolve(path)).href);
  } catch (error) {
    throw new Error(`--kernel ${path}: ${error instanceof Error ? error.message : error}`);
  }
  const kernels = validateForeignKernels(module, path);
  const gpu = await requestGpu({ limits: options.defaultLimits ? "default" : "adapter" });
  try {
    print(`checking ${kernels.length} kernel(s) from ${path} on ${adapterHeadline(gpu)}`);
    const check = await checkKernels(kernels, { gpu });
    print(check.table);
    return check.results.every((r) => r.passed || r.skipped) ? 0 : 1;
  } finally {
    gpu.destroy();
  }
}

/**
 * `deno task conformance` with its flags; returns the exit code (2 on bad usage).
 *
 * @example
 * ```ts ignore
 * import { conformanceCli } from "./conformance.ts";
 * Deno.exit(await conformanceCli(["--kernel", "examples/kernels/rms_norm.ts", "--limits", "default"]));
 * ```
 */
export async function conformanceCli(
  args: string[],
  print: (line: string) => void = console.log,
): Promise<number> {
  try {
    const flags = parseFlags(args, {
      kernel: { type: "string" },
      limits: { type: "string" },
      help: { type: "boolean" },
    });
    if (flags.help) {
      print(CONFORMANCE_HELP);
      return 0;
    }
    if (flags.limits !== undefined && flags.limits !== "default" && flags.limits !== "adapter") {
      throw new UsageError(`--limits: expected "default" or "adapter", got "${flags.limits}"`);
    }
    const options = { defaultLimits: flags.limits === "default" };
    return flags.kernel !== undefined
      ? await kernelModuleMain(flags.kernel, print, options)
      : await conformanceMain(conformanceCases(), print, options);
  } catch (error) {
    print(
      `conformance: ${error instanceof Error ? error.message : error}${
        error instanceof UsageError ? " (see --help)" : ""
      }`,
    );
    return error instanceof UsageError ? 2 : 1;
  }
}

if (import.meta.main) Deno.exit(await conformanceCli(Deno.args));
