/**
 * The benchmark's precision axis: weights {f32, f16, q8_0, q4_0, q6_k, q5_k, q4_k} × KV cache
 * {f32, f16, q8_0} on each shape and backend; the K-quants only on shapes whose matrix rows are
 * whole 256-value super-blocks (dim and hiddenDim multiples of 256: attention-heavy,
 * stories110M, TinyLlama, Llama-2-7B), where they are what they say. Each cell reports decode
 * ms/token (median of repetitions, with min–max; the pairs of a shape and backend sampled
 * round-robin, so that drift does not favour one), the bytes a token reads (weights, KV cache at
 * the cell's context), the speedup against f32/f32 with its bootstrap 95% interval beside the
 * bytes ratio, the step's read rate as a fraction of the backend's read ceiling (where the
 * roofline was measured), the step's time split into terms (bytes at the read ceiling,
 * dispatches at their measured cost, the rest: arithmetic such as dequantization), and the
 * accuracy against f32 on the CPU reference,
 * teacher-forced (`model/accuracy.ts`): the KL divergence of each next-token distribution from
 * f32's (mean with its 95% interval, 99th percentile, maximum), same top-1, the change in f32's
 * top token's probability, and the logit NMSE. On seeded random weights the tokens are seeded
 * too; perplexity, which means nothing there, is reported only for the real model
 * ({@linkcode realModelShape}: the shipped stories260K over the shipped text), beside f32's.
 *
 * `precision_cells.ts` judges the speedups quantized weights must reach against f32 on the
 * same adapter from these cells and, where one is missed, names the term that holds it back.
 *
 * `--quick` runs the real model only, at context 16: the targets' pairs (f32/f32, q8_0/f32,
 * q4_0/f32) with f16/f16 and q8_0/q8_0 beside them.
 *
 * `bench/main.ts` calls {@linkcode runPrecisionAxis}; the results go to `precision.json`,
 * `precision.md` and `precision.svg` (speed against accuracy, one point per precision pair).
 *
 * @module
 */
import { headDim, type LlamaConfig } from "../model/config.ts";
import { CpuDecoder } from "../model/cpu_decoder.ts";
import { GpuDecoder } from "../model/webgpu/decoder.ts";
import { compareLogits, logitsAlong } from "../model/accuracy.ts";
import { DEFAULT_MODEL, DEFAULT_TEXT, DEFAULT_TOKENIZER } from "../cli/accuracy.ts";
import { readCheckpoint } from "../model/formats/llama2c.ts";
import { readTokenizer } from "../model/formats/tokenizer.ts";
import {
  dequantizeWeights,
  matrixFormat,
  randomStoredWeights,
  storedBytesPerToken,
  storedWeightBytes,
  type StoredWeights,
  storeWeights,
} from "../model/precision.ts";
import type { LlamaWeights } from "../model/weights.ts";
import { isKQuantFormat } from "../reference/kquants.ts";
import { bootstrapRatio, isNoisy, roundRobin } from "./stats.ts";
import { summarize } from "../gpu/timing.ts";
import { PRECISION_TARGETS, type PrecisionCell, stepTerms } from "./precision_cells.ts";
import type { Gpu } from "../gpu/device.ts";
import { KV_FORMATS, type KvFormat } from "../reference/kv_cache.ts";
import { bytesPerValue, TENSOR_FORMATS, type TensorFormat } from "../reference/quantize.ts";
import { Rng } from "../reference/random.ts";

export type { PrecisionCell, StepTerms } from "./precision_cells.ts";

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
  /** Only these pairs, as "weights/kv" (default: every pair the run takes). */
  pairs?: readonly string[];
  /** Positions already cached when the timed steps start (default 64; quick 16). */
  context?: number;
  /** Random weights: positions the accuracy runs along (default 200; quick 16). */
  accuracyPositions?: number;
  /** Tokens one timed sample decodes (default: 32 on WebGPU, one call; 8 steps on the CPU). */
  decodeTokens?: number;
  /** Only these of the run's backends time this shape (default: all). */
  backends?: readonly ("cpu" | "webgpu")[];
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

/**
 * The pairs a full run times on a shape with every pair: each weight format with the f32 cache,
 * the f16 and Q8_0 caches beside f32 weights, and the Q8_0 cache beside Q8_0 and Q4_0 weights
 * (llama.cpp's quantized-cache setups).
 */
const FULL_PAIRS = new Set([
  ...TENSOR_FORMATS.map((w) => `${w}/f32`),
  "f32/f16",
  "f32/q8_0",
  "q8_0/q8_0",
  "q4_0/q8_0",
]);

/**
 * The pairs `--quick` runs: each weight format once with the f32 cache (the targets' pairs, and
 * Q4_K where the rows are whole super-blocks, which the shipped model's are not), and the f16 and
 * Q8_0 caches once each.
 */
const QUICK_PAIRS = new Set([
  "f32/f32",
  "f16/f16",
  "q8_0/f32",
  "q4_0/f32",
  "q8_0/q8_0",
  "q4_k/f32",
]);

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
  /** Each backend's measured cost of one dispatch, µs (the roofline), for the step's terms. */
  dispatchUs?: Partial<Record<"cpu" | "webgpu", number>>;
}

/** A pair ready to time on one backend: one sample is one timed decode call. */
interface Runner {
  cell: PrecisionCell;
  sample(): Promise<number>;
  destroy(): void;
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
  // --quick: the real model only (a random shape where none is given), to keep the quick bench
  // near a minute.
  const real = options.shapes.filter((s) => s.weights);
  const shapes = quick ? (real.length ? real : options.shapes.slice(0, 1)) : options.shapes;
  // Five interleaved samples per pair give each speedup an interval (quick: three).
  const reps = quick ? 3 : 5;
  for (const shape of shapes) {
    const { name } = shape;
    const backends = options.backends.filter((b) => !shape.backends || shape.backends.includes(b));
    if (backends.length === 0) continue;
    // Random weights get their own classifier (uniform in ±1/sqrt(dim)): tied to an embedding
    // uniform in [-1, 1], logits spread over tens of nats and every next token is certain, so
    // the KL divergence would be ~0 for every format and say nothing.
    const config = shape.weights ? shape.config : { ...shape.config, sharedClassifier: false };
    // Each CPU pair prefills its context token by token: 64 positions keep the axis within its
    // share of a full run (at 64 the KV cache is a small share of the bytes).
    const context = Math.min(shape.context ?? (quick ? 16 : 64), config.maxSeqLen - 40);
    const rng = new Rng(7);
    // A real model runs along its text (every position of it for the accuracy); random weights
    // along seeded tokens.
    const positions = Math.min(
      shape.accuracyPositions ?? (quick ? 16 : 200),
      config.maxSeqLen - 1,
    );
    const seeded = Array.from(
      { length: Math.max(context, positions) + 1 },
      () => rng.nextUint32() % config.vocabSize,
    );
    const tokens = shape.text ? shape.text.slice(0, context + 1) : seeded.slice(0, context + 1);
    const accuracyTokens = shape.text ?? seeded.slice(0, positions + 1);
    // Random weights are drawn once, in f32, and every other format stored from them.
    const f32Weights = shape.weights
      ? storeWeights(config, shape.weights, "f32")
      : randomStoredWeights(config, 1, "f32");
    const floats = shape.weights ?? dequantizeWeights(f32Weights);
    const storedAs = (format: TensorFormat): StoredWeights => storeWeights(config, floats, format);
    const along = accuracyTokens.slice(0, -1);
    const reference = await logitsAlong(new CpuDecoder(config, f32Weights), along);
    const kvPerPositionF32 = 2 * config.nLayers * config.nKvHeads * headDim(config) * 4;
    // what a decode step reads: the weights (one row of a separate embedding table) and the cache
    const f32Bytes = storedBytesPerToken(config, "f32") + kvPerPositionF32 * context;
    // The pairs this shape runs, each stored once and its accuracy measured on the CPU.
    const pairs: { weights: TensorFormat; kv: KvFormat; stored: StoredWeights }[] = [];
    const shapeCells: PrecisionCell[] = [];
    for (const weights of TENSOR_FORMATS) {
      const kvs = KV_FORMATS.filter((kv) => {
        const pair = `${weights}/${kv}`;
        if (shape.pairs) return shape.pairs.includes(pair);
        if (quick) return QUICK_PAIRS.has(pair);
        return FULL_PAIRS.has(pair);
      });
      // A K-quant on rows that are not whole super-blocks would measure its fallback format.
      const rows = [config.dim, config.hiddenDim];
      if (isKQuantFormat(weights) && rows.some((n) => matrixFormat(weights, n) !== weights)) {
        continue;
      }
      if (kvs.length === 0) continue;
      const stored = weights === "f32" ? f32Weights : storedAs(weights);
      for (const kv of kvs) {
        pairs.push({ weights, kv, stored });
        const kvBytesPerPosition = kvPerPositionF32 / 4 * bytesPerValue(kv);
        const weightBytes = storedWeightBytes(config, weights);
        const bytesPerToken = storedBytesPerToken(config, weights) +
          kvBytesPerPosition * context;
        // f32/f32 against itself: the same logits, so KL 0 and f32's perplexity.
        const report = compareLogits(
          await logitsAlong(new CpuDecoder(config, stored, { kvCache: kv }), along),
          reference,
          accuracyTokens.slice(1),
        );
        for (const backend of backends) {
          shapeCells.push({
            shape: name,
            backend,
            weights,
            kv,
            context,
            weightBytes,
            kvBytesPerPosition,
            bytesPerToken,
            bytesRatio: f32Bytes / bytesPerToken,
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
          });
        }
      }
    }
    for (const backend of backends) {
      const mine = shapeCells.filter((c) => c.backend === backend);
      // Every pair of the shape is built first, then sampled round-robin: one sample of each in
      // turn, so that drift over the run lands on every pair alike.
      const runners: Runner[] = [];
      try {
        for (const [i, pair] of pairs.entries()) {
          try {
            runners.push(
              backend === "cpu"
                ? cpuRunner(mine[i], config, pair.stored, tokens, shape.decodeTokens ?? 8)
                : await gpuRunner(mine[i], options.gpu!, config, pair.stored, tokens, {
                  kv: pair.kv,
                  decodeTokens: shape.decodeTokens ?? 32,
                }),
            );
          } catch (error) {
            mine[i].skipped = error instanceof Error ? error.message : String(error);
          }
        }
        // Then (not in a quick run) up to as many rounds again where a target's samples still
        // spread over 25% of their median, interleaved with f32/f32's: where the noise is, and
        // what it is judged by.
        const base = runners.find((r) => r.cell.weights === "f32" && r.cell.kv === "f32");
        const judged = (r: Runner) =>
          r.cell.kv === "f32" &&
          PRECISION_TARGETS.some((t) => t.backend === backend && t.weights === r.cell.weights);
        const samples = await roundRobin(runners, reps, (runner) => runner.sample(), {
          rounds: quick ? 0 : reps,
          unsettled: (list, r) => (judged(r) || r === base) && isNoisy(list, 0.25),
          partners: (r) => base && r !== base ? [base, r] : [r],
        });
        for (const runner of runners) {
          const cell = runner.cell;
          const times = samples.get(runner)!;
          cell.samples = [...times];
          // the median the speedups are ratios of (two middle samples averaged when even)
          const { median, min, max } = summarize(times);
          cell.msPerToken = median;
          cell.spread = [min, max];
          const ceiling = options.readGbPerS?.[backend];
          if (ceiling) {
            Object.assign(cell, stepTerms(cell, ceiling, options.dispatchUs?.[backend] ?? 0));
          }
        }
      } finally {
        for (const runner of runners) runner.destroy();
      }
      const baseCell = mine.find((c) => c.weights === "f32" && c.kv === "f32" && c.samples);
      for (const cell of mine) {
        if (cell === baseCell) {
          cell.speedup = 1;
        } else if (baseCell && cell.samples) {
          const ratio = bootstrapRatio(baseCell.samples!, cell.samples);
          cell.speedup = ratio.ratio;
          cell.speedupInterval = [ratio.lo, ratio.hi];
        }
        progress(
          `precision ${name} ${backend} weights ${cell.weights} kv ${cell.kv}: ${
            cell.msPerToken?.toFixed(2) ?? "skipped"
          } ms/token, ${cell.speedup?.toFixed(2) ?? "-"}x f32, mean KL ${
            cell.kl.mean.toExponential(1)
          }`,
        );
      }
    }
    // in the order of the pairs, each pair's backends together
    cells.push(...shapeCells);
  }
  return cells;
}

/** `steps` CPU decode steps from the context per sample (the KV cache prefilled once). */
function cpuRunner(
  cell: PrecisionCell,
  config: LlamaConfig,
  stored: StoredWeights,
  tokens: number[],
  steps: number,
): Runner {
  const decoder = new CpuDecoder(config, stored, { kvCache: cell.kv });
  const context = tokens.length - 1;
  for (let pos = 0; pos < context; pos++) decoder.forwardSync(tokens[pos], pos);
  decoder.forwardSync(tokens[context], context); // warm-up
  return {
    cell,
    sample() {
      const start = performance.now();
      for (let i = 0; i < steps; i++) decoder.forwardSync(tokens[i % tokens.length], context + i);
      return Promise.resolve((performance.now() - start) / steps);
    },
    destroy() {},
  };
}

/**
 * Wall ms/token of GPU-resident greedy runs from the context (the prompt's pass not counted):
 * `decodeTokens` decoded per call, as `generate` runs them.
 */
async function gpuRunner(
  cell: PrecisionCell,
  gpu: Gpu,
  config: LlamaConfig,
  stored: StoredWeights,
  tokens: number[],
  options: { kv: KvFormat; decodeTokens: number },
): Promise<Runner> {
  const decoder = await GpuDecoder.create(gpu, config, stored, { kvCache: options.kv });
  const steps = options.decodeTokens + 1;
  const prompt = tokens.slice(0, -1);
  try {
    cell.dispatchesPerToken = await decoder.dispatchesPerToken();
    await decoder.generate(prompt, 2); // warm-up: compiles the prefill plans
  } catch (error) {
    decoder.destroy();
    throw error;
  }
  return {
    cell,
    async sample() {
      const run = await decoder.generate(prompt, steps);
      return run.decodeMs / (steps - 1);
    },
    destroy: () => decoder.destroy(),
  };
}
