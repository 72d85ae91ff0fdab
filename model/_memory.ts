/**
 * A guard at the command-line edge: seeded random weights of a big preset (Llama-2-7B is
 * 27 GB in fp32) must fail with a clear message, not crash the runtime mid-allocation.
 *
 * @module
 */
import type { LlamaConfig } from "./config.ts";
import { parameterCount } from "./weights.ts";

/**
 * Throws when `config`'s fp32 weights would not fit in 80% of this machine's memory. Needs
 * `--allow-sys=systemMemoryInfo`; without it the check is skipped.
 *
 * @example
 * ```ts ignore
 * checkWeightsFitMemory(preset("Llama-2-7B"), "--preset Llama-2-7B");
 * ```
 */
export function checkWeightsFitMemory(config: LlamaConfig, what: string): void {
  let total: number;
  try {
    total = Deno.systemMemoryInfo().total;
  } catch {
    return; // no permission to ask: allocation will tell
  }
  const bytes = parameterCount(config) * 4;
  if (bytes > 0.8 * total) {
    const gb = (n: number) => `${(n / 1e9).toFixed(1)} GB`;
    throw new RangeError(
      `${what}: fp32 weights need ${gb(bytes)}, more than 80% of this machine's ${
        gb(total)
      } of memory`,
    );
  }
}
