import { expect } from "expect";
import { CpuDecoder, GpuDecoder, makeConfig, randomWeights, storeWeights } from "../model/mod.ts";
import { attentionKernel } from "../gpu/attention/attention.ts";
import { kvAppendKernel, kvCacheWords, packKvCache } from "../gpu/kv_cache.ts";
import { stateWords } from "../gpu/state.ts";
import { packedBlockRows } from "../gpu/matmul/quant.ts";
import { cachedAttention, compare, K_QUANT_FORMATS, KvCache, Rng } from "../reference/mod.ts";
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
  "packed weights past the binding limit split into row blocks: the CPU reference's logits",
  async (gpu) => {
    // 16 KiB bindings (what the f32 embedding's 64-row blocks need): the 600-row classifier's
    // rows of 64 weights take 128 (f16), 64 (q8_0's quants; scales bind apart) and 32 bytes
    // (q4_0), so it splits in each format (until now packed matrices never split).
    const wide = makeConfig({ ...config, hiddenDim: 96, nLayers: 1, vocabSize: 600 });
    const weights = randomWeights(wide, 10);
    for (const format of ["f16", "q8_0", "q4_0"] as const) {
      const cpu = new CpuDecoder(wide, weights, { weights: format });
      const decoder = await GpuDecoder.create(gpu, wide, storeWeights(wide, weights, format), {
        maxBindingBytes: 16384,
      });
      try {
        const prompt = [1, 7, 599];
        expect(compare(await decoder.prefill(prompt), await cpu.prefill(prompt)).nmse)
          .toBeLessThan(1e-9);
        expect(compare(await decoder.forward(4, 3), await cpu.forward(4, 3)).nmse)
          .toBeLessThan(1e-9);
      } finally {
        decoder.destroy();
      }
    }
  },
);

gpuTest(
  "K-quant weights past the binding limit split into row blocks of whole super-blocks: the CPU reference's logits",
  async (gpu) => {
    // Rows of 256 values, one super-block: under 64 KiB bindings (the f32 embedding's 64-row
    // blocks of 1 KiB rows) the 600-row classifier (86,400, 105,600 and 124,800 bytes in Q4_K,
    // Q5_K, Q6_K) splits into 448 + 152, 320 + 280 and 256 + 256 + 88 rows.
    const kConfig = makeConfig({
      dim: 256,
      hiddenDim: 256,
      nLayers: 1,
      nHeads: 8,
      nKvHeads: 2,
      vocabSize: 600,
      maxSeqLen: 8,
      sharedClassifier: false,
    });
    const weights = randomWeights(kConfig, 11);
    for (const format of K_QUANT_FORMATS) {
      expect(packedBlockRows(format, 600, 256, 65536)).toBe(
        { q4_k: 448, q5_k: 320, q6_k: 256 }[format],
      );
      const stored = storeWeights(kConfig, weights, format);
      const cpu = new CpuDecoder(kConfig, stored);
      const decoder = await GpuDecoder.create(gpu, kConfig, stored, { maxBindingBytes: 65536 });
      try {
        const prompt = [1, 7, 599];
        expect(compare(await decoder.prefill(prompt), await cpu.prefill(prompt)).nmse)
          .toBeLessThan(1e-9);
        expect(compare(await decoder.forward(4, 3), await cpu.forward(4, 3)).nmse)
          .toBeLessThan(1e-9);
      } finally {
        decoder.destroy();
      }
    }
  },
);

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
    `KV append in ${kvCache} stores bit for bit what the reference KvCache stores; attention reads it`,
    async (gpu) => {
      const [nHeads, nKvHeads, headDim, maxSeqLen, rows, pos] = [4, 2, 32, 12, 3, 9];
      const kvDim = nKvHeads * headDim;
      const rng = new Rng(21);
      const k = rng.uniformArray(rows * kvDim, -3, 3);
      const v = rng.uniformArray(rows * kvDim);
      // Rounding ties: 0.49999997 (0x3effffff) plus 0.5 is 1 in f32, so floor(|x| + 0.5) gave ±1
      // where roundf gives 0; 2.5 and 0.5 round away from zero. The scale is 127 / 127 = 1.
      k.set([127, 0.49999997, -0.49999997, 2.5, 0.5, -2.5, -0.5, 126.5], 0);
      // A block whose scale is an f16 subnormal (max 3e-4: d ≈ 2.4e-6 < 2^-14).
      for (let j = 0; j < 32; j++) k[32 + j] = (j % 7 - 3) * 1e-4;
      v.fill(0, kvDim, kvDim + 32); // an all-zero block: d = 0, quants 0
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
      // Both caches, quants (or halves) and scales, bit for bit.
      expect(await gpu.readUint32(keyCache)).toEqual(
        packKvCache(reference.keys[0], kvCache, kvDim),
      );
      expect(await gpu.readUint32(valueCache)).toEqual(
        packKvCache(reference.values[0], kvCache, kvDim),
      );
      if (kvCache === "q8_0") { // the tie block, by hand: [127, 0, 0, 3, 1, -3, -1, 127]
        const quants = new Int8Array((await gpu.readUint32(keyCache)).buffer, pos * kvDim, 8);
        expect(Array.from(quants)).toEqual([127, 0, 0, 3, 1, -3, -1, 127]);
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
