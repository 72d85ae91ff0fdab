import { expect } from "expect";
import { realModelShape, runPrecisionAxis } from "../bench/precision.ts";
import { precisionChart, precisionMarkdown } from "../bench/report/precision.ts";
import { makeConfig } from "../model/mod.ts";
import type { PrecisionCell } from "../bench/precision.ts";

Deno.test("the precision axis measures every weight x KV pair with bytes and accuracy columns", async () => {
  const config = makeConfig({
    dim: 64,
    hiddenDim: 64,
    nLayers: 1,
    nHeads: 2,
    nKvHeads: 1,
    vocabSize: 32,
    maxSeqLen: 80,
    sharedClassifier: false,
  });
  const cells = await runPrecisionAxis({
    shapes: [{ name: "tiny", config }],
    backends: ["cpu"],
    quick: false,
    progress: () => {},
  });
  expect(cells).toHaveLength(12);
  const cell = (weights: string, kv: string) =>
    cells.find((c) => c.weights === weights && c.kv === kv)!;
  const base = cell("f32", "f32");
  expect([base.speedup, base.nmse, base.sameTop1, base.bytesRatio]).toEqual([1, 0, 1, 1]);
  expect(base.kl).toEqual({ mean: 0, low: 0, high: 0 });
  // Random weights along seeded tokens: no perplexity (it would mean nothing).
  expect(cells.filter((c) => c.perplexity !== undefined || c.f32Perplexity !== undefined))
    .toEqual([]);
  expect(base.accuracyPositions).toBe(32);
  // Bytes by hand: q4_0 matrices at 18/32 bytes per weight, f32 norms; KV at 34/32 in q8_0.
  const matrices = 2 * 32 * 64 + 2 * 64 * 64 + 2 * 32 * 64 + 3 * 64 * 64; // table x2, wq wo, wk wv, ffn
  const norms = 3 * 64 * 4;
  expect(cell("q4_0", "q8_0").weightBytes).toBe(matrices * 18 / 32 + norms);
  expect(cell("q4_0", "q8_0").kvBytesPerPosition).toBe(2 * 32 * 34 / 32);
  // KL and NMSE scale with the square of the step: Q4_0 over Q8_0 ≈ (127/8)² ≈ 252.
  for (const measure of [(c: PrecisionCell) => c.kl.mean, (c: PrecisionCell) => c.nmse]) {
    expect(measure(cell("q4_0", "f32"))).toBeGreaterThan(measure(cell("q8_0", "f32")) * 30);
    expect(measure(cell("q8_0", "f32"))).toBeGreaterThan(measure(cell("f16", "f32")) * 30);
  }
  expect(cell("q4_0", "f32").kl.low).toBeGreaterThan(cell("q8_0", "f32").kl.high);
  expect(cell("q4_0", "f32").klMax).toBeGreaterThanOrEqual(cell("q4_0", "f32").klP99);
  for (const c of cells) {
    expect(c.msPerToken).toBeGreaterThan(0);
    expect(c.spread![0]).toBeLessThanOrEqual(c.msPerToken!);
    expect(c.bytesRatio).toBeCloseTo(base.bytesPerToken / c.bytesPerToken, 10);
  }
  const table = precisionMarkdown(cells).trim().split("\n");
  expect(table).toHaveLength(14);
  expect(table[2]).toMatch(
    /^\| tiny \| cpu \| f32 \| f32 \| [\d.]+ \([\d.]+–[\d.]+\) \| 1\.00x \|.* \| 0 \[0, 0\] \| 0 \| 0 \| 1\.000 \| 0 \| 0 \| {2}\|$/,
  );
  expect(table[0]).toMatch(/\| mean KL \[95% CI\] \| KL p99 \| KL max \| same top-1 \|/);
  expect(table[0]).not.toMatch(/perplexity ratio/);
  const svg = precisionChart(cells);
  expect(svg.startsWith("<svg")).toBe(true);
  // points, legend (7 weight formats, 3 KV formats), background
  expect(svg.match(/<(circle|rect|path) /g)!.length).toBe(12 + 7 + 3 + 1);
});

Deno.test("--quick runs four precision pairs on the first random shape and the real model", async () => {
  const config = makeConfig({
    dim: 32,
    hiddenDim: 32,
    nLayers: 1,
    nHeads: 1,
    nKvHeads: 1,
    vocabSize: 16,
    maxSeqLen: 60,
  });
  const cells = await runPrecisionAxis({
    shapes: [{ name: "tiny", config }, { name: "left out", config }, await realModelShape()],
    backends: ["cpu"],
    quick: true,
    progress: () => {},
    readGbPerS: { cpu: 2 },
  });
  // the read rate over the ceiling: bytes per token / (ms per token · 1e6) / 2 GB/s
  for (const c of cells) {
    expect(c.readCeilingFraction).toBeCloseTo(c.bytesPerToken / (c.msPerToken! * 1e6) / 2, 12);
  }
  expect(precisionMarkdown(cells)).toContain("| read ceiling |");
  expect(cells.map((c) => `${c.shape} ${c.weights}/${c.kv} at ${c.context}`)).toEqual([
    "tiny f32/f32 at 16",
    "tiny f16/f16 at 16",
    "tiny q8_0/q8_0 at 16",
    "tiny q4_0/q8_0 at 16",
    "stories260K.bin f32/f32 at 16",
    "stories260K.bin f16/f16 at 16",
    "stories260K.bin q8_0/q8_0 at 16",
    "stories260K.bin q4_0/q8_0 at 16",
  ]);
  // The real model over the whole shipped text, with the perplexity beside f32's
  // (tests/accuracy_model_test.ts measured f32 3.2272, Q4_0 weights with a Q8_0 cache 3.614 with
  // float activations, 3.612 over Q8 activations).
  const real = cells.filter((c) => c.shape === "stories260K.bin");
  expect(real.map((c) => c.accuracyPositions)).toEqual([367, 367, 367, 367]);
  expect(real.map((c) => c.f32Perplexity!.toFixed(4))).toEqual(Array(4).fill("3.2272"));
  expect(real[0].perplexity).toBe(real[0].f32Perplexity);
  expect(real[3].perplexity).toBeCloseTo(3.6116, 3);
  expect(real[3].kl.low).toBeGreaterThan(real[2].kl.high);
  const table = precisionMarkdown(cells).trim().split("\n");
  expect(table[6]).toMatch(
    /^\| stories260K\.bin \| cpu \| f32 \| f32 \|.* \| 3\.2272 \(3\.2272\) \|$/,
  );
  expect(table[9]).toMatch(
    /^\| stories260K\.bin \| cpu \| q4_0 \| q8_0 \|.* \| 3\.6116 \(3\.2272\) \|$/,
  );
});

Deno.test("the K-quants join the precision axis where rows are whole super-blocks, with their bytes", async () => {
  const config = makeConfig({
    dim: 256,
    hiddenDim: 256,
    nLayers: 1,
    nHeads: 2,
    nKvHeads: 1,
    vocabSize: 32,
    maxSeqLen: 80,
    sharedClassifier: false,
  });
  const cells = await runPrecisionAxis({
    shapes: [{ name: "k", config }],
    backends: ["cpu"],
    quick: true,
    progress: () => {},
  });
  expect(cells.map((c) => `${c.weights}/${c.kv}`)).toEqual([
    "f32/f32",
    "f16/f16",
    "q8_0/q8_0",
    "q4_0/q8_0",
    "q4_k/f32",
  ]);
  // Bytes by hand: 144 bytes per 256 weights; tables 2x32x256, wq wo 256x256, wk wv 128x256,
  // ffn 3x256x256; norms f32.
  const matrices = 2 * 32 * 256 + 2 * 256 * 256 + 2 * 128 * 256 + 3 * 256 * 256;
  const q4k = cells[4];
  expect(q4k.weightBytes).toBe(matrices * 144 / 256 + 3 * 256 * 4);
  // Q4_K (a scale and a min per 32 values) is more accurate than Q4_0 at the same 4.5 bits.
  expect(q4k.nmse).toBeGreaterThan(0);
  expect(q4k.nmse).toBeLessThan(cells[3].nmse);
  const full = await runPrecisionAxis({
    shapes: [{ name: "k", config }],
    backends: ["cpu"],
    quick: false,
    progress: () => {},
  });
  expect(full).toHaveLength(4 * 3 + 3); // the K-quants with the f32 KV cache only
  const nmse = (w: string) => full.find((c) => c.weights === w && c.kv === "f32")!.nmse;
  expect(nmse("q4_k")).toBeGreaterThan(nmse("q5_k") * 2);
  expect(nmse("q5_k")).toBeGreaterThan(nmse("q6_k") * 2);
  expect(nmse("q6_k")).toBeGreaterThan(nmse("q8_0"));
});
