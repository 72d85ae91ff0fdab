/**
 * What a lower precision costs in accuracy: a candidate decoder (f16/Q8_0/Q4_0 weights, f16/Q8_0
 * KV cache) against the float32 one, teacher-forced on the same tokens. The figures are those of
 * llama.cpp's `llama-perplexity --kl-divergence`:
 *
 * - **KL divergence** at each position, `KL(P_f32 ‖ P_candidate) = Σ p log(p / q)` over the
 *   next-token distributions (nats), with its mean (and a 95% interval over positions), median,
 *   99th percentile and maximum;
 * - **same top-1**: the fraction of positions where both pick the same next token;
 * - **Δp**: the mean change in the probability of the text's next token (llama.cpp's "Mean Δp")
 *   and of the f32 model's top token;
 * - **perplexity** of the tokens under each, `exp(−mean log p(next))`: meaningful only for a
 *   real model on in-domain text (random weights and random tokens give noise);
 * - **logit NMSE** at each position, `Σ(candidate − f32)² / Σ f32²` over the vocabulary.
 *
 * Everything is computed in double precision from a max-shifted log-softmax, so logits of any
 * size give finite, exact-to-rounding divergences.
 *
 * @module
 */
import type { Decoder } from "./decoder.ts";
import { argmax } from "../reference/sampling.ts";

/**
 * `log softmax(logits)` in double precision: `x − max − log Σ exp(x − max)`, which neither
 * overflows nor loses the small probabilities.
 *
 * @example
 * ```ts
 * import { logSoftmax } from "./accuracy.ts";
 * const [a, b] = logSoftmax([1000, 1000 + Math.log(3)]); // naive exp overflows here
 * if (Math.abs(a - Math.log(0.25)) > 1e-12 || Math.abs(b - Math.log(0.75)) > 1e-12) throw new Error("wrong");
 * ```
 */
export function logSoftmax(logits: ArrayLike<number>): Float64Array {
  if (logits.length === 0) {
    throw new RangeError("logSoftmax: expected at least one logit, got none");
  }
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) {
    if (!Number.isFinite(logits[i])) {
      throw new RangeError(`logSoftmax: expected finite logits, got ${logits[i]} at ${i}`);
    }
    if (logits[i] > max) max = logits[i];
  }
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
  const shift = max + Math.log(sum); // sum ≥ 1: the largest term is exp(0)
  const out = new Float64Array(logits.length);
  for (let i = 0; i < logits.length; i++) out[i] = logits[i] - shift;
  return out;
}

/**
 * `KL(P ‖ Q) = Σ p log(p / q)` (nats) between two distributions given as log-probabilities
 * (see {@linkcode logSoftmax}). Never negative: a sum below 0 is rounding and returns 0.
 *
 * @example
 * ```ts
 * import { klDivergence, logSoftmax } from "./accuracy.ts";
 * // P = (1/4, 3/4), Q = (1/2, 1/2): 1/4 ln(1/2) + 3/4 ln(3/2) = 0.130812...
 * const kl = klDivergence(logSoftmax([0, Math.log(3)]), logSoftmax([0, 0]));
 * if (Math.abs(kl - 0.1308121) > 1e-7) throw new Error("wrong");
 * ```
 */
export function klDivergence(logP: ArrayLike<number>, logQ: ArrayLike<number>): number {
  if (logP.length !== logQ.length) {
    throw new RangeError(
      `klDivergence: expected two distributions of one size, got ${logP.length} and ${logQ.length}`,
    );
  }
  let sum = 0;
  for (let i = 0; i < logP.length; i++) {
    const p = Math.exp(logP[i]);
    // p underflowing to 0 contributes 0 (the limit of p log p), whatever q is.
    if (p > 0) sum += p * (logP[i] - logQ[i]);
  }
  return Math.max(0, sum);
}

/** A mean with its 95% interval, `mean ± 1.96 · standard error`. */
export interface MeanInterval {
  /** The mean. */
  mean: number;
  /** Lower end of the 95% interval (−Infinity with fewer than 2 values: no spread to measure). */
  low: number;
  /** Upper end of the 95% interval (Infinity with fewer than 2 values). */
  high: number;
}

/**
 * The mean of `values` with a 95% interval from the normal approximation: the standard error
 * `sqrt(Σ(x − mean)² / n / (n − 1))`, as llama.cpp's `mean_and_uncertainty` computes it
 * (which prints `mean ± 1 standard error`; this interval is 1.96 of them either side).
 *
 * @example
 * ```ts
 * import { meanWithInterval } from "./accuracy.ts";
 * // mean 2.5; Σ(x − mean)² = 5; se = sqrt(5 / 4 / 3) = 0.6455; ± 1.96 se = ± 1.2652
 * const { mean, low, high } = meanWithInterval([1, 2, 3, 4]);
 * if (mean !== 2.5 || Math.abs(high - 3.7652) > 1e-4 || Math.abs(low - 1.2348) > 1e-4) throw new Error("wrong");
 * ```
 */
export function meanWithInterval(values: readonly number[]): MeanInterval {
  const n = values.length;
  if (n === 0) throw new RangeError("meanWithInterval: expected at least one value, got none");
  const mean = values.reduce((a, b) => a + b, 0) / n;
  if (n < 2) return { mean, low: -Infinity, high: Infinity };
  const squares = values.reduce((a, x) => a + (x - mean) ** 2, 0);
  const half = 1.959964 * Math.sqrt(squares / n / (n - 1));
  return { mean, low: mean - half, high: mean + half };
}

/**
 * The `fraction` quantile of `values` (0.99: the 99th percentile), interpolated linearly
 * between the sorted values at `fraction · (n − 1)`, as llama.cpp's statistics do.
 *
 * @example
 * ```ts
 * import { percentile } from "./accuracy.ts";
 * // sorted 1, 2, 3, 4, 10: 0.99 · 4 = 3.96, so 4 + 0.96 · (10 − 4) = 9.76
 * if (Math.abs(percentile([10, 1, 3, 2, 4], 0.99) - 9.76) > 1e-12) throw new Error("wrong");
 * ```
 */
export function percentile(values: readonly number[], fraction: number): number {
  if (values.length === 0) {
    throw new RangeError("percentile: expected at least one value, got none");
  }
  if (!(fraction >= 0 && fraction <= 1)) {
    throw new RangeError(`percentile: expected a fraction in [0, 1], got ${fraction}`);
  }
  const sorted = [...values].sort((a, b) => a - b);
  const at = fraction * (sorted.length - 1);
  const i = Math.floor(at);
  const next = sorted[Math.min(i + 1, sorted.length - 1)];
  return sorted[i] + (at - i) * (next - sorted[i]);
}

/**
 * The logits a decoder gives after each token of `tokens` (teacher-forced, from position 0).
 *
 * @example
 * ```ts
 * import { makeConfig } from "./config.ts";
 * import { randomWeights } from "./weights.ts";
 * import { CpuDecoder } from "./cpu_decoder.ts";
 * import { logitsAlong } from "./accuracy.ts";
 * const config = makeConfig({ dim: 8, hiddenDim: 16, nLayers: 1, nHeads: 2, nKvHeads: 1, vocabSize: 10, maxSeqLen: 4 });
 * const rows = await logitsAlong(new CpuDecoder(config, randomWeights(config)), [1, 2]);
 * if (rows.length !== 2 || rows[0].length !== 10) throw new Error("wrong");
 * ```
 */
export async function logitsAlong(
  decoder: Decoder,
  tokens: readonly number[],
): Promise<Float32Array[]> {
  const out: Float32Array[] = [];
  for (let pos = 0; pos < tokens.length; pos++) {
    out.push((await decoder.forward(tokens[pos], pos)).slice());
  }
  return out;
}

/** Accuracy of a candidate against the float32 reference (see the module documentation). */
export interface AccuracyReport {
  /** Positions compared (tokens predicted). */
  positions: number;
  /** `KL(P_f32 ‖ P_candidate)` at each position, nats. */
  klPerPosition: number[];
  /** Mean KL divergence with its 95% interval over positions (cut at 0). */
  kl: MeanInterval;
  /** Median of {@linkcode AccuracyReport.klPerPosition}. */
  klMedian: number;
  /** 99th percentile of {@linkcode AccuracyReport.klPerPosition}. */
  klP99: number;
  /** Largest of {@linkcode AccuracyReport.klPerPosition}. */
  klMax: number;
  /** Fraction of positions whose top-1 token matches the reference's, with its 95% interval (within [0, 1]). */
  sameTop1: MeanInterval;
  /** Mean change `p_candidate − p_f32` of the text's next token's probability (llama.cpp's Δp). */
  deltaP: MeanInterval;
  /** Mean change `p_candidate − p_f32` of the probability of the reference's top token. */
  topDeltaP: MeanInterval;
  /** Perplexity of the tokens under the candidate (meaningful for a real model and text). */
  perplexity: number;
  /** Perplexity of the tokens under the reference. */
  referencePerplexity: number;
  /**
   * `ln(perplexity / referencePerplexity)`, the mean of `ln p_f32(next) − ln p_candidate(next)`,
   * with its 95% interval over positions (llama.cpp's "Mean ln(PPL(Q)/PPL(base))"): an interval
   * that holds 0 is a change the text is too short to tell from none.
   */
  logPerplexityRatio: MeanInterval;
  /** Logit NMSE at each position. */
  nmsePerPosition: number[];
  /** Mean of {@linkcode AccuracyReport.nmsePerPosition}. */
  meanNmse: number;
  /** Largest of {@linkcode AccuracyReport.nmsePerPosition}. */
  maxNmse: number;
}

/**
 * Compares logits row by row, row `p` the prediction of the token `next[p]` (for one sequence,
 * `next` is the tokens after the first): KL divergence,
 * same top-1, Δp, perplexity and NMSE (see {@linkcode AccuracyReport}). Non-finite logits or
 * rows of different sizes are refused, naming the position.
 *
 * @example
 * ```ts
 * import { compareLogits } from "./accuracy.ts";
 * const f32 = [new Float32Array([2, 0, 0]), new Float32Array([0, 2, 0])];
 * const q = [new Float32Array([2, 0, 0.1]), new Float32Array([0, 1.9, 0])];
 * const r = compareLogits(q, f32, [0, 1]);
 * if (r.sameTop1.mean !== 1 || !(r.kl.mean > 0 && r.kl.mean < 0.01)) throw new Error("wrong");
 * ```
 */
export function compareLogits(
  candidate: readonly Float32Array[],
  reference: readonly Float32Array[],
  next: readonly number[],
): AccuracyReport {
  const n = reference.length;
  if (n === 0 || candidate.length !== n || next.length !== n) {
    throw new RangeError(
      `compareLogits: expected as many candidate rows and next tokens as reference rows (at least one), got ${candidate.length} candidate rows, ${n} reference rows and ${next.length} next tokens`,
    );
  }
  const klPerPosition: number[] = [];
  const nmsePerPosition: number[] = [];
  const sameTop: number[] = [];
  const deltaP: number[] = [];
  const topDeltaP: number[] = [];
  const logRatio: number[] = [];
  let logLikelihood = 0;
  let referenceLogLikelihood = 0;
  for (let p = 0; p < n; p++) {
    const [ref, cand] = [reference[p], candidate[p]];
    if (cand.length !== ref.length) {
      throw new RangeError(
        `compareLogits: position ${p}: expected ${ref.length} candidate logits, got ${cand.length}`,
      );
    }
    const token = next[p];
    if (!Number.isInteger(token) || token < 0 || token >= ref.length) {
      throw new RangeError(
        `compareLogits: next token ${p}: expected an id in [0, ${ref.length}), got ${token}`,
      );
    }
    const logP = rowLogSoftmax(ref, "reference", p);
    const logQ = rowLogSoftmax(cand, "candidate", p);
    klPerPosition.push(klDivergence(logP, logQ));
    const top = argmax(ref);
    sameTop.push(argmax(cand) === top ? 1 : 0);
    deltaP.push(Math.exp(logQ[token]) - Math.exp(logP[token]));
    topDeltaP.push(Math.exp(logQ[top]) - Math.exp(logP[top]));
    logRatio.push(logP[token] - logQ[token]);
    logLikelihood += logQ[token];
    referenceLogLikelihood += logP[token];
    let error = 0;
    let norm = 0;
    for (let i = 0; i < ref.length; i++) {
      error += (cand[i] - ref[i]) ** 2;
      norm += ref[i] * ref[i];
    }
    nmsePerPosition.push(norm === 0 ? (error === 0 ? 0 : Infinity) : error / norm);
  }
  return {
    positions: n,
    klPerPosition,
    kl: clip(meanWithInterval(klPerPosition), 0, Infinity),
    klMedian: percentile(klPerPosition, 0.5),
    klP99: percentile(klPerPosition, 0.99),
    klMax: klPerPosition.reduce((most, v) => Math.max(most, v), -Infinity), // no spread: long runs
    sameTop1: clip(meanWithInterval(sameTop), 0, 1),
    deltaP: clip(meanWithInterval(deltaP), -1, 1),
    topDeltaP: clip(meanWithInterval(topDeltaP), -1, 1),
    perplexity: Math.exp(-logLikelihood / n),
    referencePerplexity: Math.exp(-referenceLogLikelihood / n),
    logPerplexityRatio: meanWithInterval(logRatio),
    nmsePerPosition,
    meanNmse: nmsePerPosition.reduce((a, b) => a + b, 0) / n,
    maxNmse: nmsePerPosition.reduce((most, v) => Math.max(most, v), -Infinity),
  };
}

/**
 * Runs both decoders teacher-forced along `tokens` and compares them with
 * {@linkcode compareLogits}. Both must be fresh (nothing processed yet).
 *
 * @example
 * ```ts
 * import { makeConfig } from "./config.ts";
 * import { randomWeights } from "./weights.ts";
 * import { CpuDecoder } from "./cpu_decoder.ts";
 * import { measureAccuracy } from "./accuracy.ts";
 * const config = makeConfig({ dim: 64, hiddenDim: 64, nLayers: 1, nHeads: 2, nKvHeads: 1, vocabSize: 16, maxSeqLen: 8 });
 * const weights = randomWeights(config, 3);
 * const report = await measureAccuracy(
 *   new CpuDecoder(config, weights, { weights: "q8_0" }),
 *   new CpuDecoder(config, weights),
 *   [1, 5, 9, 2],
 * );
 * if (!(report.klMax < 1e-3)) throw new Error("wrong");
 * ```
 */
export async function measureAccuracy(
  candidate: Decoder,
  reference: Decoder,
  tokens: readonly number[],
): Promise<AccuracyReport> {
  const along = tokens.slice(0, -1);
  return compareLogits(
    await logitsAlong(candidate, along),
    await logitsAlong(reference, along),
    tokens.slice(1),
  );
}

/** {@linkcode logSoftmax} of one row, its errors naming the row and position. */
function rowLogSoftmax(row: Float32Array, which: string, pos: number): Float64Array {
  for (let i = 0; i < row.length; i++) {
    if (!Number.isFinite(row[i])) {
      throw new RangeError(
        `compareLogits: the ${which} logits at position ${pos} are not finite (${
          row[i]
        } for token ${i})`,
      );
    }
  }
  return logSoftmax(row);
}

/** The interval cut to the values possible (a KL divergence is never negative, a fraction ≤ 1). */
function clip(interval: MeanInterval, min: number, max: number): MeanInterval {
  return { ...interval, low: Math.max(min, interval.low), high: Math.min(max, interval.high) };
}

/**
 * Splits a text's token ids (without BOS) into sequences of at most `context` tokens that each
 * start with `bos`, as llama.cpp's perplexity splits a text into chunks: every chunk is
 * evaluated from position 0, and each of its tokens after BOS is predicted once.
 *
 * @example
 * ```ts
 * import { evaluationChunks } from "./accuracy.ts";
 * const chunks = evaluationChunks([5, 6, 7, 8, 9], 3);
 * if (JSON.stringify(chunks) !== "[[1,5,6],[1,7,8],[1,9]]") throw new Error("wrong");
 * ```
 */
export function evaluationChunks(tokens: readonly number[], context: number, bos = 1): number[][] {
  if (!Number.isInteger(context) || context < 2) {
    throw new RangeError(
      `evaluationChunks: expected a context of at least 2 tokens, got ${context}`,
    );
  }
  const chunks: number[][] = [];
  for (let at = 0; at < tokens.length; at += context - 1) {
    chunks.push([bos, ...tokens.slice(at, at + context - 1)]);
  }
  return chunks;
}

/**
 * The logits a decoder gives along each chunk (teacher-forced from position 0, the decoder
 * reused from one chunk to the next), row after row: each chunk's last token is not run, as
 * nothing follows it. {@linkcode nextTokens} gives the tokens the rows predict.
 *
 * @example
 * ```ts
 * import { makeConfig } from "./config.ts";
 * import { randomWeights } from "./weights.ts";
 * import { CpuDecoder } from "./cpu_decoder.ts";
 * import { logitsOverChunks, nextTokens } from "./accuracy.ts";
 * const config = makeConfig({ dim: 8, hiddenDim: 16, nLayers: 1, nHeads: 2, nKvHeads: 1, vocabSize: 10, maxSeqLen: 4 });
 * const chunks = [[1, 5, 6], [1, 7]];
 * const rows = await logitsOverChunks(new CpuDecoder(config, randomWeights(config)), chunks);
 * if (rows.length !== 3 || nextTokens(chunks).join() !== "5,6,7") throw new Error("wrong");
 * ```
 */
export async function logitsOverChunks(
  decoder: Decoder,
  chunks: readonly (readonly number[])[],
): Promise<Float32Array[]> {
  const rows: Float32Array[] = [];
  for (const chunk of chunks) rows.push(...await logitsAlong(decoder, chunk.slice(0, -1)));
  return rows;
}

/** The tokens {@linkcode logitsOverChunks}' rows predict: each chunk after its first token. */
export function nextTokens(chunks: readonly (readonly number[])[]): number[] {
  return chunks.flatMap((chunk) => chunk.slice(1));
}
