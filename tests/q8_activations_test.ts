import { expect } from "expect";
import {
  dequantize,
  matvecQ8Activations,
  matvecQuantized,
  q8ActivationErrorBound,
  quantize,
  quantizeActivations,
  Rng,
} from "../reference/mod.ts";

Deno.test("quantizeActivations: max|x|/127 in float32, quants rounded half away, block sums", () => {
  const x = new Float32Array(64);
  x.set([127, 0.5, -0.5, 1.5, -2.5, 126.4]);
  x[32] = -3; // second block: d = 3/127
  const q = quantizeActivations(x);
  expect(Array.from(q.quants.subarray(0, 6))).toEqual([127, 1, -1, 2, -3, 126]);
  expect(q.scales[0]).toBe(1);
  expect(q.sums[0]).toBe(127 + 1 - 1 + 2 - 3 + 126);
  expect(q.quants[32]).toBe(-127);
  expect(q.scales[1]).toBe(Math.fround(3 / 127));
  expect(q.sums[1]).toBe(-127);
  expect(Array.from(quantizeActivations(new Float32Array(32)).quants)).toEqual(
    new Array(32).fill(0),
  );
  expect(() => quantizeActivations(new Float32Array(31))).toThrow("multiple of 32 values, got 31");
  const bad = new Float32Array(32);
  bad[3] = NaN;
  expect(() => quantizeActivations(bad)).toThrow("block 0 holds a non-finite value");
});

Deno.test("Q8 block products equal the products of the dequantized values (exact integers)", () => {
  const rng = new Rng(5);
  const [outDim, inDim] = [9, 96];
  for (const format of ["q8_0", "q4_0"] as const) {
    const w = quantize(rng.uniformArray(outDim * inDim), format);
    const x = quantizeActivations(rng.uniformArray(inDim));
    // x as the floats its quants stand for: the f32-activation oracle gives the same sums
    const xValues = Float32Array.from(x.quants, (q, i) => q * x.scales[Math.floor(i / 32)]);
    const expected = matvecQuantized(w, format, xValues, outDim, inDim);
    const got = matvecQ8Activations(w, format, x, outDim, inDim);
    for (let r = 0; r < outDim; r++) expect(Math.abs(got[r] - expected[r])).toBeLessThan(1e-5);
  }
});

Deno.test("Q8 activations move each output by at most the derived bound, and ~1.6e-5 NMSE on uniform data", () => {
  const rng = new Rng(11);
  const [outDim, inDim] = [64, 512];
  for (const format of ["q8_0", "q4_0"] as const) {
    const w = quantize(rng.uniformArray(outDim * inDim), format);
    const x = rng.uniformArray(inDim);
    const exact = matvecQuantized(w, format, x, outDim, inDim);
    const approx = matvecQ8Activations(w, format, quantizeActivations(x), outDim, inDim);
    const bound = q8ActivationErrorBound(dequantize(w, format, outDim * inDim), x, outDim, inDim);
    let [err, ref] = [0, 0];
    for (let r = 0; r < outDim; r++) {
      expect(Math.abs(approx[r] - exact[r])).toBeLessThanOrEqual(bound[r] + 1e-6);
      err += (approx[r] - exact[r]) ** 2;
      ref += exact[r] ** 2;
    }
    // (d²/12)/E[x²] with d ≈ 1/127, E[x²] = 1/3: about 1.6e-5; a 4x margin for 64 samples
    expect(err / ref).toBeLessThan(6.4e-5);
    expect(err / ref).toBeGreaterThan(1e-6);
  }
});
