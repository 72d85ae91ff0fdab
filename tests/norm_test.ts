import { expect } from "expect";
import { batchNorm, layerNorm, rmsNorm, Rng } from "../reference/mod.ts";

const rms = (x: ArrayLike<number>) =>
  Math.sqrt(Array.from(x).reduce((s, v) => s + v * v, 0) / x.length);
const mean = (x: ArrayLike<number>) => Array.from(x).reduce((s, v) => s + v, 0) / x.length;

Deno.test("rmsNorm matches a hand-computed case", () => {
  // x = (1, 2, 3, 4): mean square 7.5
  const y = rmsNorm(new Float32Array([1, 2, 3, 4]), new Float32Array([1, 1, 2, 0.5]), 0);
  const s = 1 / Math.sqrt(7.5);
  [1 * s, 2 * s, 6 * s, 2 * s].forEach((v, i) => expect(y[i]).toBeCloseTo(v, 6));
});

Deno.test("rmsNorm output has RMS 1 with unit weight, times the weight otherwise", () => {
  const rng = new Rng(3);
  const x = rng.uniformArray(257);
  expect(rms(rmsNorm(x, new Float32Array(257).fill(1), 0))).toBeCloseTo(1, 6);
  expect(rms(rmsNorm(x, new Float32Array(257).fill(3), 0))).toBeCloseTo(3, 5);
});

Deno.test("rmsNorm is scale invariant and keeps the mean (no centering)", () => {
  const rng = new Rng(4);
  const x = rng.uniformArray(64).map((v) => v + 2); // non-zero mean
  const w = rng.uniformArray(64);
  const y1 = rmsNorm(x, w, 0);
  const y2 = rmsNorm(x.map((v) => v * 37.5), w, 0);
  y1.forEach((v, i) => expect(y2[i]).toBeCloseTo(v, 5));
  const unit = rmsNorm(x, new Float32Array(64).fill(1), 0);
  expect(mean(unit)).toBeGreaterThan(0.5); // unlike LayerNorm, the mean survives
});

Deno.test("rmsNorm normalizes each row of a batch independently; eps keeps zeros finite", () => {
  const w = new Float32Array([1, 1]);
  const y = rmsNorm(new Float32Array([3, 4, 30, 40]), w, 0);
  expect(y[0]).toBeCloseTo(y[2], 6);
  expect(Array.from(rmsNorm(new Float32Array(2), w))).toEqual([0, 0]);
});

Deno.test("rmsNorm adds eps inside the sqrt, where it matters: rows of |x| ~ 1e-3", () => {
  const x = new Float32Array([1e-3, -1e-3, 1e-3, -1e-3]); // mean square 1e-6
  const w = new Float32Array(4).fill(1);
  // 1e-3 / sqrt(1e-6 + 1e-5) = 0.30151; eps outside the sqrt: 1e-3 / (1e-3 + 1e-5) = 0.99010;
  // no eps: 1
  const y = rmsNorm(x, w);
  [0.30151134, -0.30151134, 0.30151134, -0.30151134].forEach((v, i) =>
    expect(y[i]).toBeCloseTo(v, 6)
  );
  expect(rmsNorm(x, w, 1e-6)[0]).toBeCloseTo(0.70710678, 6); // 1e-3 / sqrt(2e-6)
  expect(rmsNorm(x, w, 0)[0]).toBeCloseTo(1, 6);
});

Deno.test("layerNorm gives zero mean and unit variance per sample", () => {
  const rng = new Rng(5);
  const [rows, dim] = [3, 33];
  const x = rng.uniformArray(rows * dim).map((v, i) => v * (i % 5) + 7);
  const y = layerNorm(x, new Float32Array(dim).fill(1), new Float32Array(dim), 0);
  for (let r = 0; r < rows; r++) {
    const row = y.subarray(r * dim, (r + 1) * dim);
    expect(mean(row)).toBeCloseTo(0, 5);
    expect(rms(row)).toBeCloseTo(1, 5);
  }
});

Deno.test("batchNorm gives zero mean and unit variance per feature across the batch", () => {
  const rng = new Rng(6);
  const [batch, features] = [9, 4];
  const x = rng.uniformArray(batch * features).map((v, i) => v * (1 + (i % features)) - 3);
  const y = batchNorm(x, new Float32Array(features).fill(1), new Float32Array(features), 0);
  for (let f = 0; f < features; f++) {
    const column = Array.from({ length: batch }, (_, b) => y[b * features + f]);
    expect(mean(column)).toBeCloseTo(0, 5);
    expect(rms(column)).toBeCloseTo(1, 5);
  }
  // weight and bias apply per feature
  const shifted = batchNorm(
    x,
    new Float32Array(features).fill(2),
    new Float32Array(features).fill(1),
    0,
  );
  expect(shifted[5]).toBeCloseTo(2 * y[5] + 1, 5);
});

Deno.test("norms reject mismatched shapes, naming expected and got", () => {
  expect(() => rmsNorm(new Float32Array(5), new Float32Array(2))).toThrow(
    "rmsNorm x: expected a multiple of dim 2, got length 5",
  );
  expect(() => layerNorm(new Float32Array(4), new Float32Array(2), new Float32Array(3))).toThrow(
    "layerNorm bias (dim): expected length 2, got 3",
  );
  expect(() => batchNorm(new Float32Array(3), new Float32Array(2), new Float32Array(2))).toThrow(
    "expected a multiple of features 2, got length 3",
  );
  expect(() => rmsNorm(new Float32Array(2), new Float32Array(2), -1)).toThrow("eps");
});
