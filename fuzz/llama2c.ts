/**
 * Fuzz targets for llama2.c's files: checkpoints in the legacy and version 1 layouts, and
 * `tokenizer.bin`. {@linkcode modelTarget} turns any model format (a writer and a loader) into
 * a target that runs one forward pass on what loads.
 *
 * @module
 */
import {
  type CheckpointFormat,
  parseCheckpoint,
  serializeCheckpoint,
} from "../model/formats/llama2c.ts";
import { contextConfig, headDim, type LlamaConfig, makeConfig } from "../model/config.ts";
import { CpuDecoder } from "../model/cpu_decoder.ts";
import { generate } from "../model/generate.ts";
import { Tokenizer } from "../model/formats/tokenizer.ts";
import { layerTensorSizes, type LlamaWeights, randomWeights } from "../model/weights.ts";
import type { StoredWeights } from "../model/precision.ts";
import type { Rng } from "../reference/random.ts";
import type { FuzzField, FuzzSample, FuzzSection, FuzzTarget } from "./target.ts";

const below = (rng: Rng, n: number) => Math.floor(rng.next() * n);

/** A small random configuration: every attention variant, shared or separate classifier. */
export function randomConfig(rng: Rng): LlamaConfig {
  const nHeads = [1, 2, 4][below(rng, 3)];
  const divisors = [1, 2, 4].filter((d) => nHeads % d === 0);
  return makeConfig({
    dim: nHeads * [2, 4, 8][below(rng, 3)],
    hiddenDim: 1 + below(rng, 24),
    nLayers: 1 + below(rng, 2),
    nHeads,
    nKvHeads: divisors[below(rng, divisors.length)],
    vocabSize: 3 + below(rng, 30),
    maxSeqLen: 1 + below(rng, 16),
    sharedClassifier: rng.next() < 0.5,
  });
}

/** What a model format gives {@linkcode modelTarget}. */
export interface ModelFormat {
  /** The target's name. */
  name: string;
  /** Writes `weights` of `config` as a file, with its header fields and sections. */
  write(config: LlamaConfig, weights: LlamaWeights): FuzzSample;
  /** Loads a file (float32 or stored weights, as the CPU decoder takes); errors name `source`. */
  load(
    bytes: Uint8Array,
    source: string,
  ): { config: LlamaConfig; weights: LlamaWeights | StoredWeights };
  /** Draws the configuration of a sample ({@linkcode randomConfig} if absent). */
  config?(rng: Rng): LlamaConfig;
}

/**
 * A fuzz target for a model format: random small models written by `format.write`; each case
 * loaded by `format.load`, then two tokens generated on the CPU decoder (sized to the run, not
 * to the file's `maxSeqLen`). Labels: "ran", or "non-finite logits" when generation stopped on
 * an overflow, as it must.
 *
 * @example
 * ```ts
 * import { parseCheckpoint } from "../model/formats/llama2c.ts";
 * import { llama2cSample, modelTarget } from "./llama2c.ts";
 * const target = modelTarget({
 *   name: "v1",
 *   write: (config, weights) => llama2cSample(config, weights, "v1"),
 *   load: (bytes, source) => parseCheckpoint(bytes, source),
 * });
 * if (target.name !== "v1") throw new Error("wrong");
 * ```
 */
export function modelTarget(format: ModelFormat): FuzzTarget {
  return {
    name: format.name,
    sample: (rng) => {
      const config = format.config?.(rng) ?? randomConfig(rng);
      return format.write(config, randomWeights(config, rng.nextUint32()));
    },
    exercise: async (bytes, source) => {
      const { config, weights } = format.load(bytes, source);
      // One prompt token and up to two new ones: positions = prompt + steps - 1.
      const steps = Math.min(2, config.maxSeqLen);
      const decoder = new CpuDecoder(contextConfig(config, steps), weights);
      try {
        await generate(decoder, [1 % config.vocabSize], { steps, stopAtBos: false });
      } catch (error) {
        if (error instanceof RangeError && error.message.startsWith("generation stopped:")) {
          return "non-finite logits";
        }
        throw error;
      }
      return "ran";
    },
  };
}

/** A llama2.c checkpoint of `weights` with its header fields and tensor sections mapped. */
export function llama2cSample(
  config: LlamaConfig,
  weights: LlamaWeights,
  format: CheckpointFormat,
): FuzzSample {
  const bytes = serializeCheckpoint(config, weights, format);
  const names = ["dim", "hiddenDim", "nLayers", "nHeads", "nKvHeads", "vocabSize", "maxSeqLen"];
  const at = format === "legacy" ? 0 : 8;
  const fields: FuzzField[] = names.map((name, i) => ({ name, offset: at + 4 * i, width: 4 }));
  if (format === "v1") {
    fields.push({ name: "magic", offset: 0, width: 4 }, { name: "version", offset: 4, width: 4 });
    fields.push({ name: "sharedClassifier", offset: 36, width: 1 });
  }
  const sizes = layerTensorSizes(config);
  const perLayer = (name: keyof typeof sizes) => [name, config.nLayers * sizes[name]] as const;
  const embedding = ["tokenEmbedding", config.vocabSize * config.dim] as const;
  const order: (readonly [string, number])[] = format === "legacy"
    ? [
      embedding,
      ...(["attentionNorm", "wq", "wk", "wv", "wo", "ffnNorm", "w1", "w2", "w3"] as const).map(
        perLayer,
      ),
      ["finalNorm", config.dim],
      ["ropeTable", config.maxSeqLen * headDim(config)],
    ]
    : [
      perLayer("attentionNorm"),
      perLayer("ffnNorm"),
      ["finalNorm", config.dim],
      embedding,
      ...(["wq", "wk", "wv", "wo", "w1", "w2", "w3"] as const).map(perLayer),
    ];
  if (!config.sharedClassifier) order.push(["classifier", config.vocabSize * config.dim]);
  const sections: FuzzSection[] = [];
  let offset = format === "legacy" ? 28 : 256;
  for (const [name, floats] of order) {
    sections.push({ name, offset, length: floats * 4 });
    offset += floats * 4;
  }
  return { bytes, fields, sections };
}

/** llama2.c checkpoints in the legacy layout. */
export const legacyCheckpointTarget: FuzzTarget = modelTarget({
  name: "llama2c-legacy",
  write: (config, weights) => llama2cSample(config, weights, "legacy"),
  load: parseCheckpoint,
});

/** llama2.c checkpoints in the version 1 layout. */
export const v1CheckpointTarget: FuzzTarget = modelTarget({
  name: "llama2c-v1",
  write: (config, weights) => llama2cSample(config, weights, "v1"),
  load: parseCheckpoint,
});

const TEXT = "Once upon a time, a café 🦙 said: abc.";

/**
 * llama2.c's `tokenizer.bin`: random vocabularies (specials, a space, letters, some byte
 * tokens, random merges), each loaded with and without the model's vocabulary size, then a
 * text with ASCII, accents and an emoji encoded and decoded.
 */
export const tokenizerTarget: FuzzTarget = {
  name: "llama2c-tokenizer",
  sample(rng) {
    const pieces = ["<unk>", "<s>", "</s>", " "];
    for (const c of "abcdefghijklmnopqrstuvwxyzOTU,.:") if (rng.next() < 0.8) pieces.push(c);
    // byte fallback for every byte, as Llama's vocabulary has: any text encodes
    for (let b = 0; b < 256; b++) {
      pieces.push(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
    }
    const merges = below(rng, 40);
    for (let i = 0; i < merges; i++) {
      const a = pieces[3 + below(rng, pieces.length - 3)];
      const b = pieces[3 + below(rng, pieces.length - 3)];
      if (!a.startsWith("<") && !b.startsWith("<")) pieces.push(a + b);
    }
    const encoded = pieces.map((p) => new TextEncoder().encode(p));
    const maxTokenLength = encoded.reduce((n, p) => Math.max(n, p.length), 1) + below(rng, 3);
    const bytes = new Uint8Array(4 + encoded.reduce((n, p) => n + 8 + p.length, 0));
    const view = new DataView(bytes.buffer);
    view.setInt32(0, maxTokenLength, true);
    const fields: FuzzField[] = [{ name: "maxTokenLength", offset: 0, width: 4 }];
    const sections: FuzzSection[] = [];
    let at = 4;
    encoded.forEach((piece, id) => {
      view.setFloat32(at, -Math.floor(rng.next() * 100), true);
      view.setInt32(at + 4, piece.length, true);
      bytes.set(piece, at + 8);
      if (id < 8 || rng.next() < 0.05) {
        fields.push({ name: `token ${id} length`, offset: at + 4, width: 4 });
      }
      sections.push({ name: `token ${id}`, offset: at, length: 8 + piece.length });
      at += 8 + piece.length;
    });
    return { bytes, fields, sections };
  },
  exercise(bytes, source) {
    const tokenizer = Tokenizer.parse(bytes, source);
    // As the CLI loads it, with the model's vocabulary size: the same tokens
    const sized = Tokenizer.parse(bytes, source, tokenizer.vocabSize);
    if (sized.vocabSize !== tokenizer.vocabSize) throw new Error("a different vocabulary");
    const ids = tokenizer.encode(TEXT);
    if (ids.length < tokenizer.minTokenCount(TEXT)) {
      throw new Error("encode gave fewer tokens than minTokenCount");
    }
    const text = tokenizer.decode(ids);
    return text === TEXT ? "ran" : "ran (lossy vocabulary)";
  },
};

/** Every llama2.c target. */
export const LLAMA2C_TARGETS: readonly FuzzTarget[] = [
  legacyCheckpointTarget,
  v1CheckpointTarget,
  tokenizerTarget,
];
