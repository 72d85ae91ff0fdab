import { expect } from "expect";
import {
  batchStepCost,
  dispatchesPerPass,
  forwardCost,
  makeConfig,
  passesCost,
  predictMs,
} from "../model/mod.ts";

// dim 4, hidden 8, 1 layer, 2 query heads and 1 K/V head of 2 features, vocabulary 10.
// Matrices per layer: wq 4x4 16, wk 2x4 8, wv 2x4 8, wo 4x4 16, w1/w2/w3 8x4 32 each: 144 floats.
const tiny = makeConfig({
  dim: 4,
  hiddenDim: 8,
  nLayers: 1,
  nHeads: 2,
  nKvHeads: 1,
  vocabSize: 10,
  maxSeqLen: 16,
});

Deno.test("forwardCost of one decode step, by hand", () => {
  const decode = forwardCost(tiny, { rows: 1, start: 3 });
  // matrices 2·144, classifier 2·10·4, attention 2 heads · 2 features · 4 (score, value) · 4 keys
  expect(decode.flops).toBe(288 + 80 + 64);
  // 4 bytes · (144 + 2 norms of 4 + final norm 4 + classifier 40 + one embedding row 4)
  expect(decode.weightBytes).toBe(4 * 200);
  // keys and values of 1 K/V head of 2 features: 16 bytes per position; 4 positions read, 1 written
  expect(decode.kvReadBytes).toBe(64);
  expect(decode.kvWriteBytes).toBe(16);
  expect(decode.bytes).toBe(880);
  expect(decode.dispatches).toBe(19);
  expect(dispatchesPerPass({ ...tiny, nLayers: 4 })).toBe(67);
});

Deno.test("sequential prefill streams the weights once per token; batched once per pass", () => {
  const sequential = passesCost(tiny, { start: 0, count: 3, rowsPerPass: 1 });
  // each token: matrices 288 + classifier 80 FLOPs; attention 16·(1 + 2 + 3) keys in all
  expect(sequential.flops).toBe(3 * 368 + 16 * 6);
  expect(sequential.weightBytes).toBe(3 * 800);
  expect(sequential.kvReadBytes).toBe(16 * (1 + 2 + 3));
  expect(sequential.kvWriteBytes).toBe(48);
  expect(sequential.dispatches).toBe(3 * 19);
  const batched = passesCost(tiny, { start: 0, count: 3, rowsPerPass: 3 });
  // one pass: matrices for 3 rows, the classifier once, 3 embedding rows
  expect(batched.flops).toBe(3 * 288 + 80 + 16 * 6);
  expect(batched.weightBytes).toBe(4 * (144 + 8 + 4 + 40 + 3 * 4));
  expect(batched.kvReadBytes).toBe(16 * 3);
  expect(batched.dispatches).toBe(19);
  // chunks of 2: passes of 2 rows then 1
  const chunked = passesCost(tiny, { start: 0, count: 3, rowsPerPass: 2 });
  expect(chunked.weightBytes).toBe(4 * (196 + 8) + 4 * (196 + 4));
  expect(chunked.kvReadBytes).toBe(16 * 2 + 16 * 3);
  expect(() => passesCost(tiny, { start: 0, count: 3, rowsPerPass: 0 })).toThrow(
    "rowsPerPass: expected an integer >= 1, got 0",
  );
});

Deno.test("GQA/MQA shrink the K/V bytes by the group size and the weights by wk and wv only", () => {
  const mha = forwardCost({ ...tiny, nKvHeads: 2 }, { rows: 1, start: 99 });
  const mqa = forwardCost(tiny, { rows: 1, start: 99 });
  expect((mha.kvReadBytes + mha.kvWriteBytes) / (mqa.kvReadBytes + mqa.kvWriteBytes)).toBe(2);
  // wk and wv of 2 heads of 2 features over dim 4: 2·(4·4) floats instead of 2·(2·4)
  expect(mha.weightBytes - mqa.weightBytes).toBe(4 * 16);
});

Deno.test("the time model takes the slower of compute and memory, plus dispatches", () => {
  const ceilings = { readGbPerS: 10, peakGflopPerS: 100, dispatchUs: 20 };
  // memory-bound: 1e8 bytes at 10 GB/s = 10 ms; 1e8 FLOPs at 100 GFLOP/s = 1 ms; 50 · 20 µs = 1 ms
  expect(predictMs({ flops: 1e8, bytes: 1e8, dispatches: 50 }, ceilings)).toBeCloseTo(11, 12);
  // compute-bound: 5e9 FLOPs = 50 ms
  expect(predictMs({ flops: 5e9, bytes: 1e8, dispatches: 0 }, ceilings)).toBeCloseTo(50, 12);
});

Deno.test("a batched step costs the weights once and each sequence's cache by itself (hand-computed)", () => {
  // dim 4, hidden 8, 1 layer, 2 heads of 2 sharing 1 KV head, vocab 10: 144 matrix weights a
  // layer, 16 K/V bytes a position
  const config = makeConfig({
    dim: 4,
    hiddenDim: 8,
    nLayers: 1,
    nHeads: 2,
    nKvHeads: 1,
    vocabSize: 10,
    maxSeqLen: 16,
  });
  const step = batchStepCost(config, [3, 5]);
  // weights: 4 * (144 + 2 norms of 4 + final norm 4 + classifier 40 + one embedding row 4), plus a
  // second embedding row
  expect(step.weightBytes).toBe(4 * (144 + 8 + 4 + 40 + 4) + 16);
  expect(step.kvReadBytes).toBe((4 + 6) * 16);
  expect(step.kvWriteBytes).toBe(2 * 16);
  // per sequence: 2 * 144 matrix + 2 * 40 classifier + 16 per key read (2 heads * 2 * 4)
  expect(step.flops).toBe((288 + 80 + 16 * 4) + (288 + 80 + 16 * 6));
  expect(step.bytes).toBe(step.weightBytes + step.kvReadBytes + step.kvWriteBytes);
  // a sliding window of 2: each sequence reads 2 positions
  const windowed = batchStepCost(config, [3, 5], 2);
  expect(windowed.kvReadBytes).toBe(4 * 16);
  expect(windowed.flops).toBe(2 * (288 + 80 + 16 * 2));
  expect(() => batchStepCost(config, [])).toThrow("positions: expected at least one, got none");
});
