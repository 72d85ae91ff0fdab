import { expect } from "expect";
import { CpuDecoder, GpuDecoder, makeConfig, randomWeights, storeWeights } from "../model/mod.ts";
import { compare } from "../reference/mod.ts";
import { gpuTest } from "./_gpu.ts";

// Every weight format takes the fused decode step: the same dispatches per token, and logits
// that match the CPU reference (which multiplies Q8_0/Q4_0 weights by Q8 activations too).
const config = makeConfig({
  dim: 64,
  hiddenDim: 96,
  nLayers: 2,
  nHeads: 4,
  nKvHeads: 2,
  vocabSize: 40,
  maxSeqLen: 16,
  sharedClassifier: false,
});

gpuTest("the fused decode step runs every weight format with the same dispatches", async (gpu) => {
  const weights = randomWeights(config, 21);
  const counts: Record<string, number> = {};
  for (const format of ["f32", "f16", "q8_0", "q4_0"] as const) {
    const stored = storeWeights(config, weights, format);
    const decoder = await GpuDecoder.create(gpu, config, stored);
    const cpu = new CpuDecoder(config, stored);
    try {
      counts[format] = await decoder.dispatchesPerToken();
      const prompt = [1, 7, 30];
      expect(compare(await decoder.prefill(prompt), await cpu.prefill(prompt)).nmse)
        .toBeLessThan(1e-9);
      const step = compare(await decoder.forward(4, 3), await cpu.forward(4, 3));
      expect(step.nmse).toBeLessThan(1e-9);
    } finally {
      decoder.destroy();
    }
  }
  // embedding, 5 per layer (6 if attention splits), final norm, classifier, token choice
  expect(counts.f16).toBe(counts.f32);
  expect(counts.q8_0).toBe(counts.f32);
  expect(counts.q4_0).toBe(counts.f32);
  expect(counts.f32).toBeLessThanOrEqual(1 + 6 * config.nLayers + 2 + 4);
});

gpuTest(
  "every KV-cache format takes the fused decode step: one KV append per layer more than f32",
  async (gpu) => {
    const weights = randomWeights(config, 22);
    const counts: Record<string, number> = {};
    for (
      const [weightFormat, kvCache] of [["f32", "f32"], ["f32", "f16"], ["q8_0", "q8_0"]] as const
    ) {
      const stored = storeWeights(config, weights, weightFormat);
      const decoder = await GpuDecoder.create(gpu, config, stored, { kvCache });
      const cpu = new CpuDecoder(config, stored, { kvCache });
      try {
        counts[`${weightFormat}/${kvCache}`] = await decoder.dispatchesPerToken();
        // a prefill of 5 rows stages 5 rows of K/V; then two single steps
        const prompt = [1, 7, 30, 2, 11];
        expect(compare(await decoder.prefill(prompt), await cpu.prefill(prompt)).nmse)
          .toBeLessThan(1e-8);
        for (const [i, token] of [4, 39].entries()) {
          const pos = prompt.length + i;
          expect(compare(await decoder.forward(token, pos), await cpu.forward(token, pos)).nmse)
            .toBeLessThan(1e-8);
        }
      } finally {
        decoder.destroy();
      }
    }
    // the unfused step takes 17 per layer: here 6 (or 7 where attention splits)
    expect(counts["f32/f16"]).toBe(counts["f32/f32"] + config.nLayers);
    expect(counts["q8_0/q8_0"]).toBe(counts["f32/f32"] + config.nLayers);
  },
);
