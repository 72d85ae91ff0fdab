/**
 * Guards against allocations the machine cannot hold: seeded random weights of a big preset
 * (Llama-2-7B is 27 GB in fp32), a checkpoint's weights, or a KV cache of a huge `maxSeqLen`
 * must fail with a clear message, not crash the runtime mid-allocation.
 *
 * @module
 */
import { headDim, type LlamaConfig } from "./config.ts";
import { parameterCount } from "./weights.ts";
import { kvCacheBytesPerToken } from "../reference/kv_cache.ts";

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
  checkFits(parameterCount(config) * 4, `${what}: fp32 weights need`);
}

/**
 * Throws when a KV cache of `config.maxSeqLen` positions would not fit in 80% of this
 * machine's memory; `what` names the source (a file and its `maxSeqLen`). Needs `--allow-sys=systemMemoryInfo`; without it the check
 * is skipped.
 *
 * @example
 * ```ts ignore
 * checkKvCacheFitsMemory(config, "model.bin");
 * ```
 */
export function checkKvCacheFitsMemory(config: LlamaConfig, what: string): void {
  const bytes = kvCacheBytes(config);
  checkFits(bytes, `${what}: a KV cache of ${config.maxSeqLen} positions needs`);
}

/** Bytes of a float32 KV cache of `config.maxSeqLen` positions, all layers. */
export function kvCacheBytes(config: LlamaConfig): number {
  return kvCacheBytesPerToken({ ...config, headDim: headDim(config) }) * config.maxSeqLen;
}

/** Throws when `bytes` would take more than 80% of this machine's memory; `what` says for what. */
export function checkFits(bytes: number, what: string): void {
  let total: number;
  try {
    total = Deno.systemMemoryInfo().total;
  } catch {
    return; // no permission to ask: allocation will tell
  }
  if (bytes > 0.8 * total) {
    const gb = (n: number) =>
      n >= 1e9 ? `${(n / 1e9).toFixed(1)} GB` : `${(n / 1e6).toFixed(1)} MB`;
    throw new RangeError(
      `${what} ${gb(bytes)}, more than 80% of this machine's ${gb(total)} of memory`,
    );
  }
}
