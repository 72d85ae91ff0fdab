import { expect } from "expect";
import { tinyConfig } from "./_config.ts";
import {
  CpuDecoder,
  generate,
  GpuDecoder,
  type LlamaConfig,
  makeConfig,
  randomWeights,
  readCheckpoint,
  readTokenizer,
} from "../model/mod.ts";
import { argmax, compare, gumbelSample } from "../reference/mod.ts";
import { gpuTest } from "./_gpu.ts";
import { LILY, MODEL_PATH, TOKENIZER_PATH } from "./_models.ts";

const TOKENS = [1, 17, 4, 99, 250, 3, 3, 61, 128, 7, 255, 42];

/** Runs both decoders on the same tokens (the GPU forced onto the CPU's) and compares logits. */
async function expectSameLogits(
  config: LlamaConfig,
  gpuDecoder: GpuDecoder,
  cpuDecoder: CpuDecoder,
) {
  for (let pos = 0; pos < TOKENS.length; pos++) {
    const expected = await cpuDecoder.forward(TOKENS[pos], pos);
    const actual = await gpuDecoder.forward(TOKENS[pos], pos);
    const stats = compare(actual, expected);
    expect(stats.firstNonFinite).toBe(-1);
    expect(stats.nmse).toBeLessThanOrEqual(1e-6);
    expect(actual.length).toBe(config.vocabSize);
  }
}

for (const [name, nKvHeads] of [["MHA", 8], ["GQA", 2], ["MQA", 1]] as const) {
  for (const sharedClassifier of [true, false]) {
    gpuTest(
      `${name} (${
        sharedClassifier ? "shared" : "separate"
      } classifier): WebGPU logits match the CPU reference at every position`,
      async (gpu) => {
        const config = tinyConfig({
          dim: 64,
          hiddenDim: 100,
          nLayers: 2,
          nHeads: 8,
          nKvHeads,
          vocabSize: 300,
          maxSeqLen: 32,
          sharedClassifier,
        });
        const weights = randomWeights(config, 21);
        const decoder = await GpuDecoder.create(gpu, config, weights);
        await expectSameLogits(config, decoder, new CpuDecoder(config, weights));
        decoder.destroy();
      },
    );
  }
}

gpuTest(
  "tensors split past the binding limit and chunked prefill give the CPU's logits",
  async (gpu) => {
    const config = tinyConfig({
      dim: 32,
      hiddenDim: 72,
      nLayers: 2,
      nHeads: 4,
      nKvHeads: 2,
      vocabSize: 300,
      maxSeqLen: 32,
      sharedClassifier: false,
    });
    const weights = randomWeights(config, 8);
    // 18 KiB bindings: the 300x32 embedding and classifier split into 128-row blocks
    const decoder = await GpuDecoder.create(gpu, config, weights, {
      maxBindingBytes: 64 * 72 * 4,
      maxPrefillRows: 5,
    });
    const cpu = new CpuDecoder(config, weights);
    const expected = await cpu.prefill(TOKENS);
    expect(compare(await decoder.prefill(TOKENS), expected).nmse).toBeLessThanOrEqual(1e-6);
    // per layer: wq, wo 32·32; wk, wv 16·32; w1, w2, w3 72·32; two norms of 32. Then the
    // 300·32 embedding and classifier and the final norm: 39328 floats.
    expect(decoder.weightBytes).toBe(
      4 * (2 * (2 * 1024 + 2 * 512 + 3 * 2304 + 64) + 2 * 9600 + 32),
    );
    expect(decoder.kvCacheBytes).toBe(cpu.cache!.bytes);
    await expectSameLogits(config, decoder, new CpuDecoder(config, weights));
    decoder.destroy();
  },
);

gpuTest("WebGPU recompute (no KV cache) gives the cached decoder's logits", async (gpu) => {
  const config = tinyConfig({
    dim: 32,
    hiddenDim: 64,
    nLayers: 2,
    nHeads: 4,
    nKvHeads: 2,
    vocabSize: 300,
    maxSeqLen: 16,
  });
  const weights = randomWeights(config, 4);
  const cached = await GpuDecoder.create(gpu, config, weights);
  const recomputed = await GpuDecoder.create(gpu, config, weights, { kvCache: false });
  for (let pos = 0; pos < 6; pos++) {
    const a = await cached.forward(TOKENS[pos], pos);
    const b = await recomputed.forward(TOKENS[pos], pos);
    expect(compare(b, a).maxAbsError).toBeLessThan(1e-5);
  }
  const resident = await recomputed.generate([1, 5], 4);
  const stepwise = await generate(new CpuDecoder(config, weights), [1, 5], {
    steps: 4,
    stopAtBos: false,
  });
  expect(resident.tokens).toEqual(stepwise.tokens);
  cached.destroy();
  recomputed.destroy();
});

gpuTest("the WebGPU decoder rejects bad tokens and positions with clear errors", async (gpu) => {
  const config = tinyConfig({ hiddenDim: 16, maxSeqLen: 4 });
  const decoder = await GpuDecoder.create(gpu, config, randomWeights(config));
  await expect(decoder.forward(10, 0)).rejects.toThrow(
    "token id 10 is outside the vocabulary [0, 10)",
  );
  await expect(decoder.forward(1, 2)).rejects.toThrow("position 2 skips ahead");
  await expect(decoder.prefill([1, 2, 3, 4, 5])).rejects.toThrow(
    "prefill: positions 0..4 exceed maxSeqLen 4",
  );
  await expect(decoder.generate([1, 2], 4)).rejects.toThrow(
    "prompt (2) + steps (4) - 1 exceed maxSeqLen 4",
  );
  // 2 + 3 tokens fill the 4 positions: the last token is chosen, never processed, on both
  // backends, and its slot in the history exists
  for (const kvCache of [true, false]) {
    const gpuDecoder = await GpuDecoder.create(gpu, config, randomWeights(config), { kvCache });
    const resident = await gpuDecoder.generate([1, 2], 3);
    const cpu = await generate(new CpuDecoder(config, randomWeights(config)), [1, 2], {
      steps: 3,
      stopAtBos: false,
    });
    expect(resident.tokens).toEqual(cpu.tokens);
    gpuDecoder.destroy();
  }
  decoder.destroy();
});

gpuTest("GPU-resident generation stops at non-finite logits, naming the position", async (gpu) => {
  const config = makeConfig({
    dim: 16,
    hiddenDim: 24,
    nLayers: 1,
    nHeads: 2,
    nKvHeads: 1,
    vocabSize: 10,
    maxSeqLen: 16,
  });
  const weights = randomWeights(config, 8);
  // token 6's logit is 3e38 times a normalized feature scaled by 1e4: +-Inf at every position,
  // whatever the order of summation (a single non-zero product)
  weights.classifier.fill(0, 6 * config.dim, 7 * config.dim);
  weights.classifier[6 * config.dim + 3] = 3e38;
  weights.finalNorm[3] = 1e4;
  for (const temperature of [0, 0.8]) {
    for (const kvCache of [true, false]) {
      const decoder = await GpuDecoder.create(gpu, config, weights, { kvCache });
      const streamed: number[] = [];
      // a few steps: recomputing, the GPU records a pass per prefix length up front
      const options = { steps: 3, temperature, stopAtBos: false };
      const message = "generation stopped: the logits after position 2 are not finite";
      await expect(generate(new CpuDecoder(config, weights), [1, 4, 5], options)).rejects
        .toThrow(message);
      await expect(
        generate(decoder, [1, 4, 5], { ...options, onToken: (t) => streamed.push(t) }),
      ).rejects.toThrow(message);
      expect(streamed).toEqual([]); // nothing was chosen from finite logits
      // after a finite prompt pass, a later overflow: the GPU names the position it happened at
      decoder.destroy();
    }
  }
});

gpuTest(
  "GPU-resident generation on a random GQA model picks the CPU's tokens, greedy and sampled",
  async (gpu) => {
    const config = tinyConfig({
      dim: 64,
      hiddenDim: 128,
      nLayers: 2,
      nHeads: 8,
      nKvHeads: 2,
      vocabSize: 300,
      maxSeqLen: 64,
    });
    const weights = randomWeights(config, 30);
    const decoder = await GpuDecoder.create(gpu, config, weights);
    for (const temperature of [0, 0.9]) {
      const prompt = [1, 200, 17];
      const resident = await decoder.generate(prompt, 40, { temperature, seed: 9 });
      // the CPU with the same choice rule, token by token
      const cpu = new CpuDecoder(config, weights);
      let logits = await cpu.prefill(prompt);
      const expected: number[] = [];
      for (let i = 0; i < 40; i++) {
        const next = gumbelSample(logits, temperature, 9, prompt.length + i);
        expected.push(next);
        if (i < 39) logits = await cpu.forward(next, prompt.length + i);
      }
      expect(resident.tokens).toEqual(expected);
      // streamed in batches of 7: the same tokens, delivered in order as they are read back
      const batches: number[][] = [];
      const streamed = await decoder.generate(prompt, 40, {
        temperature,
        seed: 9,
        streamEvery: 7,
        onTokens: (t) => batches.push(t),
      });
      expect(streamed.tokens).toEqual(expected);
      // the first batch also holds the token the prompt pass chose
      expect(batches.map((b) => b.length)).toEqual([8, 7, 7, 7, 7, 4]);
      expect(batches.flat()).toEqual(expected);
      if (temperature === 0) {
        // greedy is plain argmax: an independent chain of argmax over the CPU's logits
        const chain = new CpuDecoder(config, weights);
        let l = await chain.prefill(prompt);
        const greedy: number[] = [];
        for (let i = 0; i < 40; i++) {
          greedy.push(argmax(l));
          if (i < 39) l = await chain.forward(greedy[i], prompt.length + i);
        }
        expect(resident.tokens).toEqual(greedy);
      }
    }
    decoder.destroy();
  },
);

Deno.test({
  name: "stories260K on WebGPU: greedy tells the Lily story and matches the CPU for 200 tokens",
  ignore: (await import("./_gpu.ts")).ignoreGpuTests,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const { testGpu } = await import("./_gpu.ts");
    const gpu = await testGpu();
    const { config, weights } = await readCheckpoint(MODEL_PATH);
    const tokenizer = await readTokenizer(TOKENIZER_PATH, config.vocabSize);
    const prompt = tokenizer.encode("Once upon a time");
    const options = { steps: 200, stopAtBos: false };
    const cpu = await generate(new CpuDecoder(config, weights), prompt, options);
    const decoder = await GpuDecoder.create(gpu, config, weights);
    const resident = await generate(decoder, prompt, options);
    expect(resident.gpuResident).toBe(true);
    expect(tokenizer.decode([...prompt, ...resident.tokens]).startsWith(LILY)).toBe(true);
    expect(resident.tokens).toEqual(cpu.tokens);
    // sampled with a temperature, GPU-resident, against the CPU's Gumbel draws
    const sampled = { steps: 100, temperature: 0.8, seed: 3, stopAtBos: false };
    expect((await generate(decoder, prompt, sampled)).tokens).toEqual(
      (await generate(new CpuDecoder(config, weights), prompt, sampled)).tokens,
    );
    // top-p reads logits back each token; same seed, same tokens as the CPU
    const nucleus = { steps: 30, temperature: 0.9, topP: 0.9, seed: 5, stopAtBos: false };
    const gpuNucleus = await generate(decoder, prompt, nucleus);
    expect(gpuNucleus.gpuResident).toBe(false);
    expect(gpuNucleus.tokens).toEqual(
      (await generate(new CpuDecoder(config, weights), prompt, nucleus)).tokens,
    );
    expect(argmax(await decoder.prefill(prompt))).toBe(cpu.tokens[0]);
    decoder.destroy();
  },
});
