import { expect } from "expect";
import { compare, Rng } from "../reference/mod.ts";

Deno.test("Rng repeats per seed and differs across seeds", () => {
  expect(new Rng(5).uniformArray(100)).toEqual(new Rng(5).uniformArray(100));
  expect(new Rng(5).uniformArray(100)).not.toEqual(new Rng(6).uniformArray(100));
});

Deno.test("Rng uniform values lie in [-1, 1) with mean near 0", () => {
  const x = new Rng(1).uniformArray(100000);
  expect(x.every((v) => v >= -1 && v < 1)).toBe(true);
  expect(Math.abs(x.reduce((s, v) => s + v, 0) / x.length)).toBeLessThan(0.01);
  expect(Math.min(...x)).toBeLessThan(-0.999);
});

Deno.test("Rng normal values have the requested mean and standard deviation", () => {
  const x = new Rng(2).normalArray(100000, 3, 2);
  const mean = x.reduce((s, v) => s + v, 0) / x.length;
  const std = Math.sqrt(x.reduce((s, v) => s + (v - mean) ** 2, 0) / x.length);
  expect(mean).toBeCloseTo(3, 1);
  expect(std).toBeCloseTo(2, 1);
});

Deno.test("compare reports NMSE, max abs error and the first non-finite value", () => {
  const s = compare(new Float32Array([1, 2, 4]), new Float32Array([1, 2, 3]));
  expect(s.nmse).toBeCloseTo(1 / 14, 7);
  expect(s.maxAbsError).toBe(1);
  expect(compare(new Float32Array([0, Infinity]), new Float32Array([0, 1])).firstNonFinite).toBe(1);
  expect(compare(new Float32Array(2), new Float32Array(2)).nmse).toBe(0);
  expect(() => compare(new Float32Array(2), new Float32Array(3))).toThrow(
    "expected length 3, got 2",
  );
});
