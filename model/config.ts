/**
 * LLaMA model configuration, its validation, and named presets of real model shapes.
 *
 * @module
 */
import { DEFAULT_NORM_EPS } from "../reference/norm.ts";
import { DEFAULT_ROPE_THETA, type RopeLayout, type RopeOptions } from "../reference/rope.ts";

/** Id of the beginning-of-sequence token (llama2.c's and LLaMA's vocabularies). */
export const BOS = 1;
/** Id of the end-of-sequence token. */
export const EOS = 2;

/** The hyperparameters of a LLaMA decoder. */
export interface LlamaConfig {
  /** Model width (features per token). */
  dim: number;
  /** Width of the SwiGLU feed-forward layer. */
  hiddenDim: number;
  /** Transformer blocks. */
  nLayers: number;
  /** Query heads; `dim / nHeads` is the head dimension. */
  nHeads: number;
  /** Key/value heads: `nHeads` for MHA, 1 for MQA, a divisor in between for GQA. */
  nKvHeads: number;
  /** Tokens in the vocabulary. */
  vocabSize: number;
  /** Longest sequence (KV-cache length, RoPE table length). */
  maxSeqLen: number;
  /** RoPE frequency base. */
  ropeTheta: number;
  /** RoPE pairing: llama2.c and Meta use `"interleaved"`. */
  ropeLayout: RopeLayout;
  /**
   * RoPE scaling the model was trained with. `linear` divides every position by `factor`
   * before it turns (as llama.cpp does for GGUF's `rope.scaling.type` `linear`). Absent: none.
   */
  ropeScaling?: RopeScaling;
  /** RMSNorm epsilon. */
  normEps: number;
  /** Whether the classifier is the token-embedding table (tied weights). */
  sharedClassifier: boolean;
  /**
   * Sliding-window attention, as in Mistral: each token attends to itself and the
   * `slidingWindow − 1` tokens before it. Absent: full causal attention.
   */
  slidingWindow?: number;
}

/** A RoPE scaling: only `linear` ("position interpolation") is supported. */
export interface RopeScaling {
  /** The method: positions divided by `factor`. */
  type: "linear";
  /** What positions are divided by; finite and > 0. */
  factor: number;
}

/** Features per attention head: `dim / nHeads`. */
export function headDim(config: LlamaConfig): number {
  return config.dim / config.nHeads;
}

/**
 * The reference `rope`'s options for `config`: its theta, pairing and linear scaling.
 *
 * @example
 * ```ts
 * import { makeConfig, ropeOptions } from "./config.ts";
 * const config = makeConfig({ dim: 8, hiddenDim: 8, nLayers: 1, nHeads: 2, nKvHeads: 2, vocabSize: 4, maxSeqLen: 8, ropeScaling: { type: "linear", factor: 4 } });
 * if (ropeOptions(config).linearScaling !== 4) throw new Error("wrong");
 * ```
 */
export function ropeOptions(config: LlamaConfig): RopeOptions {
  return {
    theta: config.ropeTheta,
    layout: config.ropeLayout,
    linearScaling: config.ropeScaling?.factor ?? 1,
  };
}

/** The fields every configuration must give; the rest have llama2.c's defaults. */
export type LlamaShape = Pick<
  LlamaConfig,
  "dim" | "hiddenDim" | "nLayers" | "nHeads" | "nKvHeads" | "vocabSize" | "maxSeqLen"
>;

/**
 * Completes `shape` with defaults (RoPE theta 10000, interleaved; eps 1e-5; shared classifier)
 * and validates it.
 *
 * @example
 * ```ts
 * import { headDim, makeConfig } from "./config.ts";
 * const config = makeConfig({ dim: 64, hiddenDim: 172, nLayers: 5, nHeads: 8, nKvHeads: 4, vocabSize: 512, maxSeqLen: 512 });
 * if (headDim(config) !== 8) throw new Error("wrong");
 * ```
 */
export function makeConfig(
  shape: LlamaShape & Partial<LlamaConfig>,
  source = "config",
): LlamaConfig {
  const config: LlamaConfig = {
    ropeTheta: DEFAULT_ROPE_THETA,
    ropeLayout: "interleaved",
    normEps: DEFAULT_NORM_EPS,
    sharedClassifier: true,
    ...shape,
  };
  validateConfig(config, source);
  return config;
}

/**
 * Throws an error naming `source` and the field unless the configuration is consistent:
 * positive integer sizes, `dim % nHeads == 0`, `nHeads % nKvHeads == 0`, an even head
 * dimension, finite positive theta, finite non-negative eps.
 *
 * @example
 * ```ts
 * import { makeConfig } from "./config.ts";
 * try {
 *   makeConfig({ dim: 64, hiddenDim: 1, nLayers: 1, nHeads: 6, nKvHeads: 6, vocabSize: 1, maxSeqLen: 1 });
 *   throw new Error("accepted");
 * } catch (e) {
 *   if (!String(e).includes("dim (64) must be divisible by nHeads (6)")) throw e;
 * }
 * ```
 */
export function validateConfig(config: LlamaConfig, source = "config"): void {
  for (
    const field of [
      "dim",
      "hiddenDim",
      "nLayers",
      "nHeads",
      "nKvHeads",
      "vocabSize",
      "maxSeqLen",
    ] as const
  ) {
    const value = config[field];
    if (!Number.isInteger(value) || value < 1) {
      throw new RangeError(`${source}: ${field} must be a positive integer, got ${value}`);
    }
  }
  if (config.dim % config.nHeads !== 0) {
    throw new RangeError(
      `${source}: dim (${config.dim}) must be divisible by nHeads (${config.nHeads})`,
    );
  }
  if (config.nHeads % config.nKvHeads !== 0) {
    throw new RangeError(
      `${source}: nHeads (${config.nHeads}) must be divisible by nKvHeads (${config.nKvHeads})`,
    );
  }
  if (headDim(config) % 2 !== 0) {
    throw new RangeError(
      `${source}: head dimension dim/nHeads = ${headDim(config)} must be even for RoPE`,
    );
  }
  if (!(config.ropeTheta > 0) || !Number.isFinite(config.ropeTheta)) {
    throw new RangeError(`${source}: ropeTheta must be finite and > 0, got ${config.ropeTheta}`);
  }
  if (!(config.normEps >= 0) || !Number.isFinite(config.normEps)) {
    throw new RangeError(`${source}: normEps must be finite and >= 0, got ${config.normEps}`);
  }
  const window = config.slidingWindow;
  if (window !== undefined && (!Number.isInteger(window) || window < 1)) {
    throw new RangeError(`${source}: slidingWindow must be a positive integer, got ${window}`);
  }
  const scaling = config.ropeScaling;
  if (scaling !== undefined) {
    if (scaling.type !== "linear") {
      throw new RangeError(
        `${source}: ropeScaling.type: expected "linear", got ${JSON.stringify(scaling.type)}`,
      );
    }
    if (!(scaling.factor > 0) || !Number.isFinite(scaling.factor)) {
      throw new RangeError(
        `${source}: ropeScaling.factor must be finite and > 0, got ${scaling.factor}`,
      );
    }
  }
  if (config.ropeLayout !== "interleaved" && config.ropeLayout !== "half") {
    throw new RangeError(
      `${source}: ropeLayout must be "interleaved" or "half", got ${String(config.ropeLayout)}`,
    );
  }
}

/**
 * The configuration of a run that processes `positions` positions: `config` with `maxSeqLen`
 * lowered to that, so a decoder built from it sizes its KV cache, RoPE table and history to the
 * run, not to the model's maximum (a version 1 checkpoint may state any `maxSeqLen`).
 *
 * @example
 * ```ts
 * import { contextConfig, preset } from "./config.ts";
 * if (contextConfig(preset("stories15M"), 40).maxSeqLen !== 40) throw new Error("wrong");
 * ```
 */
export function contextConfig(config: LlamaConfig, positions: number): LlamaConfig {
  if (!Number.isInteger(positions) || positions < 1 || positions > config.maxSeqLen) {
    throw new RangeError(
      `positions: expected an integer in [1, maxSeqLen ${config.maxSeqLen}], got ${positions}`,
    );
  }
  return { ...config, maxSeqLen: positions };
}

/** Named shapes of real models, for random-weight runs and benchmarks. */
export const PRESETS: Readonly<Record<string, LlamaConfig>> = {
  stories260K: makeConfig({
    dim: 64,
    hiddenDim: 172,
    nLayers: 5,
    nHeads: 8,
    nKvHeads: 4,
    vocabSize: 512,
    maxSeqLen: 512,
  }),
  stories15M: makeConfig({
    dim: 288,
    hiddenDim: 768,
    nLayers: 6,
    nHeads: 6,
    nKvHeads: 6,
    vocabSize: 32000,
    maxSeqLen: 256,
  }),
  stories42M: makeConfig({
    dim: 512,
    hiddenDim: 1376,
    nLayers: 8,
    nHeads: 8,
    nKvHeads: 8,
    vocabSize: 32000,
    maxSeqLen: 1024,
  }),
  stories110M: makeConfig({
    dim: 768,
    hiddenDim: 2048,
    nLayers: 12,
    nHeads: 12,
    nKvHeads: 12,
    vocabSize: 32000,
    maxSeqLen: 1024,
  }),
  "TinyLlama-1.1B": makeConfig({
    dim: 2048,
    hiddenDim: 5632,
    nLayers: 22,
    nHeads: 32,
    nKvHeads: 4,
    vocabSize: 32000,
    maxSeqLen: 2048,
    sharedClassifier: false,
  }),
  "Llama-2-7B": makeConfig({
    dim: 4096,
    hiddenDim: 11008,
    nLayers: 32,
    nHeads: 32,
    nKvHeads: 32,
    vocabSize: 32000,
    maxSeqLen: 4096,
    sharedClassifier: false,
  }),
};

/**
 * The preset called `name`, or an error listing the known names.
 *
 * @example
 * ```ts
 * import { preset } from "./config.ts";
 * if (preset("stories15M").dim !== 288) throw new Error("wrong");
 * ```
 */
export function preset(name: string): LlamaConfig {
  const config = PRESETS[name];
  if (!config) {
    throw new RangeError(`unknown preset "${name}"; known: ${Object.keys(PRESETS).join(", ")}`);
  }
  return { ...config };
}
