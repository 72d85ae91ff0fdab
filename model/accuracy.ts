/**
 * What a lower precision costs in accuracy: a candidate decoder (f16/Q8_0/Q4_0 weights, f16/Q8_0
 * KV cache) against the float32 one, teacher-forced on the same tokens.
 *
 * - **logit NMSE** at each position: `Σ(candidate − f32)² / Σ f32²` over the vocabulary;
 * - **top-1 agreement**: the fraction of positions where both pick the same next token (on
 *   the f32 greedy run, that is where a greedy candidate would not yet have diverged);
 * - **perplexity** of a fixed token sequence under each, `exp(−mean log p(next))`.
 *
 * @module
 */
import type { Decoder } from "./decoder.ts";
import { argmax } from "../reference/sampling.ts";

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
  /** Logit NMSE at each position. */
  nmsePerPosition: number[];
  /** Mean of {@linkcode AccuracyReport.nmsePerPosition}. */
  meanNmse: number;
  /** Largest of {@linkcode AccuracyReport.nmsePerPosition}. */
  maxNmse: number;
  /** Fraction of positions whose argmax matches the reference's, in [0, 1]. */
  top1Agreement: number;
  /** Perplexity of the tokens under the candidate. */
  perplexity: number;
  /** Perplexity of the tokens under the reference. */
  referencePerplexity: number;
}

/**
 * Compares logits along `tokens` (each row the prediction of the next token): NMSE per
 * position, top-1 agreement, and the perplexity of `tokens[1..]` under each.
 *
 * @example
 * ```ts
 * import { compareLogits } from "./accuracy.ts";
 * const f32 = [new Float32Array([2, 0, 0]), new Float32Array([0, 2, 0])];
 * const q = [new Float32Array([2, 0, 0.1]), new Float32Array([0, 1.9, 0])];
 * const r = compareLogits(q, f32, [0, 0, 1]);
 * if (r.top1Agreement !== 1 || !(r.meanNmse > 0 && r.meanNmse < 0.01)) throw new Error("wrong");
 * ```
 */
export function compareLogits(
  candidate: readonly Float32Array[],
  reference: readonly Float32Array[],
  tokens: readonly number[],
): AccuracyReport {
  if (candidate.length !== reference.length || tokens.length !== reference.length + 1) {
    throw new RangeError(
      `compareLogits: expected ${reference.length} candidate rows and ${
        reference.length + 1
      } tokens, got ${candidate.length} and ${tokens.length}`,
    );
  }
  const nmsePerPosition = reference.map((ref, p) => {
    let error = 0;
    let norm = 0;
    for (let i = 0; i < ref.length; i++) {
      const d = candidate[p][i] - ref[i];
      error += d * d;
      norm += ref[i] * ref[i];
    }
    return norm === 0 ? (error === 0 ? 0 : Infinity) : error / norm;
  });
  let agree = 0;
  let logLikelihood = 0;
  let referenceLogLikelihood = 0;
  reference.forEach((ref, p) => {
    if (argmax(candidate[p]) === argmax(ref)) agree++;
    logLikelihood += logProbability(candidate[p], tokens[p + 1]);
    referenceLogLikelihood += logProbability(ref, tokens[p + 1]);
  });
  const n = reference.length;
  return {
    nmsePerPosition,
    meanNmse: nmsePerPosition.reduce((a, b) => a + b, 0) / n,
    maxNmse: nmsePerPosition.reduce((most, v) => Math.max(most, v), -Infinity),
    top1Agreement: agree / n,
    perplexity: Math.exp(-logLikelihood / n),
    referencePerplexity: Math.exp(-referenceLogLikelihood / n),
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
 * if (!(report.maxNmse < 1e-3)) throw new Error("wrong");
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
    tokens,
  );
}

/** `log softmax(logits)[token]`, in double precision. */
function logProbability(logits: Float32Array, token: number): number {
  let max = -Infinity;
  for (const v of logits) max = Math.max(max, v);
  let sum = 0;
  for (const v of logits) sum += Math.exp(v - max);
  return logits[token] - max - Math.log(sum);
}
