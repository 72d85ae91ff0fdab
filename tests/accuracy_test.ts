// The accuracy figures of model/accuracy.ts against hand-computed values, and on random models
// against the formats' error analysis: for a small logit perturbation δ, KL ≈ ½ Var_p(δ), so the
// KL divergence, like the logit NMSE, scales with the square of the quantization step, and Q4_0
// (step max/8) over Q8_0 (step max/127) is about (127/8)² ≈ 252.
import { expect } from "expect";
import {
  type AccuracyReport,
  compareLogits,
  CpuDecoder,
  evaluationChunks,
  klDivergence,
  type LlamaConfig,
  type LlamaWeights,
  logitsAlong,
  logSoftmax,
  makeConfig,
  meanWithInterval,
  percentile,
  randomWeights,
} from "../model/mod.ts";
import { Rng } from "../reference/mod.ts";
import type { KvFormat, TensorFormat } from "../reference/mod.ts";

const LN2 = Math.log(2);
const LN3 = Math.log(3);

Deno.test("logSoftmax: hand-computed log-probabilities, at any offset of the logits", () => {
  // softmax(0, ln 3) = (1/4, 3/4).
  for (const offset of [0, 1000, -1000, 1e6]) {
    const [a, b] = logSoftmax([offset, offset + LN3]);
    expect(a).toBeCloseTo(Math.log(1 / 4), 9);
    expect(b).toBeCloseTo(Math.log(3 / 4), 9);
  }
  // One logit far below the other: its probability e^-800 underflows, its log does not.
  const [top, tiny] = logSoftmax([0, -800]);
  expect(top).toBe(0);
  expect(tiny).toBe(-800);
  expect(() => logSoftmax([0, NaN])).toThrow("expected finite logits, got NaN at 1");
  expect(() => logSoftmax([])).toThrow("expected at least one logit");
});

Deno.test("klDivergence: hand-computed values, asymmetry, zero for equal distributions", () => {
  const p = logSoftmax([0, LN3]); // (1/4, 3/4)
  const q = logSoftmax([0, 0]); // (1/2, 1/2)
  // 1/4 ln(1/2) + 3/4 ln(3/2) = -0.1732868 + 0.3040988
  expect(klDivergence(p, q)).toBeCloseTo(0.130812035941137, 14);
  // 1/2 ln 2 + 1/2 ln(2/3) = (ln 2 − ln 3/2) / 2
  expect(klDivergence(q, p)).toBeCloseTo(0.143841036225890, 14);
  expect(klDivergence(p, p)).toBe(0);
  // P = (1, e^-800): the underflowed term adds 0, leaving ln(1 / (1/2)) = ln 2.
  expect(klDivergence(logSoftmax([0, -800]), q)).toBeCloseTo(LN2, 14);
  expect(() => klDivergence(p, logSoftmax([0, 0, 0]))).toThrow("got 2 and 3");
});

Deno.test("klDivergence agrees with its second-order expansion ½ Var_p(δ) for small δ", () => {
  // An independent algorithm: KL(softmax(x) ‖ softmax(x + εδ)) = ε²/2 · Var_p(δ) + O(ε³).
  const rng = new Rng(3);
  const x = Array.from({ length: 512 }, () => 4 * rng.uniform(-1, 1));
  const delta = Array.from({ length: 512 }, () => rng.uniform(-1, 1));
  const logP = logSoftmax(x);
  let mean = 0;
  let square = 0;
  logP.forEach((l, i) => {
    mean += Math.exp(l) * delta[i];
    square += Math.exp(l) * delta[i] ** 2;
  });
  const variance = square - mean * mean;
  for (const eps of [1e-2, 1e-3]) {
    const kl = klDivergence(logP, logSoftmax(x.map((v, i) => v + eps * delta[i])));
    const expansion = eps * eps / 2 * variance;
    expect(Math.abs(kl / expansion - 1)).toBeLessThan(eps * 10);
  }
});

Deno.test("evaluationChunks: BOS first in each, every text token predicted once", () => {
  expect(evaluationChunks([5, 6, 7, 8, 9], 3)).toEqual([[1, 5, 6], [1, 7, 8], [1, 9]]);
  expect(evaluationChunks([5, 6], 512)).toEqual([[1, 5, 6]]);
  expect(evaluationChunks([], 4)).toEqual([]);
  expect(() => evaluationChunks([5], 1)).toThrow("at least 2 tokens, got 1");
});

Deno.test("meanWithInterval and percentile: hand-computed", () => {
  // mean 2.5; Σ(x − 2.5)² = 5; standard error sqrt(5 / 4 / 3) = 0.645497; 1.959964 of them.
  const { mean, low, high } = meanWithInterval([1, 2, 3, 4]);
  expect(mean).toBe(2.5);
  expect(high - 2.5).toBeCloseTo(1.959964 * 0.6454972243679028, 12);
  expect(2.5 - low).toBeCloseTo(1.959964 * 0.6454972243679028, 12);
  expect(meanWithInterval([7])).toEqual({ mean: 7, low: -Infinity, high: Infinity });
  // sorted 1 2 3 4 10: 0.99 · 4 = 3.96 → 4 + 0.96 · 6; 0.5 · 4 = 2 → 3; 0.3 · 4 = 1.2 → 2.2
  expect(percentile([10, 1, 3, 2, 4], 0.99)).toBeCloseTo(9.76, 12);
  expect(percentile([10, 1, 3, 2, 4], 0.5)).toBe(3);
  expect(percentile([10, 1, 3, 2, 4], 0.3)).toBeCloseTo(2.2, 12);
  expect(percentile([10, 1, 3, 2, 4], 1)).toBe(10);
  expect(() => percentile([1], 1.5)).toThrow("expected a fraction in [0, 1], got 1.5");
});

Deno.test("compareLogits: every figure of three hand-made positions", () => {
  const f32 = (...v: number[]) => Float32Array.from(v);
  // Position 0: P = (1/4, 3/4), Q = (2/5, 3/5), next token 1. Same top (1).
  // Position 1: P = (3/4, 1/4), Q = (1/4, 3/4), next token 0. Top 0 against 1.
  // Position 2: identical, softmax(1, 2, 3), next token 2.
  const reference = [f32(0, LN3), f32(LN3, 0), f32(1, 2, 3)];
  const candidate = [f32(0, Math.log(1.5)), f32(0, LN3), f32(1, 2, 3)];
  const r = compareLogits(candidate, reference, [1, 0, 2]);
  // f32 rounding of ln 3 and ln 1.5 limits agreement to ~1e-7.
  const kl0 = 0.25 * Math.log(0.25 / 0.4) + 0.75 * Math.log(0.75 / 0.6); // 0.0498568
  const kl1 = 0.5 * LN3; // 3/4 ln 3 + 1/4 ln(1/3)
  expect(r.positions).toBe(3);
  r.klPerPosition.forEach((kl, i) => expect(kl).toBeCloseTo([kl0, kl1, 0][i], 7));
  expect(r.kl.mean).toBeCloseTo((kl0 + kl1) / 3, 7);
  // Standard error of (0.0498568, 0.5493061, 0): sqrt(Σ(x − mean)² / 3 / 2) = 0.1753840.
  expect(r.kl.high).toBeCloseTo(0.19972097 + 1.959964 * 0.175384, 5);
  expect(r.kl.low).toBe(0); // 0.1997 − 0.3437 cut at 0
  expect(r.klMedian).toBeCloseTo(kl0, 7);
  expect(r.klP99).toBeCloseTo(kl0 + 0.98 * (kl1 - kl0), 7);
  expect(r.klMax).toBeCloseTo(kl1, 7);
  expect(r.sameTop1.mean).toBeCloseTo(2 / 3, 12);
  expect(r.sameTop1.high).toBe(1); // 2/3 + 1.96 · 1/3 cut at 1
  // Δp of the next token: 3/5 − 3/4, 1/4 − 3/4, 0; of the f32 top token: the same tokens here.
  expect(r.deltaP.mean).toBeCloseTo((-0.15 - 0.5) / 3, 7);
  expect(r.topDeltaP.mean).toBeCloseTo((-0.15 - 0.5) / 3, 7);
  const p2 = 1 / (1 + Math.exp(-1) + Math.exp(-2)); // softmax(1, 2, 3)[2] = 0.6652410
  expect(r.perplexity).toBeCloseTo(Math.exp(-(Math.log(0.6 * 0.25 * p2)) / 3), 6); // 2.155973
  expect(r.referencePerplexity).toBeCloseTo(Math.exp(-(Math.log(0.75 * 0.75 * p2)) / 3), 6);
  expect(r.logPerplexityRatio.mean).toBeCloseTo(Math.log(r.perplexity / r.referencePerplexity), 12);
  // NMSE: (ln 3 − ln 1.5)² / (ln 3)², 2 (ln 3)² / (ln 3)², 0.
  expect(r.nmsePerPosition[0]).toBeCloseTo(LN2 ** 2 / LN3 ** 2, 6);
  expect(r.nmsePerPosition[1]).toBeCloseTo(2, 6);
  expect(r.nmsePerPosition[2]).toBe(0);
});

Deno.test("compareLogits refuses non-finite logits, mismatched rows and bad tokens, naming them", () => {
  const row = Float32Array.from([0, 1, 2]);
  expect(() => compareLogits([Float32Array.from([0, NaN, 2])], [row], [1]))
    .toThrow("the candidate logits at position 0 are not finite (NaN for token 1)");
  expect(() => compareLogits([row], [Float32Array.from([0, 1, Infinity])], [1]))
    .toThrow("the reference logits at position 0 are not finite (Infinity for token 2)");
  expect(() => compareLogits([row, row], [row, Float32Array.from([1, 2])], [1, 2]))
    .toThrow("position 1: expected 2 candidate logits, got 3");
  expect(() => compareLogits([row], [row], [3])).toThrow(
    "next token 0: expected an id in [0, 3), got 3",
  );
  expect(() => compareLogits([row], [row], [0, 1])).toThrow(
    "got 1 candidate rows, 1 reference rows and 2 next tokens",
  );
});

async function accuracy(
  config: LlamaConfig,
  weights: LlamaWeights,
  tokens: number[],
  pairs: [TensorFormat, KvFormat][],
): Promise<AccuracyReport[]> {
  const along = tokens.slice(0, -1);
  const reference = await logitsAlong(new CpuDecoder(config, weights), along);
  const reports: AccuracyReport[] = [];
  for (const [weightFormat, kvFormat] of pairs) {
    const decoder = new CpuDecoder(config, weights, { weights: weightFormat, kvCache: kvFormat });
    reports.push(compareLogits(await logitsAlong(decoder, along), reference, tokens.slice(1)));
  }
  return reports;
}

for (const [attention, nKvHeads] of [["MHA", 4], ["GQA", 2], ["MQA", 1]] as const) {
  Deno.test(`accuracy on a random ${attention} model: f16 < Q8_0 < Q4_0, as the step sizes predict`, async () => {
    const config = makeConfig({
      dim: 128,
      hiddenDim: 256,
      nLayers: 2,
      nHeads: 4,
      nKvHeads,
      vocabSize: 256,
      maxSeqLen: 80,
      sharedClassifier: false,
    });
    const rng = new Rng(5);
    const tokens = Array.from({ length: 65 }, () => rng.nextUint32() % config.vocabSize);
    const [f16, q8, q4] = await accuracy(config, randomWeights(config, 11), tokens, [
      ["f16", "f16"],
      ["q8_0", "q8_0"],
      ["q4_0", "f32"],
    ]);
    // Measured (MHA, GQA, MQA): mean KL 1.5-1.7e-8, 5.5-6.0e-6, 1.6-1.7e-3; mean NMSE 1e-7,
    // 3.5e-5, 1e-2; same top-1 1.0, 0.98-1.0, 0.80-0.88.
    expect(f16.kl.high).toBeLessThan(1e-7);
    expect(q8.kl.high).toBeLessThan(3e-5);
    expect(q4.kl.high).toBeLessThan(1e-2);
    // Each format's 95% interval lies wholly above the previous one's.
    expect(q8.kl.low).toBeGreaterThan(f16.kl.high);
    expect(q4.kl.low).toBeGreaterThan(q8.kl.high);
    expect([f16.sameTop1.mean, q8.sameTop1.mean, q4.sameTop1.mean].map((s) => s >= 0.7))
      .toEqual([true, true, true]);
    for (const ratio of [q4.kl.mean / q8.kl.mean, q4.meanNmse / q8.meanNmse]) {
      expect(ratio).toBeGreaterThan(100); // ≈ (127/8)² = 252 for the weights alone
      expect(ratio).toBeLessThan(700);
    }
    expect(q8.kl.mean / f16.kl.mean).toBeGreaterThan(30);
  });
}
