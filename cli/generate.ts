/**
 * `deno task generate`: runs a llama2.c checkpoint (or a seeded random model of a preset
 * shape) on the CPU reference or WebGPU, streaming text as it is generated.
 *
 * @module
 */
import { parseFlags, UsageError } from "./flags.ts";
import { readPromptsFile, runBatch } from "./_batch.ts";
import { contextConfig, type LlamaConfig, preset, PRESETS } from "../model/config.ts";
import { readModelFile, readModelFileAsStored } from "../model/formats/gguf_llama.ts";
import { checkKvCacheFitsMemory, checkWeightsFitMemory } from "../model/memory.ts";
import { CpuDecoder } from "../model/cpu_decoder.ts";
import { generate } from "../model/generate.ts";
import { GpuDecoder } from "../model/webgpu/decoder.ts";
import { readTokenizer, type Tokenizer } from "../model/formats/tokenizer.ts";
import { type LlamaWeights, randomWeights } from "../model/weights.ts";
import {
  checkKvFormat,
  checkWeightFormat,
  dequantizeWeights,
  randomStoredWeights,
  type StoredWeights,
} from "../model/precision.ts";
import type { TensorFormat } from "../reference/quantize.ts";
import { parseLimitsChoice, requestGpu } from "../gpu/device.ts";

/** The CLI's help text. */
export const GENERATE_HELP: string = `Usage: deno task generate [options]

Model (one of):
  --model PATH          llama2.c checkpoint (legacy or version 1 format) or GGUF file
                        (a GGUF file's vocabulary is the tokenizer unless --tokenizer)
  --preset NAME         seeded random weights of a preset shape: ${Object.keys(PRESETS).join(", ")}
Input (one of):
  --tokenizer PATH      llama2.c tokenizer.bin, with --prompt
  --prompt TEXT         text to continue (needs --tokenizer or a GGUF vocabulary); repeat it
                        for several prompts
  --prompts-file PATH   one prompt per line, all generated together (needs a tokenizer)
  --tokens 1,5,17       raw token ids instead of a prompt (default: 1, BOS)
Batched decoding (several prompts, or any of these flags):
  --kv-layout L         contiguous, paged (default) or sliding: how the KV cache is laid out
  --window W            sliding-window attention over the last W positions (Mistral-style)
  --max-batch N         sequences decoding at once (default: every prompt, at most 64)
  --block-size N        positions per block of the paged layout (default 16)
Generation:
  --steps N             new tokens (default 256, capped by the model's maxSeqLen)
  --temperature T       0 for greedy (default 1.0)
  --top-p P             nucleus mass in (0, 1], cut before the temperature applies (as llama.cpp)
  --top-k K             keep the K most probable tokens
  --seed S              seed of every random choice (default 0)
  --backend cpu|webgpu  where to run (default webgpu)
  --no-kv-cache         recompute the whole prefix at every step
  --weights FORMAT      hold the weight matrices as f32, f16, q8_0, q4_0, q6_k, q5_k or q4_k
                        (default: a GGUF file's as stored, K-quants included; f32 otherwise)
  --kv FORMAT           store the KV cache as f32 (default), f16 or q8_0
  --tuning FILE         kernel variants from \`deno task tune\` (webgpu; default: the adapter's class)
  --limits L            adapter (default) or default: request only WebGPU's default limits
Output:
  --json                one JSON object: prompt ids, generated ids, text, prefill and decode tokens/s
  --logits              with --json, add the logits at every position processed
  --help                this text`;

/** Where the CLI writes. */
export interface CliIo {
  /** Standard output (text, JSON). */
  stdout: (text: string) => void;
  /** Standard error (speeds, errors). */
  stderr: (text: string) => void;
}

function number(
  flag: string,
  value: string | undefined,
  check: (n: number) => boolean,
  expected: string,
) {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n) || !check(n)) {
    throw new UsageError(`--${flag}: expected ${expected}, got "${value}"`);
  }
  return n;
}

/**
 * Runs the CLI with `args`; returns the exit code (0 ok, 1 failure, 2 bad usage).
 *
 * @example
 * ```ts ignore
 * Deno.exit(await generateMain(Deno.args));
 * ```
 */
export async function generateMain(args: string[], io: CliIo = defaultIo()): Promise<number> {
  try {
    return await run(args, io);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    io.stderr(`generate: ${message}${error instanceof UsageError ? " (see --help)" : ""}\n`);
    return error instanceof UsageError ? 2 : 1;
  }
}

/** Runs `check`, turning its RangeError into a usage error (a bad flag value). */
function usage<T>(check: () => T): T {
  try {
    return check();
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(bytes < 2 ** 20 ? 3 : 1)} MiB`;
}

function defaultIo(): CliIo {
  const encoder = new TextEncoder();
  return {
    stdout: (text) => Deno.stdout.writeSync(encoder.encode(text)),
    stderr: (text) => Deno.stderr.writeSync(encoder.encode(text)),
  };
}

async function readTuning(path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    throw new UsageError(`--tuning: cannot read ${path} (${(error as Error).message})`);
  }
}

async function run(args: string[], io: CliIo): Promise<number> {
  const flags = parseFlags(args, {
    model: { type: "string" },
    tokenizer: { type: "string" },
    prompt: { type: "string", multiple: true },
    "prompts-file": { type: "string" },
    "kv-layout": { type: "string" },
    window: { type: "string" },
    "max-batch": { type: "string" },
    "block-size": { type: "string" },
    tokens: { type: "string" },
    steps: { type: "string" },
    temperature: { type: "string" },
    "top-p": { type: "string" },
    "top-k": { type: "string" },
    seed: { type: "string" },
    backend: { type: "string" },
    tuning: { type: "string" },
    "no-kv-cache": { type: "boolean" },
    weights: { type: "string" },
    kv: { type: "string" },
    limits: { type: "string" },
    preset: { type: "string" },
    json: { type: "boolean" },
    logits: { type: "boolean" },
    help: { type: "boolean" },
  });
  if (flags.help) {
    io.stdout(GENERATE_HELP + "\n");
    return 0;
  }
  const backend = flags.backend ?? "webgpu";
  if (backend !== "cpu" && backend !== "webgpu") {
    throw new UsageError(`--backend: expected cpu or webgpu, got "${backend}"`);
  }
  if (flags.model && flags.preset) throw new UsageError("give --model or --preset, not both");
  const texts = [
    ...(flags.prompt ?? []),
    ...(flags["prompts-file"] ? await readPromptsFile(flags["prompts-file"]) : []),
  ];
  if (texts.length > 0 && flags.tokens !== undefined) {
    throw new UsageError("give --prompt (or --prompts-file) or --tokens, not both");
  }
  let weightFormat = usage(() => checkWeightFormat(flags.weights ?? "f32", "--weights"));
  const limits = usage(() => parseLimitsChoice(flags.limits));
  const kvFormat = usage(() => checkKvFormat(flags.kv ?? "f32", "--kv"));
  if (flags.kv !== undefined && flags["no-kv-cache"]) {
    throw new UsageError("give --kv or --no-kv-cache, not both");
  }
  const window = number(
    "window",
    flags.window,
    (n) => Number.isInteger(n) && n >= 1,
    "an integer >= 1",
  );
  const maxBatch = number(
    "max-batch",
    flags["max-batch"],
    (n) => Number.isInteger(n) && n >= 1 && n <= 64,
    "an integer in [1, 64]",
  );
  const blockSize = number(
    "block-size",
    flags["block-size"],
    (n) => Number.isInteger(n) && n >= 1,
    "an integer >= 1",
  );
  const batched = texts.length > 1 || flags["kv-layout"] !== undefined || window !== undefined ||
    maxBatch !== undefined || blockSize !== undefined;
  if (batched) {
    const unsupported = (["top-p", "top-k", "no-kv-cache", "logits"] as const).find((f) =>
      flags[f] !== undefined
    );
    if (unsupported) {
      throw new UsageError(
        `--${unsupported} is not available with batched decoding (several prompts, --kv-layout, --window, --max-batch, --block-size)`,
      );
    }
    if (flags.weights !== undefined || flags.kv !== undefined) {
      throw new UsageError("--weights and --kv apply to single-sequence decoding, not batched");
    }
  }
  if (flags.logits && !flags.json) throw new UsageError("--logits needs --json");
  const temperature = number("temperature", flags.temperature, (n) => n >= 0, "a number >= 0") ?? 1;
  const topP = number("top-p", flags["top-p"], (n) => n > 0 && n <= 1, "a number in (0, 1]");
  const topK = number(
    "top-k",
    flags["top-k"],
    (n) => Number.isInteger(n) && n >= 1,
    "an integer >= 1",
  );
  const seed = number("seed", flags.seed, Number.isInteger, "an integer") ?? 0;
  const requestedSteps = number(
    "steps",
    flags.steps,
    (n) => Number.isInteger(n) && n >= 1,
    "an integer >= 1",
  );

  const presetName = flags.preset ?? "stories260K";
  if (!flags.model && !(presetName in PRESETS)) {
    throw new UsageError(
      `--preset: expected one of ${Object.keys(PRESETS).join(", ")}, got "${presetName}"`,
    );
  }

  let config: LlamaConfig;
  let weights: LlamaWeights | StoredWeights;
  let tokenizer: Tokenizer | undefined;
  if (flags.model) {
    // The batched decoders read float32 weights; one sequence holds a GGUF file's as stored
    // unless --weights asks otherwise. Each reader checks memory for what it holds.
    ({ config, weights, tokenizer } = batched
      ? await readModelFile(flags.model)
      : await readModelFileAsStored(flags.model, {
        weights: flags.weights === undefined ? undefined : weightFormat,
      }));
    if ("format" in weights) weightFormat = weights.format;
  } else {
    config = preset(presetName);
    checkWeightsFitMemory(config, `--preset ${presetName}`, weightFormat);
    weights = weightFormat === "f32"
      ? randomWeights(config, seed)
      : randomStoredWeights(config, seed, weightFormat);
  }
  const source = flags.model ?? `--preset ${presetName}`;
  if (flags.tokenizer) tokenizer = await readTokenizer(flags.tokenizer, config.vocabSize);
  if (texts.length > 0 && !tokenizer) {
    throw new UsageError(
      "--prompt and --prompts-file need --tokenizer (or a GGUF model, which has a vocabulary)",
    );
  }
  const tooLong = (tokens: number, atLeast = "") =>
    new UsageError(
      `the prompt has ${atLeast}${tokens} tokens; the model's maxSeqLen is ${config.maxSeqLen}`,
    );

  const encode = (text: string) => {
    // Cheap bound first: a huge prompt is refused without encoding it.
    const least = tokenizer!.minTokenCount(text);
    if (least > config.maxSeqLen) throw tooLong(least, "at least ");
    return tokenizer!.encode(text);
  };
  let prompts: number[][];
  if (flags.tokens !== undefined) {
    prompts = [
      flags.tokens.split(",").map((s) => {
        const id = Number(s.trim());
        if (s.trim() === "" || !Number.isInteger(id) || id < 0 || id >= config.vocabSize) {
          throw new UsageError(`--tokens: "${s}" is not a token id in [0, ${config.vocabSize})`);
        }
        return id;
      }),
    ];
  } else if (texts.length > 0) {
    prompts = texts.map(encode);
  } else {
    prompts = [[1]];
  }
  const longest = prompts.reduce((most, p) => Math.max(most, p.length), 0); // no spread: 100k+ prompts
  if (longest > config.maxSeqLen) throw tooLong(longest);
  if (batched) {
    // A model file was read as float32 (readModelFile); a preset's weights are float32 here.
    if ("format" in weights) weights = toFloat32(config, weights, source);
    const steps = Math.min(requestedSteps ?? 256, config.maxSeqLen - longest + 1);
    await runBatch({
      backend,
      config: contextConfig(config, longest + steps - 1),
      weights,
      prompts,
      steps,
      temperature,
      seed,
      limits,
      layout: flags["kv-layout"],
      window,
      maxBatch,
      blockSize,
      json: flags.json ?? false,
      tokenizer,
      stdout: io.stdout,
      stderr: io.stderr,
    });
    return 0;
  }
  const prompt = prompts[0];
  if (prompt.length > config.maxSeqLen) throw tooLong(prompt.length);
  // The last token is chosen, never processed: prompt + steps - 1 positions.
  const steps = Math.min(requestedSteps ?? 256, config.maxSeqLen - prompt.length + 1);
  // Size the KV cache, RoPE table and history to this run, not to the model's maxSeqLen.
  const runConfig = contextConfig(config, prompt.length + steps - 1);
  checkKvCacheFitsMemory(runConfig, `${source}: maxSeqLen ${config.maxSeqLen}, run`);

  const kvCache = !flags["no-kv-cache"];
  const formats = { weights: weightFormat, kvCache: kvCache ? kvFormat : false } as const;
  const gpu = backend === "webgpu" ? await requestGpu({ limits }) : undefined;
  const decoder: CpuDecoder | GpuDecoder = gpu
    ? await GpuDecoder.create(gpu, runConfig, weights, {
      ...formats,
      tuning: flags.tuning === undefined ? undefined : await readTuning(flags.tuning),
    })
    : new CpuDecoder(runConfig, weights, formats);

  const textDecoder = new TextDecoder();
  let previous = prompt[prompt.length - 1];
  const piece = (token: number) => {
    const bytes = tokenizer!.decodePiece(previous, token);
    previous = token;
    return textDecoder.decode(bytes, { stream: true });
  };
  const stream = !flags.json;
  if (stream && tokenizer) io.stdout(tokenizer.decode(prompt));
  const result = await generate(decoder, prompt, {
    steps,
    temperature,
    topP,
    topK,
    seed,
    collectLogits: flags.logits,
    onToken: stream ? (token) => io.stdout(tokenizer ? piece(token) : `${token} `) : undefined,
  });
  if (flags.json) {
    io.stdout(
      JSON.stringify({
        backend,
        kvCache,
        weights: weightFormat,
        kv: kvCache ? kvFormat : undefined,
        weightBytes: decoder.weightBytes,
        kvCacheBytes: kvCache ? decoder.kvCacheBytes : undefined,
        promptTokens: prompt,
        tokens: result.tokens,
        text: tokenizer ? tokenizer.decode([...prompt, ...result.tokens]) : undefined,
        prefillTokensPerSecond: result.prefillTokensPerSecond,
        decodeTokensPerSecond: result.decodeTokensPerSecond,
        gpuResident: result.gpuResident,
        logits: result.logits?.map((l) => Array.from(l)),
      }) + "\n",
    );
  } else {
    io.stdout("\n");
    io.stderr(
      `prefill: ${prompt.length} tokens, ${result.prefillTokensPerSecond.toFixed(1)} tokens/s; ` +
        `decode: ${result.tokens.length} tokens, ${
          result.decodeTokensPerSecond.toFixed(1)
        } tokens/s ` +
        `(${backend}${kvCache ? "" : ", no KV cache"}${
          result.gpuResident ? ", GPU-resident" : ""
        })\n` +
        `resident: weights ${describeFormats(weights, weightFormat)} ${mib(decoder.weightBytes)}` +
        (kvCache ? `, KV cache ${kvFormat} ${mib(decoder.kvCacheBytes)}` : "") + "\n",
    );
  }
  gpu?.destroy();
  return 0;
}

/** Float32 weights from stored ones, after checking that they fit beside them. */
function toFloat32(config: LlamaConfig, weights: StoredWeights, source: string): LlamaWeights {
  checkWeightsFitMemory(config, `${source} (converted to float32)`);
  return dequantizeWeights(weights);
}

/** The formats of `weights`' matrices (the embedding table included). */
function storedFormats(weights: StoredWeights): TensorFormat[] {
  const matrices = [weights.tokenEmbedding, weights.classifier];
  for (const layer of weights.layers) {
    matrices.push(layer.wq, layer.wk, layer.wv, layer.wo, layer.w1, layer.w2, layer.w3);
  }
  return [...new Set(matrices.map((m) => m.format))];
}

/** `q4_k`, or `q4_k (q4_k, q6_k, q5_k)` for weights mixing formats as a Q4_K_M file does. */
function describeFormats(weights: LlamaWeights | StoredWeights, format: string): string {
  if (!("format" in weights)) return format;
  const formats = storedFormats(weights);
  return formats.length > 1 ? `${format} (${formats.join(", ")})` : format;
}

if (import.meta.main) Deno.exit(await generateMain(Deno.args));
