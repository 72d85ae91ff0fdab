/**
 * Guards against allocations the machine cannot hold: seeded random weights of a big preset
 * (Llama-2-7B is 27 GB in fp32), a checkpoint's weights, or a KV cache of a huge `maxSeqLen`
 * must fail with a clear message, not crash the runtime mid-allocation.
 *
 * @module
 */
import { storedWeightBytes } from "./precision.ts";
import type { TensorFormat } from "../reference/quantize.ts";
import { headDim, type LlamaConfig } from "./config.ts";
import { kvCacheBytesPerToken } from "../reference/kv_cache.ts";

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
  checkFits(
    storedWeightBytes(config, format),
    `${what}: ${format === "f32" ? "fp32" : format} weights need`,
  );
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
  const total = totalMemory();
  if (total === undefined) return; // no way to ask: allocation will tell
  if (bytes > 0.8 * total) {
    const gb = (n: number) =>
      n >= 1e9 ? `${(n / 1e9).toFixed(1)} GB` : `${(n / 1e6).toFixed(1)} MB`;
    throw new RangeError(
      `${what} ${gb(bytes)}, more than 80% of this machine's ${gb(total)} of memory`,
    );
  }
}

/**
 * This machine's memory in bytes where the runtime tells: Deno with `--allow-sys`; undefined
 * without the permission and in a browser (feature-detected: the decoder runs in pages too).
 */
function totalMemory(): number | undefined {
  const deno = (globalThis as { Deno?: typeof Deno }).Deno;
  try {
    return deno?.systemMemoryInfo().total;
  } catch {
    return undefined;
  }
}
