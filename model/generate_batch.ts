/**
 * Generation for many prompts at once with continuous batching: up to `maxBatch` sequences
 * advance together, each step one row per decoding sequence plus the whole prompt of every
 * sequence that just joined; a sequence that finishes frees its cache and the next waiting
 * prompt takes its place in the next step.
 *
 * @module
 */
import type { BatchDecoder, BatchRow } from "./batch_decoder.ts";
import { BOS } from "./tokenizer.ts";
import { gumbelSample } from "../reference/sampling.ts";

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
  /** Sequences decoding at once (default: every prompt). */
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
}

/**
 * Generates up to `steps` tokens after each prompt; token choices match `generate` on each
 * prompt alone (same seed), whatever the batching.
 *
 * @example
 * ```ts
 * import { makeConfig } from "./config.ts";
 * import { randomWeights } from "./weights.ts";
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
  const maxBatch = options.maxBatch ?? prompts.length;
  if (!Number.isInteger(steps) || steps < 1) {
    throw new RangeError(`steps: expected an integer >= 1, got ${steps}`);
  }
  if (!Number.isInteger(maxBatch) || maxBatch < 1) {
    throw new RangeError(`maxBatch: expected an integer >= 1, got ${maxBatch}`);
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
  // Rows each live sequence runs in the next step: its prompt when it joins, then one token.
  const pending = new Map<number, BatchRow[]>();
  const admit = () => {
    while (pending.size < maxBatch && waiting.length > 0) {
      const seq = waiting.shift()!;
      pending.set(seq, prompts[seq].map((token, pos) => ({ seq, token, pos })));
    }
  };
  const rowsPerStep: number[] = [];
  let generated = 0;
  const start = performance.now();
  admit();
  while (pending.size > 0) {
    const rows = [...pending.values()].flat();
    rowsPerStep.push(rows.length);
    const logits = await decoder.step(rows);
    for (const [i, [seq, seqRows]] of [...pending].entries()) {
      const last = seqRows[seqRows.length - 1];
      const next = gumbelSample(logits[i], temperature, seed, last.pos + 1);
      const stop = stopAtBos && next === BOS;
      if (!stop) {
        tokens[seq].push(next);
        generated++;
        onToken?.(seq, next);
      }
      // The last token is chosen but never run: its logits are not needed.
      if (stop || tokens[seq].length === steps) {
        decoder.release(seq);
        pending.delete(seq);
      } else {
        pending.set(seq, [{ seq, token: next, pos: last.pos + 1 }]);
      }
    }
    admit();
  }
  const ms = performance.now() - start;
  return {
    tokens,
    steps: rowsPerStep.length,
    rowsPerStep,
    ms,
    tokensPerSecond: generated / (ms / 1000),
  };
}
