/**
 * Text generation over any decoder: prefill the prompt, then choose each next token by
 * argmax, Gumbel-max temperature sampling, or top-k/top-p sampling. On WebGPU, greedy and
 * temperature sampling run GPU-resident (no read-back per token).
 *
 * @module
 */
import type { Decoder } from "./decoder.ts";
import { BOS } from "./config.ts";
import { gumbelSample, Sampler } from "../reference/sampling.ts";
import { checkFiniteLogits } from "./logits.ts";

/** Tokens per GPU submit when generation is streamed to an `onToken` listener. */
export const STREAM_EVERY = 16;

/** Options of {@linkcode generate}. */
export interface GenerateOptions {
  /** New tokens to generate. */
  steps: number;
  /** 0 (default) is greedy; above 0 samples. */
  temperature?: number;
  /** Keep the `topK` most probable tokens (reads logits back per token on WebGPU). */
  topK?: number;
  /** Nucleus sampling mass in (0, 1], taken at temperature 1 over the top-k set renormalized
   * when `topK` is set too; the temperature applies after it, as in llama.cpp's default chain
   * (reads logits back per token on WebGPU). */
  topP?: number;
  /** Seed of every random choice. */
  seed?: number;
  /** Stop at BOS (id 1), as llama2.c does; true by default. */
  stopAtBos?: boolean;
  /** Called with each new token id as soon as it is known. */
  onToken?: (token: number) => void;
  /** Also return the logits of every position processed (not available GPU-resident). */
  collectLogits?: boolean;
}

/** What {@linkcode generate} produced and how fast. */
export interface GenerationResult {
  /** Generated ids, without the prompt (ending before BOS when stopping there). */
  tokens: number[];
  /** Milliseconds for the prompt through its first generated token. */
  prefillMs: number;
  /** Milliseconds for the remaining generated tokens. */
  decodeMs: number;
  /** Prompt tokens per second. */
  prefillTokensPerSecond: number;
  /** Forward passes run after the first generated token: what the decode time covers. */
  decodeSteps: number;
  /** `decodeSteps` per second of `decodeMs` (0 when none ran). */
  decodeTokensPerSecond: number;
  /** With `collectLogits`: the logits after each processed position. */
  logits?: Float32Array[];
  /** Whether tokens were chosen on the GPU without per-token read-back. */
  gpuResident: boolean;
}

/**
 * Generates `steps` tokens after `prompt` (at most `maxSeqLen − prompt.length + 1`: the last
 * token is chosen, never processed). Stops with an error naming the position at the first
 * logits that are not finite, on every backend.
 *
 * @example
 * ```ts
 * import { makeConfig } from "./config.ts";
 * import { randomWeights } from "./weights.ts";
 * import { CpuDecoder } from "./cpu_decoder.ts";
 * import { generate } from "./generate.ts";
 * const config = makeConfig({ dim: 16, hiddenDim: 32, nLayers: 1, nHeads: 2, nKvHeads: 1, vocabSize: 20, maxSeqLen: 16 });
 * const result = await generate(new CpuDecoder(config, randomWeights(config, 3)), [1, 4], { steps: 5, stopAtBos: false });
 * if (result.tokens.length !== 5) throw new Error("wrong");
 * ```
 */
export async function generate(
  decoder: Decoder,
  prompt: readonly number[],
  options: GenerateOptions,
): Promise<GenerationResult> {
  const {
    steps,
    temperature = 0,
    topK,
    topP,
    seed = 0,
    stopAtBos = true,
    onToken,
    collectLogits = false,
  } = options;
  if (!Number.isInteger(steps) || steps < 1) {
    throw new RangeError(`steps: expected an integer >= 1, got ${steps}`);
  }
  if (prompt.length === 0) throw new RangeError("prompt: expected at least one token, got none");
  if (prompt.length + steps - 1 > decoder.config.maxSeqLen) {
    throw new RangeError(
      `prompt (${prompt.length} tokens) + steps (${steps}) - 1 exceed the model's maxSeqLen ${decoder.config.maxSeqLen}`,
    );
  }
  const sampler = topK !== undefined || topP !== undefined
    ? new Sampler({ temperature, topK, topP, seed })
    : undefined;
  const finish = (
    tokens: number[],
    prefillMs: number,
    decodeMs: number,
    decodeSteps: number,
    gpuResident: boolean,
    logits?: Float32Array[],
  ) => {
    const end = stopAtBos ? tokens.indexOf(BOS) : -1;
    const kept = end >= 0 ? tokens.slice(0, end) : tokens;
    return {
      tokens: kept,
      prefillMs,
      decodeMs,
      prefillTokensPerSecond: prompt.length / (prefillMs / 1000),
      decodeSteps,
      decodeTokensPerSecond: decodeSteps > 0 ? decodeSteps / (decodeMs / 1000) : 0,
      logits,
      gpuResident,
    };
  };

  // A decoder that can choose tokens on its device skips the per-token read-back.
  if (decoder.generate && !sampler && !collectLogits) {
    let stopped = false;
    const run = await decoder.generate(prompt, steps, {
      temperature,
      seed,
      // With a listener, stream in batches: one submit and one read-back per STREAM_EVERY tokens.
      streamEvery: onToken ? STREAM_EVERY : steps,
      onTokens: (tokens) => {
        for (const token of tokens) {
          stopped ||= stopAtBos && token === BOS;
          if (!stopped) onToken?.(token);
        }
      },
    });
    // The GPU runs every step (it does not stop at BOS): all of them count.
    return finish(run.tokens, run.prefillMs, run.decodeMs, steps - 1, true);
  }

  const choose = (logits: Float32Array, pos: number) =>
    sampler ? sampler.sample(logits) : gumbelSample(logits, temperature, seed, pos);
  const allLogits: Float32Array[] = [];
  const start = performance.now();
  let logits: Float32Array;
  if (collectLogits) {
    for (let i = 0; i < prompt.length; i++) {
      allLogits.push(logits = await decoder.forward(prompt[i], i));
    }
  } else {
    logits = await decoder.prefill(prompt);
  }
  const tokens: number[] = [];
  checkFiniteLogits(logits!, prompt.length - 1);
  let next = choose(logits!, prompt.length);
  const prefillMs = performance.now() - start;
  const decodeStart = performance.now();
  let decodeSteps = 0;
  for (let i = 0; i < steps; i++) {
    tokens.push(next);
    if (stopAtBos && next === BOS) break;
    onToken?.(next);
    if (i === steps - 1) break;
    const pos = prompt.length + i;
    logits = await decoder.forward(next, pos);
    decodeSteps++;
    checkFiniteLogits(logits, pos);
    if (collectLogits) allLogits.push(logits);
    next = choose(logits, pos + 1);
  }
  const decodeMs = performance.now() - decodeStart;
  return finish(
    tokens,
    prefillMs,
    decodeMs,
    decodeSteps,
    false,
    collectLogits ? allLogits : undefined,
  );
}
