/**
 * `deno task accuracy`: what each weight and KV-cache format costs a model in accuracy,
 * against the model's own float32 weights (a GGUF file's tensors dequantized), teacher-forced
 * over a text (the shipped `models/eval_text.txt`, or `--text`). The figures are those of
 * llama.cpp's `llama-perplexity --kl-divergence` (see `model/accuracy.ts`): KL divergence from
 * f32 (mean with 95% interval, median, 99th percentile, maximum), same top-1, Δp, and the
 * perplexity beside f32's.
 *
 * @module
 */
import { parseFlags, UsageError } from "./flags.ts";
import {
  type AccuracyReport,
  compareLogits,
  evaluationChunks,
  logitsOverChunks,
  nextTokens,
} from "../model/accuracy.ts";
import { contextConfig, type LlamaConfig } from "../model/config.ts";
import { CpuDecoder } from "../model/cpu_decoder.ts";
import type { Decoder } from "../model/decoder.ts";
import { readModelFile } from "../model/formats/gguf_llama.ts";
import { readTokenizer, type Tokenizer } from "../model/formats/tokenizer.ts";
import {
  checkKvFormat,
  checkWeightFormat,
  matrixFormat,
  storeWeights,
} from "../model/precision.ts";
import { headDim } from "../model/config.ts";
import { GpuDecoder } from "../model/webgpu/decoder.ts";
import { requestGpu } from "../gpu/device.ts";
import { KV_FORMATS, type KvFormat } from "../reference/kv_cache.ts";
import { TENSOR_FORMATS, type TensorFormat } from "../reference/quantize.ts";
import { isKQuantFormat } from "../reference/kquants.ts";

const MODELS = new URL("../models/", import.meta.url);
/** The model `--model` defaults to: the shipped stories260K. */
export const DEFAULT_MODEL: string = new URL("stories260K.bin", MODELS).pathname;
/** Its tokenizer, used when the default model is. */
export const DEFAULT_TOKENIZER: string = new URL("tok512.bin", MODELS).pathname;
/** The text `--text` defaults to: a short TinyStories-style story written for this. */
export const DEFAULT_TEXT: string = new URL("eval_text.txt", MODELS).pathname;

/** The CLI's help text. */
export const ACCURACY_HELP: string = `Usage: deno task accuracy [options]

Runs the model in each weight and KV-cache format along a text, teacher-forced, and compares
every next-token distribution with the model's own float32 one (a GGUF file's tensors
dequantized): KL divergence from f32 (mean with 95% interval, median, 99th percentile,
maximum), same top-1, Δp and perplexity, as llama.cpp's llama-perplexity --kl-divergence.

Model:
  --model PATH          llama2.c checkpoint or GGUF file (default: the shipped stories260K)
  --tokenizer PATH      llama2.c tokenizer.bin (default: a GGUF file's vocabulary, or the
                        shipped tok512 with the default model)
Text:
  --text PATH           plain text to evaluate on (default: models/eval_text.txt)
  --context N           tokens per chunk, BOS included (default and most: the model's
                        maxSeqLen); a longer text is split into chunks, each from BOS
  --max-positions N     score at most the first N tokens of the text (default: all)
Formats:
  --weights LIST        weight formats, comma-separated (default: ${TENSOR_FORMATS.join(",")})
  --kv LIST             KV-cache formats, comma-separated (default: ${KV_FORMATS.join(",")})
  --backend cpu|webgpu  where to run, f32 included (default: cpu)
Output:
  --json                one JSON object instead of the table
  --help                this text`;

/** Where the CLI writes. */
export interface AccuracyIo {
  /** Standard output (the table, JSON). */
  stdout: (text: string) => void;
  /** Standard error (progress, errors). */
  stderr: (text: string) => void;
}

/** One weight x KV pair's figures against f32 (`--json`'s rows). */
export interface AccuracyRow {
  /** Weight format. */
  weights: TensorFormat;
  /** KV-cache format. */
  kv: KvFormat;
  /**
   * The formats the matrices are really held in, where some fell back (a K-quant on rows that
   * are not whole 256-value super-blocks is held as Q8_0, as llama.cpp does); absent otherwise.
   */
  heldAs?: TensorFormat[];
  /** The figures (see `model/accuracy.ts`), per-position arrays left out. */
  report: Omit<AccuracyReport, "klPerPosition" | "nmsePerPosition">;
}

/**
 * Runs the CLI with `args`; returns the exit code (0 ok, 1 failure, 2 bad usage).
 *
 * @example
 * ```ts ignore
 * Deno.exit(await accuracyMain(Deno.args));
 * ```
 */
export async function accuracyMain(args: string[], io: AccuracyIo = defaultIo()): Promise<number> {
  try {
    return await run(args, io);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    io.stderr(`accuracy: ${message}${error instanceof UsageError ? " (see --help)" : ""}\n`);
    return error instanceof UsageError ? 2 : 1;
  }
}

function defaultIo(): AccuracyIo {
  const encoder = new TextEncoder();
  return {
    stdout: (text) => Deno.stdout.writeSync(encoder.encode(text)),
    stderr: (text) => Deno.stderr.writeSync(encoder.encode(text)),
  };
}

/** A comma-separated list of formats, each checked by `check` (a RangeError → usage). */
function formatList<T extends string>(
  flag: string,
  value: string | undefined,
  all: readonly T[],
  check: (format: string, what: string) => T,
): T[] {
  if (value === undefined) return [...all];
  const list = value.split(",").map((s) => s.trim());
  try {
    const formats = list.map((f) => check(f, `--${flag}`));
    return all.filter((f) => formats.includes(f)); // in the usual order, once each
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

function integer(flag: string, value: string | undefined, min: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === "" || !Number.isInteger(n) || n < min) {
    throw new UsageError(`--${flag}: expected an integer >= ${min}, got "${value}"`);
  }
  return n;
}

async function readText(path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    throw new Error(`--text: cannot read ${path} (${(error as Error).message})`);
  }
}

async function run(args: string[], io: AccuracyIo): Promise<number> {
  const flags = parseFlags(args, {
    model: { type: "string" },
    tokenizer: { type: "string" },
    text: { type: "string" },
    context: { type: "string" },
    "max-positions": { type: "string" },
    weights: { type: "string" },
    kv: { type: "string" },
    backend: { type: "string" },
    json: { type: "boolean" },
    help: { type: "boolean" },
  });
  if (flags.help) {
    io.stdout(ACCURACY_HELP + "\n");
    return 0;
  }
  const backend = flags.backend ?? "cpu";
  if (backend !== "cpu" && backend !== "webgpu") {
    throw new UsageError(`--backend: expected cpu or webgpu, got "${backend}"`);
  }
  const askedFormats = formatList("weights", flags.weights, TENSOR_FORMATS, checkWeightFormat);
  const kvFormats = formatList("kv", flags.kv, KV_FORMATS, checkKvFormat);
  const requestedContext = integer("context", flags.context, 2);
  const maxPositions = integer("max-positions", flags["max-positions"], 1);

  const modelPath = flags.model ?? DEFAULT_MODEL;
  const model = await readModelFile(modelPath);
  const { config, weights } = model;
  // What each asked format really holds: every matrix's columns are dim, nHeads·headDim (wo) or
  // hiddenDim (w2), and a block format needs rows of whole blocks.
  const heldAs = (format: TensorFormat): TensorFormat[] => [
    ...new Set(
      [config.dim, config.nHeads * headDim(config), config.hiddenDim].map((cols) =>
        matrixFormat(format, cols)
      ),
    ),
  ];
  const exact = (format: TensorFormat) => heldAs(format).join() === format;
  // By default a K-quant runs only where every matrix holds it (elsewhere it would measure its
  // Q8_0 fallback); asked for, any format runs, labelled with what it holds where it falls back.
  const weightFormats = flags.weights === undefined
    ? askedFormats.filter((f) => exact(f) || !isKQuantFormat(f))
    : askedFormats;
  const leftOut = askedFormats.filter((f) => !weightFormats.includes(f));
  let tokenizer: Tokenizer | undefined = model.tokenizer;
  if (flags.tokenizer) tokenizer = await readTokenizer(flags.tokenizer, config.vocabSize);
  else if (!tokenizer && flags.model === undefined) {
    tokenizer = await readTokenizer(DEFAULT_TOKENIZER, config.vocabSize);
  }
  if (!tokenizer) {
    throw new UsageError(
      `${modelPath} has no vocabulary: give --tokenizer (llama2.c tokenizer.bin)`,
    );
  }
  const textPath = flags.text ?? DEFAULT_TEXT;
  const ids = tokenizer.encode((await readText(textPath)).trimEnd(), { bos: false })
    .slice(0, maxPositions);
  if (ids.length === 0) throw new Error(`--text: ${textPath} holds no tokens`);
  if (requestedContext !== undefined && requestedContext > config.maxSeqLen) {
    throw new UsageError(
      `--context: expected at most the model's maxSeqLen ${config.maxSeqLen}, got ${requestedContext}`,
    );
  }
  const chunks = evaluationChunks(ids, requestedContext ?? config.maxSeqLen);
  const next = nextTokens(chunks);
  const runConfig = contextConfig(config, Math.max(...chunks.map((c) => c.length)));

  if (leftOut.length > 0) {
    io.stderr(
      `left out ${leftOut.join(", ")}: this model's rows are not whole 256-value super-blocks ` +
        `(--weights ${leftOut[0]} runs it held as ${heldAs(leftOut[0]).join("+")})\n`,
    );
  }
  const gpu = backend === "webgpu" ? await requestGpu() : undefined;
  try {
    const along = async (format: TensorFormat, kv: KvFormat) => {
      const start = performance.now();
      const stored = format === "f32" ? weights : storeWeights(config, weights, format);
      const decoder: Decoder = gpu
        ? await GpuDecoder.create(gpu, runConfig, stored, { kvCache: kv })
        : new CpuDecoder(runConfig, stored, { kvCache: kv });
      try {
        const rows = await logitsOverChunks(decoder, chunks);
        io.stderr(
          `${format}/${kv}: ${rows.length} positions in ${
            ((performance.now() - start) / 1000).toFixed(1)
          } s\n`,
        );
        return rows;
      } finally {
        decoder.destroy?.();
      }
    };
    const reference = await along("f32", "f32");
    const rows: AccuracyRow[] = [];
    for (const weightFormat of weightFormats) {
      for (const kv of kvFormats) {
        const candidate = weightFormat === "f32" && kv === "f32"
          ? reference
          : await along(weightFormat, kv);
        const { klPerPosition: _, nmsePerPosition: __, ...report } = compareLogits(
          candidate,
          reference,
          next,
        );
        rows.push({
          weights: weightFormat,
          kv,
          ...(exact(weightFormat) ? {} : { heldAs: heldAs(weightFormat) }),
          report,
        });
      }
    }
    const summary = {
      model: modelPath,
      file: model.format,
      matrices: matrixFormats(model),
      text: textPath,
      backend,
      positions: next.length,
      chunks: chunks.length,
      perplexity: compareLogits(reference, reference, next).referencePerplexity,
      rows,
    };
    if (flags.json) io.stdout(JSON.stringify(summary) + "\n");
    else io.stdout(table(summary, config));
  } finally {
    gpu?.destroy();
  }
  return 0;
}

/** The stored formats of a model file's matrices (a llama2.c checkpoint: f32). */
function matrixFormats(model: { format: string; formats?: Map<string, TensorFormat> }): string[] {
  if (!model.formats) return ["f32"];
  const formats = new Set<string>();
  for (const [name, format] of model.formats) {
    if (!name.endsWith("norm.weight")) formats.add(format);
  }
  return [...formats];
}

const exp = (x: number) => x === 0 ? "0" : x.toExponential(2);
const interval = (i: { mean: number; low: number; high: number }, f: (x: number) => string) =>
  `${f(i.mean)} [${f(i.low)}, ${f(i.high)}]`;

function table(
  s: {
    model: string;
    file: string;
    matrices: string[];
    text: string;
    backend: string;
    positions: number;
    chunks: number;
    perplexity: number;
    rows: AccuracyRow[];
  },
  config: LlamaConfig,
): string {
  const header = [
    `model: ${s.model} (${s.file === "gguf" ? "GGUF" : `llama2.c ${s.file}`}, matrices ${
      s.matrices.join("/")
    }; ${config.nLayers} layers, dim ${config.dim}, vocabulary ${config.vocabSize})`,
    `text: ${s.text}, ${s.positions} positions in ${s.chunks} chunk${
      s.chunks === 1 ? "" : "s"
    }; backend ${s.backend}`,
    `reference: the model's float32 weights and KV cache; perplexity ${s.perplexity.toFixed(4)}`,
    "",
  ];
  const columns = [
    "weights",
    "KV",
    "mean KL [95% CI]",
    "median KL",
    "p99 KL",
    "max KL",
    "same top-1 [95% CI]",
    "Δp next token",
    "Δp f32 top",
    "perplexity",
    "ln(PPL/PPL f32) [95% CI]",
  ];
  const lines = s.rows.map(({ weights, kv, heldAs, report: r }) => [
    heldAs ? `${weights} (held as ${heldAs.join("+")})` : weights,
    kv,
    interval(r.kl, exp),
    exp(r.klMedian),
    exp(r.klP99),
    exp(r.klMax),
    interval(r.sameTop1, (x) => x.toFixed(3)),
    exp(r.deltaP.mean),
    exp(r.topDeltaP.mean),
    r.perplexity.toFixed(4),
    interval(r.logPerplexityRatio, exp),
  ]);
  const widths = columns.map((c, i) => Math.max(c.length, ...lines.map((l) => l[i].length)));
  const row = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(" | ")} |`;
  return [
    ...header,
    row(columns),
    `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`,
    ...lines.map(row),
  ].join("\n") + "\n";
}

if (import.meta.main) Deno.exit(await accuracyMain(Deno.args));
