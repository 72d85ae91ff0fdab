import { expect } from "expect";
import { CpuDecoder, GpuDecoder, makeConfig, randomWeights, storeWeights } from "../model/mod.ts";
import { attentionKernel } from "../gpu/attention/attention.ts";
import { kvAppendKernel, kvCacheWords, packKvCache } from "../gpu/kv_cache.ts";
import { stateWords } from "../gpu/state.ts";
import { cachedAttention, compare, KvCache, Rng } from "../reference/mod.ts";
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

for (const kvCache of ["f16", "q8_0"] as const) {
  gpuTest(
    `the WebGPU decoder with a ${kvCache} KV cache matches the CPU reference's`,
    async (gpu) => {
      const weights = randomWeights(config, 9);
      const cpu = new CpuDecoder(config, weights, { kvCache });
      const decoder = await GpuDecoder.create(gpu, config, weights, { kvCache });
      try {
        expect(decoder.kvCacheBytes).toBe(
          kvCache === "f16" ? cpu.kvCacheBytes : cpu.kvCacheBytes / 34 * 36, // scales in f32 words
        );
        const prompt = [1, 7, 30, 2, 11];
        expect(compare(await decoder.prefill(prompt), await cpu.prefill(prompt)).nmse)
          .toBeLessThan(1e-8);
        const step = compare(await decoder.forward(4, 5), await cpu.forward(4, 5));
        expect(step.nmse).toBeLessThan(1e-8);
      } finally {
        decoder.destroy();
      }
    },
  );

  gpuTest(
    `KV append in ${kvCache} stores what the reference KvCache stores; attention reads it`,
    async (gpu) => {
      const [nHeads, nKvHeads, headDim, maxSeqLen, rows, pos] = [4, 2, 32, 12, 3, 9];
      const kvDim = nKvHeads * headDim;
      const rng = new Rng(21);
      const k = rng.uniformArray(rows * kvDim, -3, 3);
      const v = rng.uniformArray(rows * kvDim);
      // The reference: a KvCache in the format, written row by row.
      const reference = new KvCache({ nLayers: 1, maxSeqLen, nKvHeads, headDim }, kvCache);
      for (let r = 0; r < rows; r++) {
        const row = (x: Float32Array) => x.subarray(r * kvDim, (r + 1) * kvDim);
        reference.write(0, pos + r, row(k), row(v));
      }
      const words = kvCacheWords(kvCache, maxSeqLen, kvDim);
      const [keyCache, valueCache] = [gpu.createBuffer(words * 4), gpu.createBuffer(words * 4)];
      const state = gpu.upload(stateWords({ pos }));
      const append = await kvAppendKernel(gpu, { rows, kvDim, maxSeqLen, format: kvCache });
      await gpu.submit(
        append.bind({ k: gpu.upload(k), v: gpu.upload(v), keyCache, valueCache, state }),
      );
      const expectedKeys = packKvCache(reference.keys[0], kvCache, kvDim);
      const gotKeys = await gpu.readUint32(keyCache);
      // f16: bit for bit. q8_0: the GPU's 1/d may differ in its last bit, so a quant on a
      // rounding tie may land one step away; the scales must match exactly.
      if (kvCache === "f16") expect(gotKeys).toEqual(expectedKeys);
      else {
        const quants = maxSeqLen * kvDim;
        const [got, want] = [
          new Int8Array(gotKeys.buffer, 0, quants),
          new Int8Array(expectedKeys.buffer, 0, quants),
        ];
        for (let i = 0; i < quants; i++) expect(Math.abs(got[i] - want[i])).toBeLessThanOrEqual(1);
        expect(gotKeys.subarray(quants / 4)).toEqual(expectedKeys.subarray(quants / 4));
      }
      // Attention over caches packed from the reference equals attention over its values.
      const shape = { nHeads, nKvHeads, headDim };
      const q = rng.uniformArray(rows * nHeads * headDim);
      const out = gpu.createBuffer(rows * nHeads * headDim * 4);
      const attend = await attentionKernel(gpu, { rows, ...shape, kvFormat: kvCache, maxSeqLen });
      await gpu.submit(attend.bind({
        q: gpu.upload(q),
        keyCache: gpu.upload(packKvCache(reference.keys[0], kvCache, kvDim)),
        valueCache: gpu.upload(packKvCache(reference.values[0], kvCache, kvDim)),
        state,
        out,
      }));
      const expected = cachedAttention(q, reference.keys[0], reference.values[0], pos, rows, shape);
      expect(compare(await gpu.readFloat32(out), expected).nmse).toBeLessThan(1e-10);
    },
  );
}
