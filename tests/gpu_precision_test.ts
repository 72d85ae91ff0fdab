import { expect } from "expect";
import { CpuDecoder, GpuDecoder, makeConfig, randomWeights, storeWeights } from "../model/mod.ts";
import { compare } from "../reference/mod.ts";
import { gpuTest } from "./_gpu.ts";

const config = makeConfig({
  dim: 64,
  hiddenDim: 72, // w2's rows (72 values) fall back to f16 in the block formats
  nLayers: 2,
  nHeads: 4,
  nKvHeads: 2,
  vocabSize: 40,
  maxSeqLen: 16,
  sharedClassifier: false,
});

for (const format of ["f16", "q8_0", "q4_0"] as const) {
  gpuTest(
    `the WebGPU decoder over ${format} weights matches the CPU reference's logits`,
    async (gpu) => {
      const weights = randomWeights(config, 8);
      const cpu = new CpuDecoder(config, weights, { weights: format });
      const decoder = await GpuDecoder.create(gpu, config, storeWeights(config, weights, format));
      try {
        expect(decoder.weightBytes).toBeLessThan(new CpuDecoder(config, weights).weightBytes);
        const prompt = [1, 7, 30];
        const stats = compare(await decoder.prefill(prompt), await cpu.prefill(prompt));
        expect(stats.nmse).toBeLessThan(1e-9);
        for (const [i, token] of [4, 39].entries()) {
          const pos = prompt.length + i;
          const step = compare(await decoder.forward(token, pos), await cpu.forward(token, pos));
          expect(step.nmse).toBeLessThan(1e-9);
        }
      } finally {
        decoder.destroy();
      }
    },
  );
}

gpuTest(
  "the WebGPU decoder refuses a KV cache format it does not run yet, naming it",
  async (gpu) => {
    const weights = randomWeights(config, 1);
    await expect(GpuDecoder.create(gpu, config, weights, { kvCache: "q8_0" })).rejects.toThrow(
      "GpuDecoder: KV cache q8_0: only an f32 KV cache runs on WebGPU so far",
    );
  },
);
