/**
 * Fuzz targets for GGUF: random small models written by `llamaToGguf` (f32, and Q8_0 where
 * rows allow it, f16 elsewhere; the K-quants, on an FFN of 256 so that `ffn_down`'s rows are
 * super-blocks; and version 2 files with linear RoPE scaling), loaded by `parseGgufModel` (the
 * K-quant files as stored, by `ggufToStored`, as `generate` loads them), then run by
 * {@linkcode modelTarget}. The map gives the fuzzer the header's version and counts, every
 * tensor's ggml type, the RoPE-scaling values, and every tensor's data.
 *
 * @module
 */
import { type LlamaConfig, makeConfig } from "../model/config.ts";
import { parseGguf, serializeGguf } from "../model/formats/gguf.ts";
import { ggufToStored, llamaToGguf, parseGgufModel } from "../model/formats/gguf_llama.ts";
import type { LlamaWeights } from "../model/weights.ts";
import type { TensorFormat } from "../reference/quantize.ts";
import { K_QUANT_FORMATS } from "../reference/kquants.ts";
import { modelTarget, randomConfig } from "./llama2c.ts";
import type { FuzzSample, FuzzTarget } from "./target.ts";

/**
 * A GGUF file (of `version`, 3 unless given) of `weights` in `format`, with its header fields and
 * tensor sections.
 *
 * @example
 * ```ts
 * import { makeConfig } from "../model/config.ts";
 * import { randomWeights } from "../model/weights.ts";
 * import { ggufSample } from "./gguf.ts";
 * const config = makeConfig({ dim: 8, hiddenDim: 16, nLayers: 1, nHeads: 2, nKvHeads: 1, vocabSize: 5, maxSeqLen: 4 });
 * const sample = ggufSample(config, randomWeights(config), "f32");
 * if (sample.sections.length !== 11 || sample.fields[3].name !== "tensor token_embd.weight type") {
 *   throw new Error("wrong");
 * }
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
  // Each tensor description: its name, n_dims (u32), the dims (u64 each), the ggml type (u32).
  const encoder = new TextEncoder();
  let from = 0;
  const typeFields = tensors.map((t) => {
    const name = encoder.encode(t.name);
    const at = indexOf(bytes, name, from);
    if (at < 0) throw new RangeError(`tensor name ${t.name} not found after byte ${from}`);
    from = at + name.length;
    return {
      name: `tensor ${t.name} type`,
      offset: from + 4 + 8 * t.dims.length,
      width: 4 as const,
    };
  });
  // Where a metadata key's value starts: after the key's length and bytes and its u32 type.
  const valueAt = (key: string) => {
    const at = indexOf(bytes, encoder.encode(key), 24);
    return at < 0 ? -1 : at + key.length + 4;
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
      ...typeFields,
      ...scaling.filter((field) => field.offset >= 0),
    ],
    sections: tensors.map((t) => ({
      name: t.name,
      offset: t.data.byteOffset - bytes.byteOffset,
      length: t.data.byteLength,
    })),
  };
}

/** The first index of `needle` in `bytes` from `from`, or -1. */
function indexOf(bytes: Uint8Array, needle: Uint8Array, from: number): number {
  outer: for (let i = from; i + needle.length <= bytes.length; i++) {
    for (let j = 0; j < needle.length; j++) if (bytes[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

/**
 * GGUF in f32 and in Q8_0; in a K-quant (Q4_K, Q5_K, Q6_K by turns) for `ffn_down`, whose rows of
 * 256 are super-blocks, with Q8_0 or f16 for the narrower matrices, as llama.cpp falls back; and
 * version 2 files (Q8_0) with linear RoPE scaling by a factor in [1.5, 4.5] drawn from the model's
 * shape.
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
    name: "gguf-kquant",
    config: (rng) => makeConfig({ ...randomConfig(rng), hiddenDim: 256 }),
    write: (config, weights) =>
      ggufSample(config, weights, K_QUANT_FORMATS[config.vocabSize % K_QUANT_FORMATS.length]),
    load: (bytes, source) => ggufToStored(parseGguf(bytes, source), source),
  }),
  modelTarget({
    name: "gguf-v2-rope",
    write: (config, weights) => {
      const factor = 1.5 + (config.vocabSize % 7) / 2;
      return ggufSample({ ...config, ropeScaling: { type: "linear", factor } }, weights, "q8_0", 2);
    },
    load: (bytes, source) => parseGgufModel(bytes, source),
  }),
];
