import { expect } from "expect";
import {
  type BatchRow,
  CpuBatchDecoder,
  generateBatch,
  GpuBatchDecoder,
  type KvLayout,
  randomWeights,
} from "../model/mod.ts";
import { compare } from "../reference/mod.ts";
import { tinyConfig } from "./_config.ts";
import { gpuTest } from "./_gpu.ts";

function model(nKvHeads: number, slidingWindow?: number) {
  const config = tinyConfig({
    dim: 64,
    hiddenDim: 96,
    nLayers: 2,
    nHeads: 8,
    nKvHeads,
    vocabSize: 64,
    maxSeqLen: 96,
    slidingWindow,
  });
  return { config, weights: randomWeights(config, 30 + nKvHeads) };
}

const CASES: [string, number, KvLayout, number | undefined][] = [
  ["MHA", 8, "contiguous", undefined],
  ["GQA", 2, "paged", undefined],
  ["MQA", 1, "paged", undefined],
  ["GQA", 2, "sliding", 9],
  ["GQA", 2, "sliding", 4], // the 6-token prompt outruns the window within one step
  ["MQA", 1, "paged", 9],
];

for (const [name, nKvHeads, layout, window] of CASES) {
  gpuTest(
    `${name} batched WebGPU decoding (${layout}${
      window ? `, window ${window}` : ""
    }) gives the CPU's logits, step for step`,
    async (gpu) => {
      const { config, weights } = model(nKvHeads, window);
      const options = { layout, blockSize: 8, maxSequences: 3, maxRows: 16 };
      const cpu = new CpuBatchDecoder(config, weights, options);
      const gpuDecoder = await GpuBatchDecoder.create(gpu, config, weights, options);
      // A prompt of 6 and one of 2 prefilled together, then ragged decode steps; sequence 1
      // ends after step 5 and a third sequence joins in its blocks.
      const steps: BatchRow[][] = [
        [...[3, 9, 1, 44, 2, 7].map((token, pos) => ({ seq: 0, token, pos })), {
          seq: 1,
          token: 5,
          pos: 0,
        }, { seq: 1, token: 6, pos: 1 }],
      ];
      for (let s = 0; s < 24; s++) {
        const rows: BatchRow[] = [{ seq: 0, token: (s * 7) % 64, pos: 6 + s }];
        if (s < 5) rows.push({ seq: 1, token: (s * 3 + 1) % 64, pos: 2 + s });
        if (s === 6) rows.push(...[8, 8, 8].map((token, pos) => ({ seq: 2, token, pos })));
        if (s > 6) rows.push({ seq: 2, token: s % 64, pos: 3 + s - 7 });
        steps.push(rows);
      }
      for (const [i, rows] of steps.entries()) {
        const expected = cpu.stepSync(rows);
        const actual = await gpuDecoder.step(rows);
        expect(actual.length).toBe(expected.length);
        actual.forEach((logits, j) => {
          const stats = compare(logits, expected[j]);
          expect(stats.firstNonFinite).toBe(-1);
          expect(stats.nmse).toBeLessThan(1e-9);
        });
        if (i === 5) {
          cpu.release(1);
          gpuDecoder.release(1);
        }
      }
      expect(gpuDecoder.kvUsedBytes).toBe(cpu.kvUsedBytes);
      gpuDecoder.destroy();
    },
  );
}

gpuTest("continuous batching on WebGPU picks the CPU's tokens for every prompt", async (gpu) => {
  const { config, weights } = model(2);
  const prompts = [[1, 5, 9], [7], [4, 4, 8, 11], [6, 2], [3, 3, 3, 3, 3]];
  const options = { layout: "paged" as const, blockSize: 4, numBlocks: 12, maxRows: 16 };
  const run = (decoder: CpuBatchDecoder | GpuBatchDecoder) =>
    generateBatch(decoder, prompts, { steps: 10, temperature: 0.8, seed: 3, maxBatch: 3 });
  const gpuDecoder = await GpuBatchDecoder.create(gpu, config, weights, options);
  const [want, got] = [
    await run(new CpuBatchDecoder(config, weights, options)),
    await run(gpuDecoder),
  ];
  expect(got.tokens).toEqual(want.tokens);
  expect(got.rowsPerStep).toEqual(want.rowsPerStep);
  gpuDecoder.destroy();
});

gpuTest(
  "WebGPU batched decoder refuses steps past its rows and its pool, naming them",
  async (gpu) => {
    const { config, weights } = model(2);
    const decoder = await GpuBatchDecoder.create(gpu, config, weights, {
      layout: "paged",
      blockSize: 8,
      numBlocks: 2,
      maxRows: 4,
    });
    const prompt = (n: number) =>
      Array.from({ length: n }, (_, pos) => ({ seq: 0, token: 1, pos }));
    await expect(decoder.step(prompt(5))).rejects.toThrow(
      "step: expected at most maxRows 4 rows, got 5",
    );
    await decoder.step(prompt(4));
    await decoder.step([{ seq: 1, token: 1, pos: 0 }]);
    await expect(decoder.step([{ seq: 2, token: 1, pos: 0 }])).rejects.toThrow(
      "KV cache (paged): sequence 2 needs 1 more blocks of 8 positions for length 1, got 0 free of 2",
    );
    decoder.destroy();
  },
);

for (const layout of ["contiguous", "paged", "sliding"] as const) {
  gpuTest(`primed ${layout} caches decode alike on WebGPU and the CPU`, async (gpu) => {
    const { config, weights } = model(2, layout === "sliding" ? 16 : undefined);
    const options = { layout, blockSize: 8, maxSequences: 2, maxRows: 4 };
    const cpu = new CpuBatchDecoder(config, weights, options);
    const gpuDecoder = await GpuBatchDecoder.create(gpu, config, weights, options);
    for (const decoder of [cpu, gpuDecoder]) {
      decoder.prime(0, 41, 9);
      decoder.prime(1, 5, 10);
    }
    expect(() => cpu.prime(0, 3)).toThrow(
      "prime seq: expected a new sequence id, got live sequence 0",
    );
    const rows = [{ seq: 0, token: 3, pos: 41 }, { seq: 1, token: 4, pos: 5 }];
    const [want, got] = [cpu.stepSync(rows), await gpuDecoder.step(rows)];
    got.forEach((logits, i) => expect(compare(logits, want[i]).nmse).toBeLessThan(1e-9));
    expect(gpuDecoder.kvUsedBytes).toBe(cpu.kvUsedBytes);
    gpuDecoder.destroy();
  });
}
