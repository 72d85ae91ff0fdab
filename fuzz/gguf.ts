/**
 * Fuzz targets for GGUF: random small models written by `llamaToGguf` (f32, and Q8_0 where
 * rows allow it, f16 elsewhere; and version 2 files with linear RoPE scaling), loaded by
 * `parseGgufModel`, then run by {@linkcode modelTarget}. The map gives the fuzzer the header's
 * version and counts, the RoPE-scaling values, and every tensor's data.
 *
 * @module
 */
import type { LlamaConfig } from "../model/config.ts";
import { parseGguf, serializeGguf } from "../model/formats/gguf.ts";
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
  version = 3,
): FuzzSample {
  const bytes = serializeGguf({
    ...parseGguf(llamaToGguf(config, weights, { format })),
    version,
  });
  const tensors = parseGguf(bytes).tensors;
  // Where a metadata key's value starts: after the key's length and bytes and its u32 type.
  const valueAt = (key: string) => {
    const text = new TextEncoder().encode(key);
    for (let at = 24; at + text.length < bytes.length; at++) {
      if (text.every((b, i) => bytes[at + i] === b)) return at + text.length + 4;
    }
    return -1;
  };
  const scaling = [
    { name: "llama.rope.scaling.factor", offset: valueAt("llama.rope.scaling.factor"), width: 4 },
    {
      name: "llama.rope.scaling.type length",
      offset: valueAt("llama.rope.scaling.type"),
      width: 8,
    },
  ] as const;
  return {
    bytes,
    fields: [
      { name: "version", offset: 4, width: 4 },
      { name: "tensor count", offset: 8, width: 8 },
      { name: "metadata count", offset: 16, width: 8 },
      ...scaling.filter((field) => field.offset >= 0),
    ],
    sections: tensors.map((t) => ({
      name: t.name,
      offset: t.data.byteOffset - bytes.byteOffset,
      length: t.data.byteLength,
    })),
  };
}

/**
 * GGUF in f32 and in Q8_0, and version 2 files (Q8_0) with linear RoPE scaling by a factor in
 * [1.5, 4.5] drawn from the model's shape.
 */
export const GGUF_TARGETS: readonly FuzzTarget[] = [
  ...(["f32", "q8_0"] as const).map((format) =>
    modelTarget({
      name: `gguf-${format}`,
      write: (config, weights) => ggufSample(config, weights, format),
      load: (bytes, source) => parseGgufModel(bytes, source),
    })
  ),
  modelTarget({
    name: "gguf-v2-rope",
    write: (config, weights) => {
      const factor = 1.5 + (config.vocabSize % 7) / 2;
      return ggufSample({ ...config, ropeScaling: { type: "linear", factor } }, weights, "q8_0", 2);
    },
    load: (bytes, source) => parseGgufModel(bytes, source),
  }),
];
