/**
 * A guard at the command-line edge: seeded random weights of a big preset (Llama-2-7B is
 * 27 GB in fp32) must fail with a clear message, not crash the runtime mid-allocation.
 *
 * @module
 */
import type { LlamaConfig } from "./config.ts";
import { storedWeightBytes } from "./precision.ts";
import type { TensorFormat } from "../reference/quantize.ts";

/**
 * Throws when `config`'s weights, stored in `format` (fp32 by default), would not fit in 80% of this machine's memory. Needs
 * `--allow-sys=systemMemoryInfo`; without it the check is skipped.
 *
 * @example
 * ```ts ignore
 * checkWeightsFitMemory(preset("Llama-2-7B"), "--preset Llama-2-7B");
 * ```
 */
export function checkWeightsFitMemory(
  config: LlamaConfig,
  what: string,
  format: TensorFormat = "f32",
): void {
  let total: number;
  try {
    total = Deno.systemMemoryInfo().total;
  } catch {
    return; // no permission to ask: allocation will tell
  }
  const bytes = storedWeightBytes(config, format);
  if (bytes > 0.8 * total) {
    const gb = (n: number) => `${(n / 1e9).toFixed(1)} GB`;
    throw new RangeError(
      `${what}: ${format === "f32" ? "fp32" : format} weights need ${
        gb(bytes)
      }, more than 80% of this machine's ${gb(total)} of memory`,
    );
  }
}
