import { expect } from "expect";
import { bootstrapRatio, invertSpread, isNoisy, roundRobin } from "../bench/stats.ts";
import { Rng } from "../reference/random.ts";
import { ablationSentence, decodeFits, fitLine } from "../bench/report/ablation.ts";
import type { AttentionAblation } from "../bench/ablation.ts";
import { summarize } from "../gpu/timing.ts";
import { lastLevelCache, parseCacheSize } from "../bench/machine.ts";
import { parsePeers } from "../bench/main.ts";
import type { DecoderCell } from "../bench/matrix.ts";
import { formatReadmeSection } from "../bench/report/readme.ts";
import {
  type BenchResults,
  computeSpeedups,
  formatRatio,
  formatSpread,
  parseResults,
  RESULTS_SCHEMA,
} from "../bench/report/report.ts";
import { lineChart } from "../bench/report/svg.ts";

Deno.test("summarize: median, quartiles by linear interpolation, min and max", () => {
  expect(summarize([5])).toEqual({ median: 5, min: 5, max: 5, q1: 5, q3: 5, n: 1 });
  // sorted 1 2 3 4: median between 2 and 3, q1 at index 0.75, q3 at 2.25
  expect(summarize([4, 2, 1, 3])).toEqual({
    median: 2.5,
    min: 1,
    max: 4,
    q1: 1.75,
    q3: 3.25,
    n: 4,
  });
  expect(summarize([10, 1, 7, 3, 5]).median).toBe(5); // one outlier does not move it
  expect(() => summarize([])).toThrow("summarize: expected samples, got none");
  expect(() => summarize([1, NaN])).toThrow("summarize: expected finite samples, got NaN");
});

Deno.test("a time spread inverts into a rate spread: min and max swap", () => {
  const rate = invertSpread(summarize([2, 4, 5]), 1000);
  expect(rate.median).toBe(250);
  expect(rate.min).toBe(200);
  expect(rate.max).toBe(500);
});

Deno.test("bootstrap ratio of medians: a hand-checked resampling distribution", () => {
  // The baseline never varies; the variant's two samples resample to medians 1, 1.5, 2 with
  // probabilities 1/4, 1/2, 1/4, so the ratio is 4, 8/3 or 2: the 2.5% and 97.5% quantiles of
  // 2000 draws are 2 and 4 (each end holds ~500 draws), the point estimate 4 / 1.5.
  const r = bootstrapRatio([4, 4, 4, 4], [1, 2]);
  expect(r.ratio).toBeCloseTo(8 / 3, 12);
  expect(r.lo).toBe(2);
  expect(r.hi).toBe(4);
  expect(r).toMatchObject({ confidence: 0.95, resamples: 2000, differs: true });
  // seeded: the same data give the same interval; another seed may not
  expect(bootstrapRatio([4, 4, 4, 4], [1, 2])).toEqual(r);
  // no spread: the interval is the point; a ratio of exactly 1 is no difference
  expect(bootstrapRatio([3, 3, 3], [3, 3])).toMatchObject({ lo: 1, hi: 1, differs: false });
  // one sample on a side gives no interval and claims nothing
  expect(bootstrapRatio([10], [5, 5])).toMatchObject({ ratio: 2, resamples: 0, differs: false });
  // overlapping samples: the interval includes 1
  const close = bootstrapRatio([10, 12, 14, 11, 13], [9, 13, 12, 15, 10]);
  expect(close.lo).toBeLessThan(1);
  expect(close.hi).toBeGreaterThan(1);
  expect(close.differs).toBe(false);
  expect(formatRatio(close)).toMatch(/ \(no difference\)$/);
  expect(
    formatRatio({ ratio: 2.4, lo: 1.67, hi: 3.5, confidence: 0.95, resamples: 9, differs: true }),
  )
    .toBe("2.40x [1.67-3.50]");
  expect(formatSpread(summarize([0.5, 0.25, 1]))).toBe("0.500 [0.250-1.00]");
});

Deno.test("bootstrap intervals cover the true ratio of medians of a known distribution about 95% of the time", () => {
  // Log-normal times: median e^mu, so the true ratio of medians is e^(mu1 - mu2) = e^0.4.
  const rng = new Rng(42);
  const draw = (mu: number) => Array.from({ length: 15 }, () => Math.exp(rng.normal(mu, 0.25)));
  const truth = Math.exp(0.4);
  let covered = 0;
  let differs = 0;
  let nullDiffers = 0;
  const trials = 200;
  for (let t = 0; t < trials; t++) {
    const r = bootstrapRatio(draw(1.4), draw(1), { resamples: 1000, seed: t + 1 });
    if (r.lo <= truth && truth <= r.hi) covered++;
    if (r.differs) differs++;
    // the same distribution on both sides: a difference is a false alarm (~5%)
    if (bootstrapRatio(draw(1), draw(1), { resamples: 1000, seed: t + 1 }).differs) nullDiffers++;
  }
  expect(covered / trials).toBeGreaterThan(0.88);
  expect(covered / trials).toBeLessThan(0.99);
  // a 49% difference, 15 samples a side: the median's standard error is ~0.08 in log per side
  expect(differs / trials).toBeGreaterThan(0.8);
  expect(nullDiffers / trials).toBeLessThan(0.12);
});

Deno.test("round robin rotates the order each round so no variant always runs first", async () => {
  const order: string[] = [];
  const samples = await roundRobin(["a", "b"], 4, (v, rep) => {
    order.push(v);
    return rep;
  });
  expect(order.join("")).toBe("abbaabba");
  expect(samples.get("a")).toEqual([0, 1, 2, 3]);
});

Deno.test("extra rounds go to both sides of a comparison, interleaved", async () => {
  const order: string[] = [];
  const noise: Record<string, number[]> = {
    base: [1, 1, 1, 1],
    noisy: [1, 3, 1, 1],
    other: [1, 1, 1, 1],
  };
  const samples = await roundRobin(
    ["base", "noisy", "other"],
    2,
    (v) => {
      order.push(v);
      return noise[v].shift()!;
    },
    {
      rounds: 1,
      unsettled: (list) => isNoisy(list, 0.25),
      partners: (v) => v === "noisy" ? ["base"] : [],
    },
  );
  // the noisy variant and its baseline get the extra round; the unrelated one does not
  expect(samples.get("base")).toHaveLength(3);
  expect(samples.get("noisy")).toHaveLength(3);
  expect(samples.get("other")).toHaveLength(2);
  expect(order.slice(6).join(",")).toBe("base,noisy"); // rotated by round: both, interleaved
});

Deno.test("extra rounds go to the variants whose samples have not settled", async () => {
  const noise: Record<string, number[]> = { steady: [1, 1, 1, 1, 1], noisy: [1, 3, 1, 1, 1] };
  const samples = await roundRobin(
    ["steady", "noisy"],
    2,
    (v) => noise[v].shift()!,
    { rounds: 3, unsettled: (list) => isNoisy(list, 0.25), partners: () => [] },
  );
  expect(samples.get("steady")).toEqual([1, 1]);
  expect(samples.get("noisy")).toEqual([1, 3, 1, 1, 1]); // stays wide: all 3 extra rounds
  expect(isNoisy([2], 0.25)).toBe(true); // one sample shows no spread yet
});

Deno.test("cache sizes from /sys and the last-level cache", () => {
  expect(parseCacheSize("48K")).toBe(48 * 1024);
  expect(parseCacheSize("32M\n")).toBe(32 * 2 ** 20);
  expect(() => parseCacheSize("big")).toThrow(
    'cache size: expected e.g. "32M" or "48K", got "big"',
  );
  const caches = [
    { level: 1, type: "Data", bytes: 48 << 10 },
    { level: 1, type: "Instruction", bytes: 32 << 10 },
    { level: 2, type: "Unified", bytes: 2 << 20 },
    { level: 3, type: "Unified", bytes: 32 << 20 },
  ];
  expect(lastLevelCache(caches)).toBe(32 << 20);
  expect(lastLevelCache([])).toBe(0);
});

Deno.test("--llama2c takes several labelled programs with their thread counts", () => {
  expect(parsePeers("one=/opt/run,omp=/opt/runomp@4,/usr/bin/run")).toEqual([
    { label: "one", program: "/opt/run", threads: undefined },
    { label: "omp", program: "/opt/runomp", threads: 4 },
    { label: "run", program: "/usr/bin/run", threads: undefined },
  ]);
  expect(() => parsePeers("x=/run@0")).toThrow("--llama2c: expected THREADS >= 1");
});

Deno.test("results: the current schema parses; older and broken files are refused with the reason", () => {
  expect(RESULTS_SCHEMA).toBe(3);
  expect(() => parseResults('{"schema": 1, "cells": []}', "old.json")).toThrow(
    "old.json: schema 1 (one sample per cell, no spread, copy-based roofline) cannot be re-rendered",
  );
  expect(() => parseResults('{"schema": 2, "cells": []}', "two.json")).toThrow(
    "two.json: schema 2 (summaries only, GPU-time headlines",
  );
  expect(() => parseResults('{"schema": 4}', "new.json")).toThrow(
    "new.json: expected results schema 3, got 4",
  );
  expect(() => parseResults("{", "bad.json")).toThrow("bad.json: not JSON");
  expect(() => parseResults('{"schema": 3, "settings": {}}', "part.json")).toThrow(
    'part.json: missing field "machine"',
  );
  const whole = {
    schema: 3,
    settings: {},
    machine: {},
    rooflines: {},
    kernels: [],
    speedups: [],
    checks: [],
    rejected: [],
    skipped: [],
  };
  expect(() => parseResults(JSON.stringify({ ...whole, cells: {} }), "obj.json")).toThrow(
    'obj.json: field "cells": expected an array, got object',
  );
  expect(() =>
    parseResults(JSON.stringify({ ...whole, cells: [{ timing: { wallMs: {} } }] }), "raw.json")
  ).toThrow("raw.json: cells[0].timing.samples.wallMs: expected an array of finite raw samples");
  const ok = { ...whole, cells: [{ timing: { samples: { wallMs: [1, 2] } } }] };
  expect(parseResults(JSON.stringify(ok), "ok.json").cells).toHaveLength(1);
});

function cell(
  cache: "kv-cache" | "recompute",
  attention: string,
  samples: number[],
  cost: { predictedMs: number; flops: number; weights: number; kv: number },
): DecoderCell {
  const ms = summarize(samples);
  return {
    shape: "s",
    backend: "cpu",
    cache,
    attention,
    nHeads: 8,
    nKvHeads: 8,
    phase: "decode",
    context: 64,
    positions: [64, 65],
    meanPosition: 64.5,
    execution: "sequential",
    timing: { wallMs: ms, batch: 1, samples: { wallMs: samples } },
    msPerToken: ms,
    tokensPerSecond: invertSpread(ms, 1000),
    kvBytesPerToken: 0,
    kvBytes: 0,
    weightBytesPerToken: cost.weights,
    kvTrafficPerToken: cost.kv,
    bytesPerToken: cost.weights + cost.kv,
    flopsPerToken: cost.flops,
    dispatchesPerToken: 0,
    gbPerS: ms,
    gflopPerS: ms,
    rooflineFraction: 0,
    predictedMs: cost.predictedMs,
    measuredOverPredicted: 0,
    workingSetBytes: 0,
    fitsInLlc: attention === "MQA",
  };
}

Deno.test("speedups: ratio of medians with its bootstrap interval beside the time model, FLOPs, bytes and K/V bytes", () => {
  const cells = [
    cell("kv-cache", "MHA", [2, 2.2, 1.8], { predictedMs: 2, flops: 10, weights: 300, kv: 100 }),
    cell("recompute", "MHA", [50, 55, 45], { predictedMs: 40, flops: 640, weights: 600, kv: 200 }),
    cell("kv-cache", "MQA", [1.9, 2.1, 2.3], { predictedMs: 1.5, flops: 9, weights: 290, kv: 10 }),
  ];
  const speedups = computeSpeedups(cells);
  expect(speedups).toHaveLength(2);
  const kv = speedups.find((s) => s.comparison === "KV cache vs recompute (MHA)")!;
  expect(kv.measured).toEqual(bootstrapRatio([50, 55, 45], [2, 2.2, 1.8]));
  expect(kv.measured.ratio).toBe(25);
  // every resampled ratio lies between the extremes the samples allow
  expect(kv.measured.lo).toBeGreaterThanOrEqual(45 / 2.2);
  expect(kv.measured.hi).toBeLessThanOrEqual(55 / 1.8);
  expect(kv.measured.differs).toBe(true);
  expect(kv.predicted).toBe(20);
  expect(kv.flopsRatio).toBe(64);
  expect(kv.meanPosition).toBe(64.5);
  const mqa = speedups.find((s) => s.comparison === "MQA vs MHA")!;
  expect(mqa.measured.ratio).toBeCloseTo(2 / 2.1, 12);
  expect(mqa.measured.differs).toBe(false); // 1.8-2.2 against 1.9-2.3: the interval holds 1
  expect(mqa.predicted).toBeCloseTo(2 / 1.5, 12);
  expect(mqa.bytesRatio).toBeCloseTo(400 / 300, 12);
  expect(mqa.kvBytesRatio).toBe(10);
  expect(mqa.fitsInLlc).toEqual([false, true]);
});

Deno.test("line charts draw an error bar per point", () => {
  const svg = lineChart({
    title: "t",
    xLabel: "x",
    yLabel: "y",
    series: [{ name: "a", points: [[16, 2], [32, 3]], ranges: [[1.5, 2.5], [2, 4]] }],
  });
  expect(svg.match(/class="error-bar"/g)?.length).toBe(2);
});

Deno.test("least squares: a hand-computed line, and the decode fit's intercept, slope and crossover", () => {
  // points (0, 1), (1, 2), (2, 4): mean x 1, mean y 7/3, Sxy 3, Sxx 2 -> slope 1.5, intercept 5/6
  const fit = fitLine([0, 1, 2], [1, 2, 4]);
  expect(fit.slope).toBeCloseTo(1.5, 12);
  expect(fit.intercept).toBeCloseTo(5 / 6, 12);
  // residuals 1/6, -1/3, 1/6: SSE 1/6 of Syy 14/3
  expect(fit.r2).toBeCloseTo(1 - (1 / 6) / (14 / 3), 12);
  expect(() => fitLine([1, 1], [2, 3])).toThrow("fitLine: expected two or more distinct x");
  // a decode series exactly on 2 ms + 3 ms per 1,000 positions
  const series = [16.5, 528.5, 1040.5].map((p) => {
    const c = cell("kv-cache", "MHA", [2 + 3 * p / 1000], {
      predictedMs: 1,
      flops: 1,
      weights: 1000 * 16384,
      kv: 0,
    });
    return { ...c, meanPosition: p, context: p - 0.5, kvBytesPerToken: 16384 };
  });
  const [mha] = decodeFits(series);
  expect(mha.interceptMs).toBeCloseTo(2, 9);
  expect(mha.msPer1000).toBeCloseTo(3, 9);
  expect(mha.crossoverContext).toBe(1000); // weights over K/V bytes per position
});

Deno.test("the ablation sentence is made from the numbers: speedup, interval, bytes or FLOPs", () => {
  const interval = (ratio: number, lo: number, hi: number) => ({
    ratio,
    lo,
    hi,
    confidence: 0.95,
    resamples: 2000,
    differs: lo > 1 || hi < 1,
  });
  const ablation: AttentionAblation = {
    nHeads: 8,
    headDim: 64,
    contexts: [256, 1024, 4096],
    cells: [],
    rejected: [],
    speedups: [
      {
        backend: "cpu",
        attention: "MQA",
        context: 256,
        measured: interval(1.05, 0.9, 1.2),
        bytesRatio: 7,
        flopsRatio: 1,
      },
      {
        backend: "cpu",
        attention: "MQA",
        context: 4096,
        measured: interval(6.5, 6, 8),
        bytesRatio: 7.9,
        flopsRatio: 1,
      },
      {
        backend: "cpu",
        attention: "GQA-2",
        context: 1024,
        measured: interval(1.3, 1.2, 1.4),
        bytesRatio: 2,
        flopsRatio: 1,
      },
    ],
  };
  const text = ablationSentence(ablation, [], "cpu", "s");
  expect(text).toContain("attention alone at context 4096 runs 6.50x [6.00-8.00] faster with MQA");
  expect(text).toContain("its time follows bytes");
  expect(text).toContain("first beats MHA's at context 1024 (GQA-2 1.30x [1.20-1.40])");
  // an interval holding neither ratio: between the two, as an exponent of the bytes
  ablation.speedups[1].measured = interval(3.41, 1.17, 5.41);
  ablation.speedups[1].bytesRatio = 7.99;
  expect(ablationSentence(ablation, [], "cpu", "s")).toContain(
    "its time lies between the two, as bytes^0.59",
  );
  // time that does not move with the bytes follows the FLOPs
  ablation.speedups = [ablation.speedups[0]];
  expect(ablationSentence(ablation, [], "cpu", "s")).toContain(
    "shows no difference between MQA and MHA (1.05x [0.900-1.20]) (bytes 7.00x, " +
      "FLOPs 1.00x: its time follows FLOPs), and no GQA/MQA attention differs from MHA's at any " +
      "measured context",
  );
});

Deno.test("the results README: machine line, one chart, at most 8 rows from the numbers, three sentences", () => {
  // five attention variants on two backends, each exactly on base + slope per 1,000 positions
  const cells: DecoderCell[] = [];
  const variants = [["MHA", 2, 3], ["GQA-2", 1.8, 1.5], ["GQA-4", 1.7, 0.75], ["GQA-8", 1.6, 0.4], [
    "MQA",
    1.6,
    0.375,
  ]] as const;
  for (const backend of ["cpu", "webgpu"] as const) {
    for (const [attention, base, slope] of variants) {
      for (const context of [16, 256, 1024]) {
        const mean = context + 15.5;
        const ms = base + slope * mean / 1000;
        const c = cell("kv-cache", attention, [ms * 0.99, ms, ms * 1.01], {
          predictedMs: ms / 2,
          flops: 1,
          weights: 2 ** 20,
          kv: 1,
        });
        cells.push({
          ...c,
          shape: "attention-heavy",
          backend,
          context,
          meanPosition: mean,
          kvBytesPerToken: { MHA: 16384, "GQA-2": 8192, "GQA-4": 4096, "GQA-8": 2048, MQA: 1024 }[
            attention
          ],
        });
      }
    }
  }
  const results: BenchResults = {
    schema: RESULTS_SCHEMA,
    date: "2026-12-04T00:00:00.000Z",
    quick: false,
    elapsedS: 60,
    settings: {
      reps: 5,
      contexts: [16, 256, 1024],
      decodePositions: 32,
      cellBudgetS: 8,
      minBatchMs: { cpu: 100, webgpu: 100 },
      probeBytes: 1,
      maxMinutes: 14,
    },
    machine: {
      cpu: "Test CPU",
      cores: 2,
      memoryGiB: 4,
      caches: [],
      llcBytes: 0,
      os: "linux",
      deno: "2.9.6",
      v8: "14",
    },
    rooflines: {},
    kernels: [],
    cells,
    checks: [],
    rejected: [],
    skipped: [],
    speedups: computeSpeedups(cells),
  };
  const readme = formatReadmeSection(results);
  const lines = readme.trimEnd().split("\n");
  expect(lines.length).toBeLessThanOrEqual(45);
  expect(lines[2]).toContain("on: Test CPU, 2 cores");
  expect(readme.match(/!\[/g)).toHaveLength(1);
  const rows = lines.filter((l) => l.startsWith("| ") && !l.startsWith("| variant"));
  expect(rows).toHaveLength(8); // ten series, eight kept
  // MHA on the CPU: 1000 / (2 + 3 * 0.0315) tok/s at 16, slope 3 ms per 1,000 positions
  const mha = rows.find((r) => r.startsWith("| MHA cpu |"))!.split(" | ");
  expect(mha[1]).toBe("16.0 KiB");
  // 1000 / 2.0945 = 477.4, its samples +-1%: 472.7 and 482.3, to 3 significant digits
  expect(mha[3]).toBe("477 [473-482]");
  expect(mha[5]).toBe("1 (baseline)");
  expect(mha[6]).toBe("3.00 |");
  // the 8-row cap keeps MHA, MQA and the GQA variants with the most K/V heads on each backend
  expect(rows.map((r) => r.split(" | ")[0].slice(2))).toEqual([
    "MHA cpu",
    "GQA-2 cpu",
    "GQA-4 cpu",
    "MQA cpu",
    "MHA webgpu",
    "GQA-2 webgpu",
    "GQA-4 webgpu",
    "MQA webgpu",
  ]);
  const gqa4 = rows.find((r) => r.startsWith("| GQA-4 cpu |"))!.split(" | ");
  const expected = (2 + 3 * 1.0395) / (1.7 + 0.75 * 1.0395);
  expect(gqa4[5]).toMatch(new RegExp(`^${expected.toFixed(2)}x \\[`));
  expect(gqa4[6]).toBe("0.750 |");
  // three sentences: the method, the ablation's, the speedups'
  const paragraph = lines.at(-1)!;
  expect(paragraph).toContain("one call decodes 32 tokens");
  expect(paragraph).toContain(
    "Over the whole decode step of `attention-heavy` MHA costs 2.00 ms/token plus 3.00 ms per " +
      "1,000 positions against MQA's",
  );
  expect(paragraph).toContain("MHA's K/V traffic equals its weight traffic at context 64");
  expect(paragraph).toContain("24 of 24 measured speedups have an interval that excludes 1.");
  // two contexts are too few for a line: no slope is claimed
  const two = formatReadmeSection({ ...results, cells: cells.filter((c) => c.context !== 256) });
  expect(two).not.toContain("Over the whole decode step");
  expect(two.split("\n").find((l) => l.startsWith("| MHA cpu |"))!.endsWith("| - |")).toBe(true);
});
