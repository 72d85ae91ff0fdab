// What `deno task bench` and the browser page's bench share, kept free of Deno APIs so that
// the page can import it: the attention-heavy shape, the adapter as results record it, and the
// roofline's progress line.
import type { Gpu } from "../gpu/device.ts";
import { type LlamaConfig, makeConfig } from "../model/config.ts";
import type { Roofline } from "./probes.ts";
import type { AdapterInfo } from "./report/report.ts";

/**
 * A shape where attention dominates a decode step at long contexts: 8 heads of 64 features
 * (dim 512) on 4 layers with a narrow feed-forward and a small vocabulary, so the KV cache
 * outweighs the weights from about 1.5k tokens and GQA/MQA savings show in time.
 */
export const ATTENTION_HEAVY: LlamaConfig = makeConfig({
  dim: 512,
  hiddenDim: 256,
  nLayers: 4,
  nHeads: 8,
  nKvHeads: 8,
  vocabSize: 512,
  maxSeqLen: 4096,
});

/** Tokens one cached decode sample decodes in one call: a user-visible `generate`. */
export const DECODE_POSITIONS = 32;

/** The adapter as `results.json` records it: its info, features and numeric limits. */
export function adapterInfo(gpu: Gpu): AdapterInfo {
  const info = gpu.device.adapterInfo;
  const limits: Record<string, number> = {};
  for (const key in gpu.device.limits) {
    const value = (gpu.device.limits as unknown as Record<string, unknown>)[key];
    if (typeof value === "number") limits[key] = value;
  }
  return {
    description: info?.description || gpu.adapterDescription,
    vendor: info?.vendor ?? "",
    architecture: info?.architecture ?? "",
    device: info?.device ?? "",
    isFallbackAdapter: (info as { isFallbackAdapter?: boolean } | undefined)?.isFallbackAdapter,
    features: [...gpu.device.features].sort(),
    limits,
  };
}

/** One progress line per measured roofline. */
export function rooflineLines(rooflines: Partial<Record<string, Roofline>>): string[] {
  return Object.entries(rooflines).map(([backend, r]) =>
    `${backend} roofline: read ${r!.readGbPerS.median.toFixed(2)} GB/s, copy ${
      r!.copyGbPerS.median.toFixed(2)
    } GB/s, ${r!.peakGflopPerS.median.toFixed(1)} GFLOP/s, ${
      r!.dispatchUs.median.toFixed(2)
    } µs/dispatch`
  );
}
