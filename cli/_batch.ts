// `deno task generate` with several prompts or a KV-cache layout: continuous batching on the
// batched decoders (`generateBatch`), each prompt's continuation printed in turn.
import { UsageError } from "./flags.ts";
import { checkFits } from "../model/memory.ts";
import type { BatchDecoder } from "../model/batch/batch_decoder.ts";
import { type LlamaConfig, validateConfig } from "../model/config.ts";
import { CpuBatchDecoder } from "../model/batch/cpu_batch_decoder.ts";
import { generateBatch } from "../model/batch/generate_batch.ts";
import { GpuBatchDecoder } from "../model/webgpu/batch_decoder.ts";
import {
  KV_LAYOUTS,
  type KvLayout,
  kvPoolBytes,
  type KvStoreOptions,
} from "../model/batch/kv_store.ts";
import type { Tokenizer } from "../model/formats/tokenizer.ts";
import type { LlamaWeights } from "../model/weights.ts";
import { requestGpu } from "../gpu/device.ts";

/** What the batched run needs from the command line. */
export interface BatchRun {
  backend: "cpu" | "webgpu";
  config: LlamaConfig;
  weights: LlamaWeights;
  prompts: number[][];
  steps: number;
  temperature: number;
  seed: number;
  layout?: string;
  window?: number;
  maxBatch?: number;
  blockSize?: number;
  json: boolean;
  tokenizer?: Tokenizer;
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

/** Runs the prompts through a batched decoder; prints each continuation, then the speed. */
export async function runBatch(run: BatchRun): Promise<void> {
  const layout = (run.layout ?? (run.window ? "sliding" : "paged")) as KvLayout;
  if (!KV_LAYOUTS.includes(layout)) {
    throw new UsageError(`--kv-layout: expected one of ${KV_LAYOUTS.join(", ")}, got "${layout}"`);
  }
  if (layout === "sliding" && run.window === undefined) {
    throw new UsageError("--kv-layout sliding needs --window W");
  }
  const config = { ...run.config, slidingWindow: run.window };
  validateConfig(config, "--window");
  const maxBatch = Math.min(run.maxBatch ?? run.prompts.length, 64);
  const options: KvStoreOptions = {
    layout,
    blockSize: run.blockSize,
    maxSequences: maxBatch,
    maxRows: 64,
  };
  checkFits(kvPoolBytes(config, options), `the KV cache (${layout}) needs`);
  const gpu = run.backend === "webgpu" ? await requestGpu() : undefined;
  const decoder: BatchDecoder & { destroy?(): void } = gpu
    ? await GpuBatchDecoder.create(gpu, config, run.weights, options)
    : new CpuBatchDecoder(config, run.weights, options);
  try {
    const result = await generateBatch(decoder, run.prompts, {
      steps: run.steps,
      temperature: run.temperature,
      seed: run.seed,
      maxBatch,
    });
    const text = (i: number) =>
      run.tokenizer?.decode([...run.prompts[i], ...result.tokens[i]]) ?? result.tokens[i].join(" ");
    if (run.json) {
      run.stdout(
        JSON.stringify({
          backend: run.backend,
          kvLayout: layout,
          window: run.window,
          sequences: run.prompts.map((prompt, i) => ({
            promptTokens: prompt,
            tokens: result.tokens[i],
            text: run.tokenizer ? text(i) : undefined,
          })),
          steps: result.steps,
          rowsPerStep: result.rowsPerStep,
          tokensPerSecond: result.tokensPerSecond,
          kvReservedBytes: decoder.kvReservedBytes,
          kvPeakUsedBytes: result.kvPeakUsedBytes,
        }) + "\n",
      );
    } else {
      run.prompts.forEach((_, i) => run.stdout(`[${i}] ${text(i)}\n`));
      const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(2);
      const generated = result.tokens.reduce((sum, t) => sum + t.length, 0);
      run.stderr(
        `batched: ${run.prompts.length} sequences, ${generated} tokens in ${result.steps} steps, ` +
          `${result.tokensPerSecond.toFixed(1)} tokens/s (${run.backend}, ${layout} KV cache, ` +
          `up to ${maxBatch} at once); KV cache reserved ${mib(decoder.kvReservedBytes)} MiB, ` +
          `used at most ${mib(result.kvPeakUsedBytes)} MiB\n`,
      );
    }
  } finally {
    decoder.destroy?.();
    gpu?.destroy();
  }
}

/** Most bytes a prompts file may have. */
const MAX_PROMPTS_FILE = 16 << 20;

/** The non-empty lines of a prompts file (a regular file of at most 16 MiB). */
export async function readPromptsFile(path: string): Promise<string[]> {
  const info = await Deno.stat(path).catch((error) => {
    throw new UsageError(`--prompts-file ${path}: ${(error as Error).message}`);
  });
  if (!info.isFile) {
    throw new UsageError(`--prompts-file ${path}: expected a regular file, got something else`);
  }
  if (info.size > MAX_PROMPTS_FILE) {
    throw new UsageError(
      `--prompts-file ${path}: expected at most ${MAX_PROMPTS_FILE} bytes, got ${info.size}`,
    );
  }
  const lines = (await Deno.readTextFile(path)).split(/\r?\n/).filter((line) => line.trim());
  if (lines.length === 0) {
    throw new UsageError(`--prompts-file ${path}: expected at least one prompt line, got none`);
  }
  return lines;
}
