import { expect } from "expect";
import { matvec, Rng, silu, siluMul, swiglu } from "../reference/mod.ts";

Deno.test("silu is x·sigmoid(x): 0 at 0, ≈x for large x, ≈0 for very negative x", () => {
  expect(silu(0)).toBe(0);
  expect(silu(1)).toBeCloseTo(1 / (1 + Math.exp(-1)), 12);
  expect(silu(30)).toBeCloseTo(30, 9);
  expect(silu(-30)).toBeCloseTo(0, 9);
  expect(silu(-1)).toBeLessThan(0); // non-monotonic dip, unlike ReLU
});

Deno.test("siluMul gates elementwise and rejects mismatched lengths", () => {
  const y = siluMul(new Float32Array([1, -2]), new Float32Array([3, 4]));
  expect(y[0]).toBeCloseTo(3 * silu(1), 6);
  expect(y[1]).toBeCloseTo(4 * silu(-2), 6);
  expect(() => siluMul(new Float32Array(2), new Float32Array(3))).toThrow(
    "siluMul up (gate length): expected length 2, got 3",
  );
});

Deno.test("swiglu equals w2·(silu(w1·x) ⊙ w3·x) written out longhand", () => {
  const rng = new Rng(11);
  const [dim, hidden] = [7, 19];
  const weights = {
    w1: rng.uniformArray(hidden * dim),
    w2: rng.uniformArray(dim * hidden),
    w3: rng.uniformArray(hidden * dim),
  };
  const x = rng.uniformArray(dim);
  const y = swiglu(x, weights, dim, hidden);
  const h = new Float32Array(hidden);
  for (let j = 0; j < hidden; j++) {
    let a = 0, b = 0;
    for (let i = 0; i < dim; i++) {
      a += weights.w1[j * dim + i] * x[i];
      b += weights.w3[j * dim + i] * x[i];
    }
    h[j] = (a / (1 + Math.exp(-a))) * b;
  }
  const expected = matvec(weights.w2, h, dim, hidden);
  expected.forEach((v, i) => expect(y[i]).toBeCloseTo(v, 5));
});

Deno.test("swiglu rejects weights of the wrong shape", () => {
  const w = new Float32Array(6);
  expect(() => swiglu(new Float32Array(2), { w1: w, w2: w, w3: new Float32Array(5) }, 2, 3))
    .toThrow(
      "expected length 6, got 5",
    );
});
