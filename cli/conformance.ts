/**
 * `deno task conformance`: runs every kernel against its reference on this machine's adapter,
 * prints one table, and exits non-zero if any case fails.
 *
 * @module
 */
import { requestGpu } from "../gpu/device.ts";
import {
  type ConformanceCase,
  conformanceCases,
  formatConformanceTable,
  runConformance,
} from "../gpu/conformance.ts";

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
): Promise<number> {
  const gpu = await requestGpu();
  try {
    print(`running ${cases.length} kernel cases on ${gpu.adapterDescription}`);
    const results = await runConformance(gpu, cases);
    print(formatConformanceTable(results, gpu.adapterDescription));
    return results.every((r) => r.passed || r.skipped) ? 0 : 1;
  } finally {
    gpu.destroy();
  }
}

if (import.meta.main) {
  try {
    Deno.exit(await conformanceMain());
  } catch (error) {
    console.error(`conformance: ${error instanceof Error ? error.message : error}`);
    Deno.exit(2);
  }
}
