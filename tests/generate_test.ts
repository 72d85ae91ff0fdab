import { expect } from "expect";
import { BOS, CpuDecoder, generate, makeConfig, randomWeights } from "../model/mod.ts";

const config = makeConfig({
  dim: 16,
  hiddenDim: 24,
  nLayers: 1,
  nHeads: 2,
  nKvHeads: 1,
  vocabSize: 10,
  maxSeqLen: 32,
});

/** A CPU decoder whose logits favour BOS overwhelmingly from the `bosAfter`-th forward call. */
class BosAfter extends CpuDecoder {
  calls = 0;
  constructor(readonly bosAfter: number) {
    super(config, randomWeights(config, 8));
  }
  override async forward(token: number, pos: number): Promise<Float32Array> {
    const logits = await super.forward(token, pos);
    if (++this.calls >= this.bosAfter) logits[BOS] = 1e6;
    return logits;
  }
}

Deno.test("decode speed counts the forward passes that ran when generation stops at BOS", async () => {
  const decoder = new BosAfter(3);
  const result = await generate(decoder, [1, 4], { steps: 20 });
  // three forward passes after the first token; the third chose BOS, so two tokens are kept
  expect(decoder.calls).toBe(3);
  expect(result.tokens).toHaveLength(3);
  expect(result.decodeSteps).toBe(3);
  expect(result.decodeTokensPerSecond).toBe(3 / (result.decodeMs / 1000));
  // without stopping, every one of the 19 steps after the first ran
  const all = await generate(new BosAfter(100), [1, 4], { steps: 20 });
  expect(all.decodeSteps).toBe(19);
  expect(all.tokens).toHaveLength(20);
});

Deno.test("non-finite logits stop generation with an error naming the position", async () => {
  const weights = randomWeights(config, 8);
  // finite weights of 7.9e37 in the classifier row of token 6: its logit overflows to ±Inf
  weights.classifier.fill(7.9e37, 6 * config.dim, 7 * config.dim);
  for (const options of [{ temperature: 0 }, { temperature: 0.8 }, { topK: 3, temperature: 1 }]) {
    await expect(
      generate(new CpuDecoder(config, weights), [1, 4, 5], { steps: 5, ...options }),
    ).rejects.toThrow(
      /^generation stopped: the logits after position \d+ are not finite \((-?Infinity|NaN) for token 6\)/,
    );
  }
  // the overflow only at a later position: the tokens before it were chosen, then it stops
  const late = randomWeights(config, 8);
  const decoder = new CpuDecoder(config, late);
  const seen: number[] = [];
  const original = decoder.forward.bind(decoder);
  decoder.forward = async (token, pos) => {
    const logits = await original(token, pos);
    if (pos === 5) logits[3] = NaN;
    return logits;
  };
  await expect(
    generate(decoder, [1, 4], { steps: 10, stopAtBos: false, onToken: (t) => seen.push(t) }),
  ).rejects.toThrow(
    "generation stopped: the logits after position 5 are not finite (NaN for token 3)",
  );
  expect(seen).toHaveLength(4); // chosen from the logits after positions 1, 2, 3 and 4
});
