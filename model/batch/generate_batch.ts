/**
 * Generation for many prompts at once with continuous batching: up to `maxBatch` sequences
 * advance together, each step one row per decoding sequence plus, in the rows left (the
 * decoder's `maxRows`), prompt tokens of sequences that joined; a sequence that finishes frees
 * its cache and the next waiting prompt takes its place, once the cache can hold its whole run.
 *
 * @module
 */
import type { BatchDecoder, BatchRow } from "./batch_decoder.ts";
import { BOS } from "../config.ts";
import { checkFiniteLogits } from "../logits.ts";
import { gumbelSample } from "../../reference/sampling.ts";

/** Options of {@linkcode generateBatch}. */
export interface BatchGenerateOptions {
  /** New tokens per prompt (at most; a sequence stops early at BOS). */
  steps: number;
  /** 0 (default) is greedy; above 0 is a Gumbel-max draw, as `generate` draws it. */
  temperature?: number;
  /** Seed of the sampling noise (the same for every sequence: each draws as if alone). */
  seed?: number;
  /** Stop a sequence at BOS (id 1), as llama2.c does; true by default. */
  stopAtBos?: boolean;
  /**
   * Sequences running at once (default: every prompt, up to the decoder's `maxRows`); fewer run
   * while the KV cache cannot hold another's whole run.
   */
  maxBatch?: number;
  /** Called with each new token of sequence `index` (the prompt's index). */
  onToken?: (index: number, token: number) => void;
}

/** What {@linkcode generateBatch} produced and how fast. */
export interface BatchGeneration {
  /** Generated ids per prompt, without the prompt (ending before BOS when stopping there). */
  tokens: number[][];
  /** Decoder steps run. */
  steps: number;
  /** Rows of each step. */
  rowsPerStep: number[];
  /** Milliseconds for everything. */
  ms: number;
  /** Generated tokens per second over all sequences. */
  tokensPerSecond: number;
  /** The most KV-cache bytes live sequences held at once (`kvUsedBytes` after each step). */
  kvPeakUsedBytes: number;
}

/**
 * Generates up to `steps` tokens after each prompt; token choices match `generate` on each
 * prompt alone (same seed), whatever the batching.
 *
 * @example
 * ```ts
 * import { makeConfig } from "../config.ts";
 * import { randomWeights } from "../weights.ts";
 * import { CpuBatchDecoder } from "./cpu_batch_decoder.ts";
 * import { generateBatch } from "./generate_batch.ts";
 * const config = makeConfig({ dim: 16, hiddenDim: 32, nLayers: 1, nHeads: 2, nKvHeads: 1, vocabSize: 20, maxSeqLen: 16 });
 * const decoder = new CpuBatchDecoder(config, randomWeights(config, 3), { layout: "paged", maxSequences: 2 });
 * const run = await generateBatch(decoder, [[1, 4], [1, 9, 9], [2]], { steps: 5, stopAtBos: false, maxBatch: 2 });
 * if (run.tokens.length !== 3 || run.tokens[2].length !== 5) throw new Error("wrong");
 * ```
 */
export async function generateBatch(
  decoder: BatchDecoder,
  prompts: readonly (readonly number[])[],
  options: BatchGenerateOptions,
): Promise<BatchGeneration> {
  const { steps, temperature = 0, seed = 0, stopAtBos = true, onToken } = options;
  const maxBatch = options.maxBatch ?? Math.min(prompts.length, decoder.maxRows);
  if (!Number.isInteger(steps) || steps < 1) {
    throw new RangeError(`steps: expected an integer >= 1, got ${steps}`);
  }
  if (!Number.isInteger(maxBatch) || maxBatch < 1 || maxBatch > decoder.maxRows) {
    throw new RangeError(
      `maxBatch: expected an integer in [1, maxRows ${decoder.maxRows}], got ${maxBatch}`,
    );
  }
  if (prompts.length === 0) throw new RangeError("prompts: expected at least one, got none");
  prompts.forEach((prompt, i) => {
    if (prompt.length === 0) {
      throw new RangeError(`prompt ${i}: expected at least one token, got none`);
    }
    if (prompt.length + steps > decoder.config.maxSeqLen + 1) {
      throw new RangeError(
        `prompt ${i} (${prompt.length} tokens) + steps (${steps}) exceed the model's maxSeqLen ${decoder.config.maxSeqLen}`,
      );
    }
  });
  const tokens: number[][] = prompts.map(() => []);
  const waiting = prompts.map((_, i) => i);
  // Live sequences: how much of the prompt has run, and the next decode row once it all has.
  const live = new Map<number, { fed: number; next?: BatchRow }>();
  const admit = () => {
    while (live.size < maxBatch && waiting.length > 0) {
      const seq = waiting[0];
      // Its whole run, reserved up front, so it cannot run out of cache mid-way (the last
      // token is chosen, never run).
      try {
        decoder.reserve(new Map([[seq, prompts[seq].length + steps - 1]]));
      } catch (error) {
        if (live.size === 0) throw error; // it will never fit
        return; // it waits for a running sequence to finish
      }
      waiting.shift();
      live.set(seq, { fed: 0 });
    }
  };
  const rowsPerStep: number[] = [];
  let generated = 0;
  let kvPeakUsedBytes = 0;
  const start = performance.now();
  try {
    admit();
    while (live.size > 0) {
      // Decode rows first (one per running sequence), then prompt chunks in the rows left.
      let budget = decoder.maxRows - [...live.values()].filter((s) => s.next).length;
      const rows: BatchRow[] = [];
      const ran: number[] = []; // sequences whose logits this step yields a token for
      for (const [seq, state] of live) {
        if (state.next) {
          rows.push(state.next);
          ran.push(seq);
          continue;
        }
        const prompt = prompts[seq];
        const count = Math.min(prompt.length - state.fed, budget);
        if (count <= 0) continue;
        budget -= count;
        for (let pos = state.fed; pos < state.fed + count; pos++) {
          rows.push({ seq, token: prompt[pos], pos });
        }
        state.fed += count;
        ran.push(state.fed === prompt.length ? seq : -1);
      }
      rowsPerStep.push(rows.length);
      const logits = await decoder.step(rows);
      kvPeakUsedBytes = Math.max(kvPeakUsedBytes, decoder.kvUsedBytes);
      for (const [i, seq] of ran.entries()) {
        if (seq < 0) continue; // a prompt chunk with more to come
        const state = live.get(seq)!;
        const pos = state.next ? state.next.pos + 1 : prompts[seq].length;
        try {
          checkFiniteLogits(logits[i], pos - 1);
        } catch (error) {
          throw new RangeError(`prompt ${seq}: ${(error as Error).message}`);
        }
        const next = gumbelSample(logits[i], temperature, seed, pos);
        const stop = stopAtBos && next === BOS;
        if (!stop) {
          tokens[seq].push(next);
          generated++;
          onToken?.(seq, next);
        }
        if (stop || tokens[seq].length === steps) {
          decoder.release(seq);
          live.delete(seq);
        } else {
          state.next = { seq, token: next, pos };
        }
      }
      admit();
    }
  } finally {
    for (const seq of live.keys()) decoder.release(seq);
  }
  const ms = performance.now() - start;
  return {
    tokens,
    steps: rowsPerStep.length,
    rowsPerStep,
    ms,
    tokensPerSecond: generated / (ms / 1000),
    kvPeakUsedBytes,
  };
}
