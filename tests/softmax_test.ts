import { expect } from "expect";
import { Rng, softmax } from "../reference/mod.ts";

Deno.test("softmax matches a hand-computed case", () => {
  const p = softmax(new Float32Array([0, Math.log(3)]));
  expect(p[0]).toBeCloseTo(0.25, 7);
  expect(p[1]).toBeCloseTo(0.75, 7);
});

Deno.test("softmax sums to 1, is shift invariant and keeps order", () => {
  // multiples of 1/8 in [-20, 20]: shifting them by 1234.5 is exact in float32
  const x = new Rng(10).uniformArray(4099).map((v) => Math.round(v * 160) / 8);
  const p = softmax(x);
  expect(p.reduce((s, v) => s + v, 0)).toBeCloseTo(1, 5);
  const shifted = softmax(x.map((v) => v + 1234.5));
  p.forEach((v, i) => expect(shifted[i]).toBeCloseTo(v, 6));
  expect(p[0] < p[1]).toBe(x[0] < x[1]);
});

Deno.test("softmax is stable for huge logits and handles -Infinity as zero weight", () => {
  const p = softmax(new Float32Array([1e30, 1e30, -Infinity]));
  expect(Array.from(p)).toEqual([0.5, 0.5, 0]);
});

Deno.test("softmax works row by row", () => {
  const p = softmax(new Float32Array([0, 0, 1, 1, 5, 5]), 2);
  expect(Array.from(p)).toEqual([0.5, 0.5, 0.5, 0.5, 0.5, 0.5]);
});

Deno.test("softmax of a row masked entirely to -Infinity is zeros, other rows unaffected", () => {
  const p = softmax(new Float32Array([-Infinity, -Infinity, 0, Math.log(3)]), 2);
  expect(Array.from(p.subarray(0, 2))).toEqual([0, 0]);
  expect(p[2]).toBeCloseTo(0.25, 7);
});

Deno.test("softmax rejects a bad row length", () => {
  expect(() => softmax(new Float32Array(5), 2)).toThrow(
    "softmax rowLength: expected a positive divisor of length 5, got 2",
  );
});
