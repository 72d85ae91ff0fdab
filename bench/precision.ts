/**
 * The benchmark's precision axis: weights {f32, f16, q8_0, q4_0} × KV cache {f32, f16, q8_0}
 * on each shape and backend. Each cell reports decode ms/token (median of repetitions, with
 * min–max), the bytes a token reads (weights, KV cache at the cell's context), the speedup
 * against f32/f32 beside the bytes ratio, and the accuracy against f32 (logit NMSE, top-1
 * agreement, perplexity ratio; teacher-forced on seeded tokens, on the CPU reference).
 *
 * `--quick` runs four pairs (f32/f32, f16/f16, q8_0/q8_0, q4_0/q8_0) at context 16.
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
import { measureAccuracy } from "../model/accuracy.ts";
import { randomStoredWeights, storedWeightBytes } from "../model/precision.ts";
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
  /** Mean logit NMSE against f32/f32 (CPU reference). */
  nmse: number;
  /** Fraction of positions whose top-1 token matches f32/f32's. */
  top1: number;
  /** Perplexity of the tokens over f32/f32's. */
  perplexityRatio: number;
}

/** The pairs `--quick` runs: each weight format once, the KV formats beside f16 and Q8_0. */
const QUICK_PAIRS = new Set(["f32/f32", "f16/f16", "q8_0/q8_0", "q4_0/q8_0"]);

/** What {@linkcode runPrecisionAxis} needs. */
export interface PrecisionOptions {
  /** Shapes to run. */
  shapes: { name: string; config: LlamaConfig }[];
  /** Backends to run. */
  backends: ("cpu" | "webgpu")[];
  /** The device, when WebGPU runs. */
  gpu?: Gpu;
  /** Fewer repetitions and tokens. */
  quick: boolean;
  /** Progress lines. */
  progress(line: string): void;
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
  // --quick: the first shape only, to keep the quick bench near a minute.
  for (const { name, config } of quick ? options.shapes.slice(0, 1) : options.shapes) {
    // Each cell prefills its context token by token on the CPU: 64 positions keep the axis to
    // about two minutes of a full run (at 64 the KV cache is a small share of the bytes).
    const context = Math.min(quick ? 16 : 64, config.maxSeqLen - 40);
    const rng = new Rng(7);
    const tokens = Array.from({ length: context + 1 }, () => rng.nextUint32() % config.vocabSize);
    const accuracyTokens = tokens.slice(0, quick ? 17 : 33);
    const f32Weights = randomStoredWeights(config, 1, "f32");
    const kvPerPositionF32 = 2 * config.nLayers * config.nKvHeads * headDim(config) * 4;
    const f32Bytes = storedWeightBytes(config, "f32") + kvPerPositionF32 * context;
    for (const weights of TENSOR_FORMATS) {
      if (quick && ![...QUICK_PAIRS].some((p) => p.startsWith(`${weights}/`))) continue;
      const stored = weights === "f32" ? f32Weights : randomStoredWeights(config, 1, weights);
      for (const kv of KV_FORMATS) {
        if (quick && !QUICK_PAIRS.has(`${weights}/${kv}`)) continue;
        const kvBytesPerPosition = kvPerPositionF32 / 4 * bytesPerValue(kv);
        const weightBytes = storedWeightBytes(config, weights);
        const bytesPerToken = weightBytes + kvBytesPerPosition * context;
        let accuracy = { nmse: 0, top1: 1, perplexityRatio: 1 };
        if (weights !== "f32" || kv !== "f32") {
          const report = await measureAccuracy(
            new CpuDecoder(config, stored, { kvCache: kv }),
            new CpuDecoder(config, f32Weights),
            accuracyTokens,
          );
          accuracy = {
            nmse: report.meanNmse,
            top1: report.top1Agreement,
            perplexityRatio: report.perplexity / report.referencePerplexity,
          };
        }
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
          } catch (error) {
            cell.skipped = error instanceof Error ? error.message : String(error);
          }
          cells.push(cell);
          progress(
            `precision ${name} ${backend} weights ${weights} kv ${kv}: ${
              cell.msPerToken?.toFixed(2) ?? "skipped"
            } ms/token, NMSE ${accuracy.nmse.toExponential(1)}`,
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
  for (let rep = 0; rep < (quick ? 2 : 5); rep++) {
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
  stored: Awaited<ReturnType<typeof randomStoredWeights>>,
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
    for (let rep = 0; rep < (quick ? 2 : 5); rep++) {
      const run = await decoder.generate!(prompt, steps);
      times.push(run.decodeMs / (steps - 1));
    }
    return times;
  } finally {
    decoder.destroy?.();
  }
}
