import { expect } from "expect";
import { realModelShape, runPrecisionAxis } from "../bench/precision.ts";
import { targetVerdicts } from "../bench/precision_cells.ts";
import {
  formatPrecisionMarkdown,
  precisionChart,
  precisionMarkdown,
  precisionTargetsMarkdown,
} from "../bench/report/precision.ts";
import { precisionShapes } from "../bench/main.ts";
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
  // each weight format with the f32 cache, the f16 and Q8_0 caches beside f32 weights, the Q8_0
  // cache beside Q8_0 and Q4_0 weights
  expect(cells.map((c) => `${c.weights}/${c.kv}`)).toEqual([
    "f32/f32",
    "f32/f16",
    "f32/q8_0",
    "f16/f32",
    "q8_0/f32",
    "q8_0/q8_0",
    "q4_0/f32",
    "q4_0/q8_0",
  ]);
  const cell = (weights: string, kv: string) =>
    cells.find((c) => c.weights === weights && c.kv === kv)!;
  const base = cell("f32", "f32");
  expect([base.speedup, base.nmse, base.sameTop1, base.bytesRatio]).toEqual([1, 0, 1, 1]);
  expect(base.kl).toEqual({ mean: 0, low: 0, high: 0 });
  // Random weights along seeded tokens: no perplexity (it would mean nothing).
  expect(cells.filter((c) => c.perplexity !== undefined || c.f32Perplexity !== undefined))
    .toEqual([]);
  // 200 positions where the context allows (maxSeqLen 80: 79), the steps timed from 40
  expect(base.accuracyPositions).toBe(79);
  expect(base.context).toBe(40);
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
    // five interleaved samples; up to five more for a target's pairs and f32/f32 where noisy
    const judged = c.kv === "f32" && ["f32", "q8_0", "q4_0"].includes(c.weights);
    if (judged) {
      expect(c.samples!.length).toBeGreaterThanOrEqual(5);
      expect(c.samples!.length).toBeLessThanOrEqual(10);
    } else expect(c.samples).toHaveLength(5);
    expect(c.bytesRatio).toBeCloseTo(base.bytesPerToken / c.bytesPerToken, 10);
    // every speedup but f32's own with its bootstrap interval around the ratio of medians
    if (c === base) continue;
    const [lo, hi] = c.speedupInterval!;
    expect(lo).toBeLessThanOrEqual(c.speedup!);
    expect(hi).toBeGreaterThanOrEqual(c.speedup!);
    expect(c.speedup).toBeCloseTo(base.msPerToken! / c.msPerToken!, 12);
  }
  expect(base.speedupInterval).toBeUndefined();
  const table = precisionMarkdown(cells).trim().split("\n");
  expect(table).toHaveLength(10);
  expect(table[2]).toMatch(
    /^\| tiny \| cpu \| f32 \| f32 \| [\d.]+ \([\d.]+–[\d.]+\) \| 1\.00x \|.* \| 0 \[0, 0\] \| 0 \| 0 \| 1\.000 \| 0 \| 0 \| {2}\|$/,
  );
  expect(table[0]).toMatch(/\| mean KL \[95% CI\] \| KL p99 \| KL max \| same top-1 \|/);
  expect(table[0]).not.toMatch(/perplexity ratio/);
  const svg = precisionChart(cells);
  expect(svg.startsWith("<svg")).toBe(true);
  // points, legend (7 weight formats, 3 KV formats), background
  expect(svg.match(/<(circle|rect|path) /g)!.length).toBe(8 + 7 + 3 + 1);
});

Deno.test("--quick runs the real model only, five pairs", async () => {
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
    dispatchUs: { cpu: 1000 },
  });
  // the read rate over the ceiling: bytes per token / (ms per token · 1e6) / 2 GB/s; the terms:
  // bytes at 2 GB/s, no dispatches on the CPU, the rest of the measured time
  for (const c of cells) {
    expect(c.readCeilingFraction).toBeCloseTo(c.bytesPerToken / (c.msPerToken! * 1e6) / 2, 12);
    expect(c.terms!.bytes).toBeCloseTo(c.bytesPerToken / 2e6, 12);
    expect(c.terms!.dispatches).toBe(0);
    expect(c.terms!.rest).toBeCloseTo(c.msPerToken! - c.terms!.bytes, 12);
    expect(c.samples!.length).toBe(3); // --quick: no extra rounds for noise
  }
  expect(precisionMarkdown(cells)).toContain("| read ceiling |");
  // the random shapes are left out; Q4_K is skipped (stories260K's rows of 64 values are not
  // whole super-blocks)
  expect(cells.map((c) => `${c.shape} ${c.weights}/${c.kv} at ${c.context}`)).toEqual([
    "stories260K.bin f32/f32 at 16",
    "stories260K.bin f16/f16 at 16",
    "stories260K.bin q8_0/f32 at 16",
    "stories260K.bin q8_0/q8_0 at 16",
    "stories260K.bin q4_0/f32 at 16",
  ]);
  // The real model over the whole shipped text, with the perplexity beside f32's
  // (tests/accuracy_model_test.ts measured f32 3.2272; Q4_0 weights over Q8 activations with
  // the f32 cache give 3.5896).
  const real = cells.filter((c) => c.shape === "stories260K.bin");
  expect(real.map((c) => c.accuracyPositions)).toEqual(Array(5).fill(367));
  expect(real.map((c) => c.f32Perplexity!.toFixed(4))).toEqual(Array(5).fill("3.2272"));
  expect(real[0].perplexity).toBe(real[0].f32Perplexity);
  expect(real[4].perplexity).toBeCloseTo(3.5896, 3);
  expect(real[4].kl.low).toBeGreaterThan(real[2].kl.high);
  const table = precisionMarkdown(cells).trim().split("\n");
  expect(table[2]).toMatch(
    /^\| stories260K\.bin \| cpu \| f32 \| f32 \|.* \| 3\.2272 \(3\.2272\) \|$/,
  );
  expect(table[6]).toMatch(
    /^\| stories260K\.bin \| cpu \| q4_0 \| f32 \|.* \| 3\.5896 \(3\.2272\) \|$/,
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
    shapes: [{ name: "k", config, pairs: ["f32/f32", "q8_0/f32", "q4_0/f32", "q4_k/f32"] }],
    backends: ["cpu"],
    quick: true,
    progress: () => {},
  });
  expect(cells.map((c) => `${c.weights}/${c.kv}`)).toEqual([
    "f32/f32",
    "q8_0/f32",
    "q4_0/f32",
    "q4_k/f32",
  ]);
  // Bytes by hand: 144 bytes per 256 weights; tables 2x32x256, wq wo 256x256, wk wv 128x256,
  // ffn 3x256x256; norms f32.
  const matrices = 2 * 32 * 256 + 2 * 256 * 256 + 2 * 128 * 256 + 3 * 256 * 256;
  const q4k = cells[3];
  expect(q4k.weightBytes).toBe(matrices * 144 / 256 + 3 * 256 * 4);
  // Q4_K (a scale and a min per 32 values) is more accurate than Q4_0 at the same 4.5 bits.
  expect(q4k.nmse).toBeGreaterThan(0);
  expect(q4k.nmse).toBeLessThan(cells[2].nmse);
  const full = await runPrecisionAxis({
    shapes: [{ name: "k", config }],
    backends: ["cpu"],
    quick: false,
    progress: () => {},
  });
  expect(full).toHaveLength(8 + 3); // the K-quants with the f32 KV cache only
  // a shape timed on WebGPU only is left out of a CPU-only run (no weights drawn for it)
  expect(
    await runPrecisionAxis({
      shapes: [{ name: "gpu only", config, backends: ["webgpu"] }],
      backends: ["cpu"],
      quick: false,
      progress: () => {},
    }),
  ).toEqual([]);
  const nmse = (w: string) => full.find((c) => c.weights === w && c.kv === "f32")!.nmse;
  expect(nmse("q4_k")).toBeGreaterThan(nmse("q5_k") * 2);
  expect(nmse("q5_k")).toBeGreaterThan(nmse("q6_k") * 2);
  expect(nmse("q6_k")).toBeGreaterThan(nmse("q8_0"));
});

/** A measured cell by hand: only what the targets read. */
function handCell(
  backend: "cpu" | "webgpu",
  weights: string,
  interval: [number, number] | undefined,
  terms: { bytes: number; dispatches: number; rest: number },
): PrecisionCell {
  const ms = terms.bytes + terms.dispatches + terms.rest;
  return {
    shape: "s",
    backend,
    weights: weights as PrecisionCell["weights"],
    kv: "f32",
    context: 16,
    msPerToken: ms,
    samples: [ms, ms, ms],
    spread: [ms, ms],
    weightBytes: 1,
    kvBytesPerPosition: 1,
    bytesPerToken: 1,
    bytesRatio: 1,
    speedup: interval ? (interval[0] + interval[1]) / 2 : 1,
    ...(interval ? { speedupInterval: interval } : {}),
    terms,
    accuracyPositions: 1,
    kl: { mean: 0, low: 0, high: 0 },
    klP99: 0,
    klMax: 0,
    sameTop1: 1,
    topDeltaP: 0,
    nmse: 0,
  };
}

Deno.test("the targets: met only above the target's interval, and the term that holds one back", () => {
  const f32 = { bytes: 6, dispatches: 2, rest: 2 };
  const cells = [
    handCell("webgpu", "f32", undefined, f32),
    // bytes shrank 3.75x, dispatches did not, dequantization added 2.5 ms: 1.3x needs each term
    // at most f32's / 1.3 (bytes 4.6, dispatches 1.5, rest 1.5); the rest exceeds it most
    handCell("webgpu", "q8_0", [1.16, 1.28], { bytes: 1.6, dispatches: 2, rest: 4.5 }),
    // met: the interval's low end at the target
    handCell("webgpu", "q4_0", [1.5, 1.9], { bytes: 0.9, dispatches: 2, rest: 2.4 }),
    handCell("cpu", "f32", undefined, { bytes: 5, dispatches: 0, rest: 5 }),
    // the CPU's target is 1x: an interval across it is not resolved
    handCell("cpu", "q8_0", [0.9, 1.2], { bytes: 1.4, dispatches: 0, rest: 9 }),
  ];
  const verdicts = targetVerdicts(cells);
  expect(verdicts.map((v) => [v.target.backend, v.target.weights, v.verdict, v.heldBackBy]))
    .toEqual([
      ["webgpu", "q8_0", "missed", "rest"],
      ["webgpu", "q4_0", "met", undefined],
      ["cpu", "q8_0", "not resolved", "rest"],
    ]);
  expect(verdicts.map((v) => v.fasterThanF32)).toEqual([true, true, false]);
  // an interval across the target whose median meets it: not resolved, and no term to blame
  const close = targetVerdicts([
    handCell("cpu", "f32", undefined, { bytes: 5, dispatches: 0, rest: 5 }),
    handCell("cpu", "q8_0", [0.9, 1.3], { bytes: 1.4, dispatches: 0, rest: 7 }),
  ]);
  expect(close.map((v) => [v.verdict, v.heldBackBy])).toEqual([["not resolved", undefined]]);
  // a step whose dispatches did not shrink and whose arithmetic did: dispatches hold it back
  const dispatchBound = targetVerdicts([
    handCell("webgpu", "f32", undefined, { bytes: 2, dispatches: 6, rest: 2 }),
    handCell("webgpu", "q8_0", [1.1, 1.2], { bytes: 0.5, dispatches: 6, rest: 1.6 }),
  ]);
  expect(dispatchBound.map((v) => v.heldBackBy)).toEqual(["dispatches"]);
  // no f32/f32 beside it: nothing to judge
  expect(targetVerdicts(cells.slice(1, 3))).toEqual([]);
  const table = precisionTargetsMarkdown(cells).trim().split("\n");
  expect(table).toHaveLength(2 + 3);
  expect(table[2]).toBe(
    "| s | webgpu | q8_0 | >= 1.3x | 1.22x [1.16–1.28] | missed | yes | 1.60 + 2.00 + 4.50 (6.00 + 2.00 + 2.00) | arithmetic (dequantization) and the rest |",
  );
  expect(table[3]).toMatch(
    /^\| s \| webgpu \| q4_0 \| >= 1\.5x \| 1\.70x \[1\.50–1\.90\] \| met \| yes \|.*\| {2}\|$/,
  );
  const md = formatPrecisionMarkdown(cells);
  expect(md).toContain("## Targets: quantized weights against f32 on the same backend");
  expect(md.indexOf("## Targets")).toBeLessThan(md.indexOf("## Every pair"));
});

Deno.test("a full run's precision shapes: the first with every pair, the others and TinyLlama's widths with the weight formats", () => {
  const shapes = precisionShapes(["attention-heavy", "stories15M"], false);
  expect(shapes.map((s) => s.name)).toEqual([
    "attention-heavy",
    "stories15M",
    "TinyLlama-1.1B (2 of 22 layers)",
  ]);
  expect(shapes[0].pairs).toBeUndefined();
  expect(shapes[1].pairs).toEqual([
    "f32/f32",
    "f16/f32",
    "q8_0/f32",
    "q4_0/f32",
    "q6_k/f32",
    "q5_k/f32",
    "q4_k/f32",
  ]);
  const tiny = shapes[2];
  expect([tiny.config.dim, tiny.config.hiddenDim, tiny.config.nLayers, tiny.config.vocabSize])
    .toEqual([2048, 5632, 2, 32000]);
  expect([tiny.config.nHeads, tiny.config.nKvHeads]).toEqual([32, 4]);
  expect(tiny.pairs).toEqual(["f32/f32", "q8_0/f32", "q4_0/f32"]);
  expect(tiny.backends).toEqual(["webgpu"]);
  // --precision-only: every pair everywhere
  expect(precisionShapes(["stories15M"], true).map((s) => s.pairs)).toEqual([undefined, undefined]);
});
