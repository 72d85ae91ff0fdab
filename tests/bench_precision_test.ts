import { expect } from "expect";
import { runPrecisionAxis } from "../bench/precision.ts";
import { precisionChart, precisionMarkdown } from "../bench/report/precision.ts";
import { makeConfig } from "../model/mod.ts";

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
  expect([base.speedup, base.nmse, base.top1, base.bytesRatio]).toEqual([1, 0, 1, 1]);
  // Bytes by hand: q4_0 matrices at 18/32 bytes per weight, f32 norms; KV at 34/32 in q8_0.
  const matrices = 2 * 32 * 64 + 2 * 64 * 64 + 2 * 32 * 64 + 3 * 64 * 64; // table x2, wq wo, wk wv, ffn
  const norms = 3 * 64 * 4;
  expect(cell("q4_0", "q8_0").weightBytes).toBe(matrices * 18 / 32 + norms);
  expect(cell("q4_0", "q8_0").kvBytesPerPosition).toBe(2 * 32 * 34 / 32);
  expect(cell("q4_0", "f32").nmse).toBeGreaterThan(cell("q8_0", "f32").nmse * 30);
  expect(cell("q8_0", "f32").nmse).toBeGreaterThan(cell("f16", "f32").nmse * 30);
  for (const c of cells) {
    expect(c.msPerToken).toBeGreaterThan(0);
    expect(c.spread![0]).toBeLessThanOrEqual(c.msPerToken!);
    expect(c.bytesRatio).toBeCloseTo(base.bytesPerToken / c.bytesPerToken, 10);
  }
  const table = precisionMarkdown(cells).trim().split("\n");
  expect(table).toHaveLength(14);
  expect(table[2]).toMatch(
    /^\| tiny \| cpu \| f32 \| f32 \| [\d.]+ \([\d.]+–[\d.]+\) \| 1\.00x \|/,
  );
  const svg = precisionChart(cells);
  expect(svg.startsWith("<svg")).toBe(true);
  expect(svg.match(/<(circle|rect|path) /g)!.length).toBe(12 + 7 + 1); // points, legend, background
});

Deno.test("--quick runs four precision pairs", async () => {
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
    shapes: [{ name: "tiny", config }, { name: "left out", config }],
    backends: ["cpu"],
    quick: true,
    progress: () => {},
  });
  expect(cells.map((c) => `${c.shape} ${c.weights}/${c.kv} at ${c.context}`)).toEqual([
    "tiny f32/f32 at 16",
    "tiny f16/f16 at 16",
    "tiny q8_0/q8_0 at 16",
    "tiny q4_0/q8_0 at 16",
  ]);
});
