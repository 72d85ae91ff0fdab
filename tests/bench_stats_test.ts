import { expect } from "expect";
import { invertSpread, isNoisy, overlaps, ratioOfMedians, roundRobin } from "../bench/stats.ts";
import { summarize } from "../gpu/timing.ts";
import { lastLevelCache, parseCacheSize } from "../bench/machine.ts";
import { parsePeers } from "../bench/main.ts";
import type { DecoderCell } from "../bench/matrix.ts";
import {
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

Deno.test("ratios of medians carry their range and flag overlapping ranges as within noise", () => {
  const slow = summarize([10, 12, 14]);
  const fast = summarize([4, 5, 6]);
  expect(ratioOfMedians(slow, fast)).toEqual({
    ratio: 12 / 5,
    lo: 10 / 6,
    hi: 14 / 4,
    withinNoise: false,
  });
  const close = summarize([5.5, 11, 13]);
  expect(overlaps(slow, close)).toBe(true);
  expect(ratioOfMedians(slow, close).withinNoise).toBe(true);
  expect(formatRatio(ratioOfMedians(slow, fast))).toBe("2.40x [1.67-3.50]");
  expect(formatRatio(ratioOfMedians(slow, close))).toBe("1.09x [0.769-2.55] within noise");
  expect(formatSpread(summarize([0.5, 0.25, 1]))).toBe("0.500 [0.250-1.00]");
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

Deno.test("extra rounds go to the variants whose samples have not settled", async () => {
  const noise: Record<string, number[]> = { steady: [1, 1, 1, 1, 1], noisy: [1, 3, 1, 1, 1] };
  const samples = await roundRobin(
    ["steady", "noisy"],
    2,
    (v) => noise[v].shift()!,
    { rounds: 3, unsettled: (list) => isNoisy(list, 0.25) },
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
  expect(RESULTS_SCHEMA).toBe(2);
  expect(() => parseResults('{"schema": 1, "cells": []}', "old.json")).toThrow(
    "old.json: schema 1 (one sample per cell, no spread, copy-based roofline) cannot be re-rendered",
  );
  expect(() => parseResults('{"schema": 3}', "new.json")).toThrow(
    "new.json: expected results schema 2, got 3",
  );
  expect(() => parseResults("{", "bad.json")).toThrow("bad.json: not JSON");
  expect(() => parseResults('{"schema": 2, "settings": {}}', "part.json")).toThrow(
    'part.json: missing field "machine"',
  );
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
    timing: { wallMs: ms, batch: 1 },
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

Deno.test("speedups: ratio of medians with range beside the time model, FLOPs, bytes and K/V bytes", () => {
  const cells = [
    cell("kv-cache", "MHA", [2, 2.2, 1.8], { predictedMs: 2, flops: 10, weights: 300, kv: 100 }),
    cell("recompute", "MHA", [50, 55, 45], { predictedMs: 40, flops: 640, weights: 600, kv: 200 }),
    cell("kv-cache", "MQA", [1.9, 2.1, 2.3], { predictedMs: 1.5, flops: 9, weights: 290, kv: 10 }),
  ];
  const speedups = computeSpeedups(cells);
  expect(speedups).toHaveLength(2);
  const kv = speedups.find((s) => s.comparison === "KV cache vs recompute (MHA)")!;
  expect(kv.measured).toEqual({ ratio: 25, lo: 45 / 2.2, hi: 55 / 1.8, withinNoise: false });
  expect(kv.predicted).toBe(20);
  expect(kv.flopsRatio).toBe(64);
  expect(kv.meanPosition).toBe(64.5);
  const mqa = speedups.find((s) => s.comparison === "MQA vs MHA")!;
  expect(mqa.measured.ratio).toBeCloseTo(2 / 2.1, 12);
  expect(mqa.measured.withinNoise).toBe(true); // 1.8-2.2 overlaps 1.9-2.3
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
