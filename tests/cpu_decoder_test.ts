import { expect } from "expect";
import { tinyConfig } from "./_config.ts";
import {
  contextConfig,
  CpuDecoder,
  forwardCost,
  generate,
  makeConfig,
  randomWeights,
  readCheckpoint,
  readTokenizer,
} from "../model/mod.ts";
import { compare } from "../reference/mod.ts";
import { LILY, MODEL_PATH, TOKENIZER_PATH } from "./_models.ts";

const variants = [
  { name: "MHA", nKvHeads: 4 },
  { name: "GQA", nKvHeads: 2 },
  { name: "MQA", nKvHeads: 1 },
];

for (const { name, nKvHeads } of variants) {
  Deno.test(`${name}: cached and recomputed decoding give the same logits at every position`, async () => {
    const config = tinyConfig({
      dim: 32,
      hiddenDim: 56,
      nLayers: 2,
      nHeads: 4,
      nKvHeads,
      vocabSize: 40,
      maxSeqLen: 24,
    });
    const weights = randomWeights(config, 11);
    const cached = new CpuDecoder(config, weights);
    const recomputed = new CpuDecoder(config, weights, { kvCache: false });
    const tokens = [1, 7, 33, 2, 19, 5, 5, 38, 0, 12, 26, 9, 14, 3, 30, 21];
    for (let pos = 0; pos < tokens.length; pos++) {
      const a = await cached.forward(tokens[pos], pos);
      const b = await recomputed.forward(tokens[pos], pos);
      expect(compare(a, b).maxAbsError).toBeLessThan(1e-5);
    }
  });
}

Deno.test("the decoder rejects positions that skip ahead or pass maxSeqLen", async () => {
  const config = tinyConfig({ dim: 8, hiddenDim: 8, vocabSize: 5, maxSeqLen: 2 });
  const decoder = new CpuDecoder(config, randomWeights(config));
  await expect(decoder.forward(1, 1)).rejects.toThrow(
    "position 1 skips ahead: no position has been processed yet",
  );
  await decoder.forward(1, 0);
  await decoder.forward(1, 1);
  await expect(decoder.forward(1, 2)).rejects.toThrow(
    "position: expected an integer in [0, maxSeqLen 2), got 2",
  );
  await expect(decoder.forward(9, 0)).rejects.toThrow(
    "token id 9 is outside the vocabulary [0, 5)",
  );
});

for (const kvCache of [true, false]) {
  Deno.test(`a rejected token leaves the ${kvCache ? "cached" : "recomputing"} decoder as it was`, async () => {
    const config = makeConfig({
      dim: 16,
      hiddenDim: 24,
      nLayers: 1,
      nHeads: 2,
      nKvHeads: 1,
      vocabSize: 12,
      maxSeqLen: 8,
    });
    const weights = randomWeights(config, 4);
    const decoder = new CpuDecoder(config, weights, { kvCache });
    await decoder.prefill([1, 5]);
    await expect(decoder.forward(12, 2)).rejects.toThrow("token id 12 is outside the vocabulary");
    await expect(decoder.prefill([3, -1], 2)).rejects.toThrow("token id -1 is outside");
    // Position 3 still skips ahead: position 2 was never processed, nor its cache slot written.
    await expect(decoder.forward(7, 3)).rejects.toThrow(
      "position 3 skips ahead: only positions 0..1 have been processed",
    );
    // Going on from position 2 gives what an untouched decoder gives.
    const fresh = new CpuDecoder(config, weights, { kvCache });
    await fresh.prefill([1, 5]);
    expect(await decoder.prefill([3, 7], 2)).toEqual(await fresh.prefill([3, 7], 2));
  });
}

Deno.test("a recomputing decoder allocates no KV cache", () => {
  const config = makeConfig({
    dim: 8,
    hiddenDim: 8,
    nLayers: 1,
    nHeads: 2,
    nKvHeads: 1,
    vocabSize: 5,
    maxSeqLen: 4,
  });
  expect(new CpuDecoder(config, randomWeights(config), { kvCache: false }).cache).toBeUndefined();
  expect(new CpuDecoder(config, randomWeights(config)).cache?.bytes).toBe(4 * 2 * 4 * 4);
});

Deno.test("a maxSeqLen too big for memory is refused naming it; contextConfig sizes the cache to a run", () => {
  const config = makeConfig({
    dim: 64,
    hiddenDim: 8,
    nLayers: 2,
    nHeads: 2,
    nKvHeads: 2,
    vocabSize: 5,
    maxSeqLen: 2 ** 31 - 1, // a version 1 header may say this: a 2.2 TB KV cache
  });
  const weights = randomWeights(config);
  expect(() => new CpuDecoder(config, weights)).toThrow(
    /^CpuDecoder: maxSeqLen 2147483647: a KV cache of 2147483647 positions needs 2199\.0 GB, more than 80% of this machine's/,
  );
  const decoder = new CpuDecoder(contextConfig(config, 16), weights);
  expect(decoder.cache?.bytes).toBe(16 * 2 * 2 * 64 * 4);
  expect(() => contextConfig(config, 0)).toThrow(
    "positions: expected an integer in [1, maxSeqLen 2147483647], got 0",
  );
});

Deno.test("seeded generation repeats exactly and differs across seeds", async () => {
  const config = tinyConfig({ vocabSize: 50, maxSeqLen: 40 });
  const weights = randomWeights(config, 2);
  const run = async (seed: number, extra = {}) =>
    (await generate(new CpuDecoder(config, weights), [1, 3], {
      steps: 30,
      temperature: 1,
      seed,
      stopAtBos: false,
      ...extra,
    })).tokens;
  expect(await run(4)).toEqual(await run(4));
  expect(await run(4)).not.toEqual(await run(5));
  expect(await run(4, { topP: 0.9, topK: 10 })).toEqual(await run(4, { topP: 0.9, topK: 10 }));
  // 2 prompt tokens and 39 steps process 40 positions: the last token is never processed.
  expect(await run(4, { steps: 39 })).toHaveLength(39);
  await expect(run(4, { steps: 40 })).rejects.toThrow(
    "prompt (2 tokens) + steps (40) - 1 exceed the model's maxSeqLen 40",
  );
});

Deno.test({
  name: "stories260K on the CPU reference: greedy 'Once upon a time' tells the Lily story",
  fn: async () => {
    const { config, weights } = await readCheckpoint(MODEL_PATH);
    const tokenizer = await readTokenizer(TOKENIZER_PATH, config.vocabSize);
    const prompt = tokenizer.encode("Once upon a time");
    const { tokens } = await generate(new CpuDecoder(config, weights), prompt, { steps: 60 });
    expect(
      tokenizer.decode([...prompt, ...tokens]).startsWith(
        `${LILY} She loved to play outside in the park.`,
      ),
    ).toBe(true);
  },
});

Deno.test("prefill without a cache is one pass over the prompt, equal to the cached prefill", async () => {
  const config = tinyConfig({
    dim: 32,
    hiddenDim: 40,
    nLayers: 2,
    nHeads: 4,
    nKvHeads: 2,
    vocabSize: 30,
    maxSeqLen: 12,
  });
  const weights = randomWeights(config, 6);
  const prompt = [1, 4, 9, 16, 25, 6];
  const cached = await new CpuDecoder(config, weights).prefill(prompt);
  const recomputed = new CpuDecoder(config, weights, { kvCache: false });
  expect(compare(await recomputed.prefill(prompt), cached).maxAbsError).toBeLessThan(1e-5);
  await expect(recomputed.prefill(new Array(13).fill(1))).rejects.toThrow(
    "prefill: positions 0..12 exceed maxSeqLen 12",
  );
});

Deno.test("forwardCost: decode reads weights plus the cached keys/values; recompute costs ~context× the FLOPs", () => {
  const config = tinyConfig({ dim: 8, hiddenDim: 16, nLayers: 2, maxSeqLen: 64 });
  // per layer: wq 64 + wk 32 + wv 32 + wo 64 + w1/w2/w3 3*128 = 576 floats
  const decode = forwardCost(config, { rows: 1, start: 9 });
  expect(decode.flops).toBe(2 * 2 * 576 + 2 * 10 * 8 + 2 * 2 * 4 * 4 * 10);
  expect(decode.weightBytes).toBe(4 * (2 * (576 + 16) + 8 + 80 + 8));
  expect(decode.kvReadBytes).toBe(10 * 2 * 2 * 4 * 4);
  expect(decode.kvWriteBytes).toBe(2 * 2 * 4 * 4); // one position: 2 layers, k and v, kvDim 4
  expect(decode.bytes).toBe(decode.weightBytes + decode.kvReadBytes + decode.kvWriteBytes);
  const recompute = forwardCost(config, { rows: 10, start: 0 });
  expect(recompute.flops).toBe(10 * 2 * 2 * 576 + 2 * 10 * 8 + 2 * 2 * 4 * 4 * 55);
  const mqa = forwardCost({ ...config, nKvHeads: 1 }, { rows: 1, start: 63 });
  const mha = forwardCost({ ...config, nKvHeads: 2 }, { rows: 1, start: 63 });
  expect(mha.kvReadBytes / mqa.kvReadBytes).toBe(2);
});
