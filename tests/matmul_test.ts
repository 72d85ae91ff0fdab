import { expect } from "expect";
import { matmul, matvec, Rng } from "../reference/mod.ts";

Deno.test("matvec computes W·x on a hand-worked 3x2 case", () => {
  const w = new Float32Array([1, 2, 3, 4, 5, 6]); // (3, 2)
  expect(Array.from(matvec(w, new Float32Array([1, -1]), 3, 2))).toEqual([-1, -1, -1]);
  expect(Array.from(matvec(w, new Float32Array([2, 0.5]), 3, 2))).toEqual([3, 8, 13]);
});

Deno.test("matmul computes X·Wᵀ on a hand-worked case", () => {
  const w = new Float32Array([1, 2, 3, 4, 5, 6]); // (outDim 2, inDim 3)
  const x = new Float32Array([1, 0, -1, 2, 1, 0.5]); // (rows 2, inDim 3)
  // row 0: (1·1 + 2·0 − 3·1, 4 − 6); row 1: (2 + 2 + 1.5, 8 + 5 + 3)
  expect(Array.from(matmul(w, x, 2, 2, 3))).toEqual([-2, -2, 5.5, 16]);
});

Deno.test("matmul with the identity as X gives Wᵀ", () => {
  const [outDim, inDim] = [7, 33];
  const w = new Rng(1).uniformArray(outDim * inDim);
  const identity = new Float32Array(inDim * inDim);
  for (let i = 0; i < inDim; i++) identity[i * inDim + i] = 1;
  const y = matmul(w, identity, inDim, outDim, inDim); // (inDim, outDim)
  for (let t = 0; t < inDim; t++) {
    for (let o = 0; o < outDim; o++) expect(y[t * outDim + o]).toBe(w[o * inDim + t]);
  }
});

Deno.test("matvec is linear: W·(a+b) = W·a + W·b", () => {
  const rng = new Rng(2);
  const w = rng.uniformArray(4 * 9);
  const a = rng.uniformArray(9);
  const b = rng.uniformArray(9);
  const sum = matvec(w, a.map((v, i) => v + b[i]), 4, 9);
  const parts = matvec(w, a, 4, 9).map((v, i) => v + matvec(w, b, 4, 9)[i]);
  for (let i = 0; i < 4; i++) expect(sum[i]).toBeCloseTo(parts[i], 5);
});

Deno.test("matvec and matmul reject mismatched lengths, naming expected and got", () => {
  expect(() => matvec(new Float32Array(6), new Float32Array(3), 3, 2)).toThrow(
    "matvec x (inDim): expected length 2, got 3",
  );
  expect(() => matvec(new Float32Array(5), new Float32Array(2), 3, 2)).toThrow(
    "matvec w (outDim*inDim): expected length 6, got 5",
  );
  expect(() => matmul(new Float32Array(4), new Float32Array(5), 2, 2, 2)).toThrow(
    "matmul x (rows*inDim): expected length 4, got 5",
  );
  expect(() => matvec(new Float32Array(0), new Float32Array(0), 0, 2)).toThrow("outDim");
});
