// Accuracy of each precision against float32, bounded from measured values (README: Precision)
// with margins, and from the formats' error analysis: the logit NMSE scales with the square of
// the quantization step, so Q4_0 (step max/8) over Q8_0 (step max/127) is about (127/8)² ≈ 252.
import { expect } from "expect";
import {
  type AccuracyReport,
  compareLogits,
  CpuDecoder,
  generate,
  type LlamaConfig,
  type LlamaWeights,
  logitsAlong,
  makeConfig,
  randomWeights,
  readCheckpoint,
  readTokenizer,
} from "../model/mod.ts";
import { Rng } from "../reference/mod.ts";
import type { KvFormat, TensorFormat } from "../reference/mod.ts";
import { MODEL_PATH, TOKENIZER_PATH } from "./_models.ts";

type Bound = { meanNmse: number; top1: number; perplexityRatio: [number, number] };

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
    reports.push(compareLogits(await logitsAlong(decoder, along), reference, tokens));
  }
  return reports;
}

function expectWithin(name: string, report: AccuracyReport, bound: Bound): void {
  const ratio = report.perplexity / report.referencePerplexity;
  expect({ name, meanNmse: report.meanNmse < bound.meanNmse }).toEqual({ name, meanNmse: true });
  expect({ name, top1: report.top1Agreement >= bound.top1 }).toEqual({ name, top1: true });
  expect({ name, ratio: ratio >= bound.perplexityRatio[0] && ratio <= bound.perplexityRatio[1] })
    .toEqual({ name, ratio: true });
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
    // Measured over 200 tokens: 9.6e-8, 3.4e-5, 9.8e-3 mean NMSE; top-1 1.0, 0.99, 0.86-0.89.
    expectWithin("f16", f16, { meanNmse: 1e-6, top1: 0.95, perplexityRatio: [0.999, 1.001] });
    expectWithin("q8_0", q8, { meanNmse: 2e-4, top1: 0.9, perplexityRatio: [0.99, 1.01] });
    expectWithin("q4_0", q4, { meanNmse: 4e-2, top1: 0.7, perplexityRatio: [0.95, 1.05] });
    const stepRatio = q4.meanNmse / q8.meanNmse; // ≈ (127/8)² = 252 for the weights alone
    expect(stepRatio).toBeGreaterThan(100);
    expect(stepRatio).toBeLessThan(700);
    expect(q8.meanNmse / f16.meanNmse).toBeGreaterThan(30);
  });
}

Deno.test({
  name: "accuracy on stories260K over the 200-token Lily story: bounds from measured values",
  async fn() {
    const { config, weights } = await readCheckpoint(MODEL_PATH);
    const tokenizer = await readTokenizer(TOKENIZER_PATH, config.vocabSize);
    const prompt = tokenizer.encode("Once upon a time");
    const story = await generate(new CpuDecoder(config, weights), prompt, {
      steps: 200 - prompt.length + 1,
      temperature: 0,
      stopAtBos: false,
    });
    const tokens = [...prompt, ...story.tokens];
    expect(tokens).toHaveLength(201);
    const [f16, q8, q4] = await accuracy(config, weights, tokens, [
      ["f16", "f16"],
      ["q8_0", "q8_0"],
      ["q4_0", "f32"],
    ]);
    // Measured: mean NMSE 3.2e-7, 4.8e-4, 4.3e-2; top-1 1.0, 0.985, 0.853; perplexity 1.6124,
    // 1.6259, 1.7559 against f32's 1.6123.
    expectWithin("f16", f16, { meanNmse: 3e-6, top1: 0.99, perplexityRatio: [0.999, 1.001] });
    expectWithin("q8_0", q8, { meanNmse: 2e-3, top1: 0.95, perplexityRatio: [1, 1.03] });
    expectWithin("q4_0", q4, { meanNmse: 0.15, top1: 0.75, perplexityRatio: [1.02, 1.25] });
  },
});
