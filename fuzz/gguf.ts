/**
 * Fuzz targets for GGUF: random small models written by `llamaToGguf` (f32, and Q8_0 where
 * rows allow it, f16 elsewhere), loaded by `parseGgufModel`, then run by {@linkcode modelTarget}.
 * The map gives the fuzzer the header's version and counts, and every tensor's data.
 *
 * @module
 */
import type { LlamaConfig } from "../model/config.ts";
import { parseGguf } from "../model/formats/gguf.ts";
import { llamaToGguf, parseGgufModel } from "../model/formats/gguf_llama.ts";
import type { LlamaWeights } from "../model/weights.ts";
import type { TensorFormat } from "../reference/quantize.ts";
import { modelTarget } from "./llama2c.ts";
import type { FuzzSample, FuzzTarget } from "./target.ts";

/**
 * A GGUF file of `weights` in `format`, with its header fields and tensor sections.
 *
 * @example
 * ```ts
 * import { makeConfig } from "../model/config.ts";
 * import { randomWeights } from "../model/weights.ts";
 * import { ggufSample } from "./gguf.ts";
 * const config = makeConfig({ dim: 8, hiddenDim: 16, nLayers: 1, nHeads: 2, nKvHeads: 1, vocabSize: 5, maxSeqLen: 4 });
 * const sample = ggufSample(config, randomWeights(config), "f32");
 * if (sample.sections.length !== 11 || sample.fields[1].name !== "tensor count") throw new Error("wrong");
 * ```
 */
export function ggufSample(
  config: LlamaConfig,
  weights: LlamaWeights,
  format: TensorFormat,
): FuzzSample {
  const bytes = llamaToGguf(config, weights, { format });
  const tensors = parseGguf(bytes).tensors;
  return {
    bytes,
    fields: [
      { name: "version", offset: 4, width: 4 },
      { name: "tensor count", offset: 8, width: 8 },
      { name: "metadata count", offset: 16, width: 8 },
    ],
    sections: tensors.map((t) => ({
      name: t.name,
      offset: t.data.byteOffset - bytes.byteOffset,
      length: t.data.byteLength,
    })),
  };
}

/** GGUF in f32 and in Q8_0. */
export const GGUF_TARGETS: readonly FuzzTarget[] = (["f32", "q8_0"] as const).map((format) =>
  modelTarget({
    name: `gguf-${format}`,
    write: (config, weights) => ggufSample(config, weights, format),
    load: (bytes, source) => parseGgufModel(bytes, source),
  })
);
