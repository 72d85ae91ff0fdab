/**
 * The benchmark's precision axis: weights {f32, f16, q8_0, q4_0, q6_k, q5_k, q4_k} × KV cache
 * {f32, f16, q8_0} on each shape and backend; the K-quants only on shapes whose matrix rows are
 * whole 256-value super-blocks (dim and hiddenDim multiples of 256: attention-heavy,
 * stories110M, TinyLlama, Llama-2-7B), where they are what they say. Each cell reports decode ms/token (median of repetitions, with
 * min–max), the bytes a token reads (weights, KV cache at the cell's context), the speedup
 * against f32/f32 beside the bytes ratio, the step's read rate as a fraction of the backend's read
 * ceiling (where the roofline was measured), and the accuracy against f32 on the CPU reference,
 * teacher-forced (`model/accuracy.ts`): the KL divergence of each next-token distribution from
 * f32's (mean with its 95% interval, 99th percentile, maximum), same top-1, the change in f32's
 * top token's probability, and the logit NMSE. On seeded random weights the tokens are seeded
 * too; perplexity, which means nothing there, is reported only for the real model
 * ({@linkcode realModelShape}: the shipped stories260K over the shipped text), beside f32's.
 *
 * `--quick` runs four pairs (f32/f32, f16/f16, q8_0/q8_0, q4_0/q8_0), and q4_k/f32 where the
 * K-quants apply, at context 16.
 *
 * `bench/main.ts` calls {@linkcode runPrecisionAxis}; the results go to `precision.json`,
 * `precision.md` and `precision.svg` (speed against accuracy, one point per precision pair).
 *
 * @module
 */
import { headDim, type LlamaConfig } from "../model/config.ts";
import { CpuDecoder } from "../model/cpu_decoder.ts";
import type { Decoder } from "../model/decoder.ts";
import { GpuDecoder } from "../model/webgpu/decoder.ts";
import { compareLogits, logitsAlong, type MeanInterval } from "../model/accuracy.ts";
import { DEFAULT_MODEL, DEFAULT_TEXT, DEFAULT_TOKENIZER } from "../cli/accuracy.ts";
import { readCheckpoint } from "../model/formats/llama2c.ts";
import { readTokenizer } from "../model/formats/tokenizer.ts";
import {
  matrixFormat,
  randomStoredWeights,
  storedWeightBytes,
  type StoredWeights,
  storeWeights,
} from "../model/precision.ts";
import type { LlamaWeights } from "../model/weights.ts";
import { isKQuantFormat } from "../reference/kquants.ts";
import type { Gpu } from "../gpu/device.ts";
import { KV_FORMATS, type KvFormat } from "../reference/kv_cache.ts";
import { bytesPerValue, TENSOR_FORMATS, type TensorFormat } from "../reference/quantize.ts";
import { Rng } from "../reference/random.ts";

/** One precision pair on one shape and backend. */
export interface PrecisionCell {
  /** Shape name. */
  shape: string;
  /** `cpu` or `webgpu`. */
  backend: "cpu" | "webgpu";
  /** Weight format. */
  weights: TensorFormat;
  /** KV-cache format. */
  kv: KvFormat;
  /** Context (positions already cached) the decode steps start at. */
  context: number;
  /** Median decode ms/token over the repetitions; absent when the backend cannot run the pair. */
  msPerToken?: number;
  /** Fastest and slowest repetition, ms/token. */
  spread?: [number, number];
  /** Every repetition, ms/token (wall-clock), in the order taken. */
  samples?: number[];
  /** Why the pair did not run here. */
  skipped?: string;
  /** Weight bytes held (each read once per token). */
  weightBytes: number;
  /** KV-cache bytes per cached position (keys and values, every layer). */
  kvBytesPerPosition: number;
  /** Bytes one decode step reads: the weights and the KV cache at the context. */
  bytesPerToken: number;
  /** f32/f32's ms/token over this pair's, same shape and backend. */
  speedup?: number;
  /** f32/f32's bytes per token over this pair's. */
  bytesRatio: number;
  /**
   * The step's read rate (bytes per token over ms/token) as a fraction of the backend's measured
   * read ceiling (the roofline's stream probe); absent without a roofline (`--precision-only`).
   */
  readCeilingFraction?: number;
  /** Positions the accuracy was measured over (CPU reference, teacher-forced). */
  accuracyPositions: number;
  /** Mean KL divergence from f32/f32's next-token distributions (nats), 95% interval. */
  kl: MeanInterval;
  /** 99th percentile of the KL divergence over positions. */
  klP99: number;
  /** Largest KL divergence over positions. */
  klMax: number;
  /** Fraction of positions whose top-1 token matches f32/f32's. */
  sameTop1: number;
  /** Mean change of the probability of f32/f32's top token. */
  topDeltaP: number;
  /** Mean logit NMSE against f32/f32. */
  nmse: number;
  /** Perplexity of the real text (a real model's shape only). */
  perplexity?: number;
  /** f32/f32's perplexity of the same text (a real model's shape only). */
  f32Perplexity?: number;
}

/** A shape of the precision axis: seeded random weights, or a real model over a real text. */
export interface PrecisionShape {
  /** Shape name. */
  name: string;
  /** The configuration. */
  config: LlamaConfig;
  /** A real model's float32 weights (absent: seeded random weights of `config`). */
  weights?: LlamaWeights;
  /** With `weights`: the text's token ids, BOS first, that the accuracy runs along. */
  text?: number[];
}

/**
 * The shipped real model as a precision shape: stories260K (`models/stories260K.bin`) over
 * `models/eval_text.txt`, tokenized with `models/tok512.bin`.
 *
 * @example
 * ```ts ignore
 * const cells = await runPrecisionAxis({ shapes: [await realModelShape()], backends: ["cpu"], quick: true, progress: console.error });
 * ```
 */
export async function realModelShape(): Promise<PrecisionShape> {
  const { config, weights } = await readCheckpoint(DEFAULT_MODEL);
  const tokenizer = await readTokenizer(DEFAULT_TOKENIZER, config.vocabSize);
  const text = await Deno.readTextFile(DEFAULT_TEXT);
  return { name: "stories260K.bin", config, weights, text: tokenizer.encode(text.trimEnd()) };
}

/** The pairs `--quick` runs: each weight format once, the KV formats beside f16 and Q8_0. */
const QUICK_PAIRS = new Set(["f32/f32", "f16/f16", "q8_0/q8_0", "q4_0/q8_0", "q4_k/f32"]);

/** What {@linkcode runPrecisionAxis} needs. */
export interface PrecisionOptions {
  /** Shapes to run. */
  shapes: PrecisionShape[];
  /** Backends to run. */
  backends: ("cpu" | "webgpu")[];
  /** The device, when WebGPU runs. */
  gpu?: Gpu;
  /** Fewer repetitions and tokens. */
  quick: boolean;
  /** Progress lines. */
  progress(line: string): void;
  /** Each backend's measured read ceiling, GB/s (the roofline), for `readCeilingFraction`. */
  readGbPerS?: Partial<Record<"cpu" | "webgpu", number>>;
}

/**
 * Runs every precision pair on every shape and backend.
 *
 * @example
 * ```ts ignore
 * const cells = await runPrecisionAxis({ shapes, backends: ["cpu"], quick: true, progress: console.error });
 * ```
 */
export async function runPrecisionAxis(options: PrecisionOptions): Promise<PrecisionCell[]> {
  const { quick, progress } = options;
  const cells: PrecisionCell[] = [];
  // --quick: the first random shape and the real model only, to keep the quick bench near a
  // minute.
  const shapes = quick
    ? options.shapes.filter((s, i) =>
      s.weights || i === options.shapes.findIndex((r) => !r.weights)
    )
    : options.shapes;
  for (const shape of shapes) {
    const { name } = shape;
    // Random weights get their own classifier (uniform in ±1/sqrt(dim)): tied to an embedding
    // uniform in [-1, 1], logits spread over tens of nats and every next token is certain, so
    // the KL divergence would be ~0 for every format and say nothing.
    const config = shape.weights ? shape.config : { ...shape.config, sharedClassifier: false };
    // Each cell prefills its context token by token on the CPU: 64 positions keep the axis to
    // about two minutes of a full run (at 64 the KV cache is a small share of the bytes).
    const context = Math.min(quick ? 16 : 64, config.maxSeqLen - 40);
    const rng = new Rng(7);
    // A real model runs along its text (every position of it for the accuracy); random weights
    // along seeded tokens.
    const seeded = Array.from({ length: context + 1 }, () => rng.nextUint32() % config.vocabSize);
    const tokens = shape.text ? shape.text.slice(0, context + 1) : seeded;
    const accuracyTokens = shape.text ?? seeded.slice(0, quick ? 17 : 33);
    const storedAs = (format: TensorFormat): StoredWeights =>
      shape.weights
        ? storeWeights(config, shape.weights, format)
        : randomStoredWeights(config, 1, format);
    const f32Weights = storedAs("f32");
    const along = accuracyTokens.slice(0, -1);
    const reference = await logitsAlong(new CpuDecoder(config, f32Weights), along);
    const kvPerPositionF32 = 2 * config.nLayers * config.nKvHeads * headDim(config) * 4;
    const f32Bytes = storedWeightBytes(config, "f32") + kvPerPositionF32 * context;
    for (const weights of TENSOR_FORMATS) {
      if (quick && ![...QUICK_PAIRS].some((p) => p.startsWith(`${weights}/`))) continue;
      // A K-quant on rows that are not whole super-blocks would measure its fallback format.
      const rows = [config.dim, config.hiddenDim];
      if (isKQuantFormat(weights) && rows.some((n) => matrixFormat(weights, n) !== weights)) {
        continue;
      }
      const stored = weights === "f32" ? f32Weights : storedAs(weights);
      for (const kv of KV_FORMATS) {
        if (quick && !QUICK_PAIRS.has(`${weights}/${kv}`)) continue;
        // The KV formats are measured on the legacy formats; a K-quant with the f32 cache only,
        // which keeps the axis within its share of the run.
        if (isKQuantFormat(weights) && kv !== "f32") continue;
        const kvBytesPerPosition = kvPerPositionF32 / 4 * bytesPerValue(kv);
        const weightBytes = storedWeightBytes(config, weights);
        const bytesPerToken = weightBytes + kvBytesPerPosition * context;
        // f32/f32 against itself: the same logits, so KL 0 and f32's perplexity.
        const report = compareLogits(
          await logitsAlong(new CpuDecoder(config, stored, { kvCache: kv }), along),
          reference,
          accuracyTokens.slice(1),
        );
        const accuracy = {
          accuracyPositions: report.positions,
          kl: report.kl,
          klP99: report.klP99,
          klMax: report.klMax,
          sameTop1: report.sameTop1.mean,
          topDeltaP: report.topDeltaP.mean,
          nmse: report.meanNmse,
          ...(shape.weights
            ? { perplexity: report.perplexity, f32Perplexity: report.referencePerplexity }
            : {}),
        };
        for (const backend of options.backends) {
          const cell: PrecisionCell = {
            shape: name,
            backend,
            weights,
            kv,
            context,
            weightBytes,
            kvBytesPerPosition,
            bytesPerToken,
            bytesRatio: f32Bytes / bytesPerToken,
            ...accuracy,
          };
          try {
            const times = backend === "cpu"
              ? timeCpu(new CpuDecoder(config, stored, { kvCache: kv }), tokens, quick)
              : await timeGpu(options.gpu!, config, stored, kv, tokens, quick);
            cell.samples = [...times];
            times.sort((a, b) => a - b);
            cell.msPerToken = times[Math.floor(times.length / 2)];
            cell.spread = [times[0], times[times.length - 1]];
            const ceiling = options.readGbPerS?.[backend];
            if (ceiling) {
              cell.readCeilingFraction = bytesPerToken / (cell.msPerToken * 1e6) / ceiling;
            }
          } catch (error) {
            cell.skipped = error instanceof Error ? error.message : String(error);
          }
          cells.push(cell);
          progress(
            `precision ${name} ${backend} weights ${weights} kv ${kv}: ${
              cell.msPerToken?.toFixed(2) ?? "skipped"
            } ms/token, mean KL ${accuracy.kl.mean.toExponential(1)}`,
          );
        }
      }
    }
  }
  for (const cell of cells) {
    const base = cells.find((c) =>
      c.shape === cell.shape && c.backend === cell.backend && c.weights === "f32" && c.kv === "f32"
    );
    if (base?.msPerToken && cell.msPerToken) cell.speedup = base.msPerToken / cell.msPerToken;
  }
  return cells;
}

/** ms/token of repeated 8-token decode runs at positions `context..`, after one prefill. */
function timeCpu(decoder: CpuDecoder, tokens: number[], quick: boolean): number[] {
  const context = tokens.length - 1;
  const steps = 8;
  for (let pos = 0; pos < context; pos++) decoder.forwardSync(tokens[pos], pos);
  decoder.forwardSync(tokens[context], context); // warm-up
  const times: number[] = [];
  for (let rep = 0; rep < (quick ? 2 : 3); rep++) {
    const start = performance.now();
    for (let i = 0; i < steps; i++) decoder.forwardSync(tokens[i % tokens.length], context + i);
    times.push((performance.now() - start) / steps);
  }
  return times;
}

/**
 * Wall ms/token of GPU-resident greedy runs of 33 tokens from the context (32 decoded after the
 * prompt's pass; the prefill not counted).
 */
async function timeGpu(
  gpu: Gpu,
  config: LlamaConfig,
  stored: StoredWeights,
  kv: KvFormat,
  tokens: number[],
  quick: boolean,
): Promise<number[]> {
  const decoder: Decoder = await GpuDecoder.create(gpu, config, stored, { kvCache: kv });
  // a user-visible decode: at least 32 tokens per call, as `generate` runs them
  const steps = 33;
  try {
    const prompt = tokens.slice(0, -1);
    await decoder.generate!(prompt, 2); // warm-up: compiles the prefill plans
    const times: number[] = [];
    for (let rep = 0; rep < (quick ? 2 : 3); rep++) {
      const run = await decoder.generate!(prompt, steps);
      times.push(run.decodeMs / (steps - 1));
    }
    return times;
  } finally {
    decoder.destroy?.();
  }
}
