import { expect } from "expect";
import { Rng, rope, ropeFrequencies, ropeRows, ropeTable } from "../reference/mod.ts";

const dot = (a: Float32Array, b: Float32Array) => a.reduce((s, v, i) => s + v * b[i], 0);
const norm = (a: Float32Array) => Math.sqrt(dot(a, a));

Deno.test("ropeFrequencies are theta^(-2i/headDim)", () => {
  const f = ropeFrequencies(8);
  [1, 10000 ** -0.25, 10000 ** -0.5, 10000 ** -0.75].forEach((v, i) =>
    expect(f[i]).toBeCloseTo(v, 7)
  );
  expect(ropeFrequencies(8, 500000)[1]).toBeCloseTo(500000 ** -0.25, 7);
});

Deno.test("rope rotates adjacent pairs (interleaved) by pos·freq, by hand", () => {
  // headDim 4: pair (0,1) at freq 1, pair (2,3) at freq 1/100 (theta 10000)
  const y = rope(new Float32Array([1, 0, 0, 1]), 2, 4);
  expect(y[0]).toBeCloseTo(Math.cos(2), 6);
  expect(y[1]).toBeCloseTo(Math.sin(2), 6);
  expect(y[2]).toBeCloseTo(-Math.sin(0.02), 6);
  expect(y[3]).toBeCloseTo(Math.cos(0.02), 6);
});

Deno.test("rope half layout pairs i with i + headDim/2 and equals interleaved after a permutation", () => {
  const y = rope(new Float32Array([1, 0, 0, 0]), 2, 4, { layout: "half" });
  expect(y[0]).toBeCloseTo(Math.cos(2), 6);
  expect(y[2]).toBeCloseTo(Math.sin(2), 6);
  const rng = new Rng(7);
  const headDim = 16;
  const x = rng.uniformArray(headDim * 3);
  // permutation taking interleaved positions (2i, 2i+1) to (i, i+half)
  const perm = (v: Float32Array) => {
    const out = new Float32Array(v.length);
    for (let h = 0; h < v.length; h += headDim) {
      for (let i = 0; i < headDim / 2; i++) {
        out[h + i] = v[h + 2 * i];
        out[h + i + headDim / 2] = v[h + 2 * i + 1];
      }
    }
    return out;
  };
  const a = perm(rope(x, 9, headDim));
  const b = rope(perm(x), 9, headDim, { layout: "half" });
  a.forEach((v, i) => expect(b[i]).toBeCloseTo(v, 6));
});

Deno.test("rope preserves each head's norm", () => {
  const rng = new Rng(8);
  for (const layout of ["interleaved", "half"] as const) {
    const x = rng.uniformArray(64 * 3);
    const y = rope(x, 123, 64, { layout });
    for (let h = 0; h < 3; h++) {
      expect(norm(y.subarray(h * 64, (h + 1) * 64))).toBeCloseTo(
        norm(x.subarray(h * 64, (h + 1) * 64)),
        5,
      );
    }
  }
});

Deno.test("rope makes q(m)·k(n) depend only on m − n", () => {
  const rng = new Rng(9);
  for (const layout of ["interleaved", "half"] as const) {
    const q = rng.uniformArray(32);
    const k = rng.uniformArray(32);
    const at = (m: number, n: number) =>
      dot(rope(q, m, 32, { layout }), rope(k, n, 32, { layout }));
    expect(at(7, 3)).toBeCloseTo(at(104, 100), 4);
    expect(at(5, 5)).toBeCloseTo(dot(q, k), 5);
    expect(Math.abs(at(7, 3) - at(7, 4))).toBeGreaterThan(1e-4); // and it does depend on m − n
  }
});

Deno.test("rope rejects an odd head dimension, a bad layout and a bad position", () => {
  expect(() => rope(new Float32Array(6), 0, 3)).toThrow(
    "rope headDim: expected an even number (features rotate in pairs), got 3",
  );
  expect(() => rope(new Float32Array(6), 0, 4)).toThrow(
    "expected a multiple of headDim 4, got length 6",
  );
  // deno-lint-ignore no-explicit-any
  expect(() => rope(new Float32Array(4), 0, 4, { layout: "zigzag" as any })).toThrow("rope layout");
  expect(() => rope(new Float32Array(4), -1, 4)).toThrow(
    "rope pos: expected an integer >= 0, got -1",
  );
  expect(() => ropeFrequencies(4, 0)).toThrow("rope theta");
});

Deno.test("ropeRows rotates row t by (startPos + t)·freq, by hand", () => {
  // one head of 2 features: the pair (1, 0) turns by the angle pos·1
  const y = ropeRows(new Float32Array([1, 0, 1, 0, 1, 0]), 4, 3, 2);
  for (let t = 0; t < 3; t++) {
    expect(y[2 * t]).toBeCloseTo(Math.cos(4 + t), 6);
    expect(y[2 * t + 1]).toBeCloseTo(Math.sin(4 + t), 6);
  }
  expect(() => ropeRows(new Float32Array(6), 0, 4, 2)).toThrow(
    "ropeRows x: expected a multiple of rows 4, got length 6",
  );
  expect(() => ropeRows(new Float32Array(4), -1, 2, 2)).toThrow(
    "ropeRows startPos: expected an integer >= 0, got -1",
  );
});

Deno.test("linear RoPE scaling divides positions by the factor, in rope and in the table", () => {
  const x = new Float32Array([1, 0, 0, 1]); // one head of 4: pairs (1, 0) and (0, 1)
  // Position 1 with factor 4 turns pair i by 0.25 · 10000^(-2i/4): 0.25 and 0.0025 radians.
  const scaled = rope(x, 1, 4, { linearScaling: 4 });
  expect(scaled[0]).toBeCloseTo(Math.cos(0.25), 6);
  expect(scaled[1]).toBeCloseTo(Math.sin(0.25), 6);
  expect(scaled[2]).toBeCloseTo(-Math.sin(0.0025), 6);
  expect(scaled[3]).toBeCloseTo(Math.cos(0.0025), 6);
  // Position 8 at factor 4 is position 2 unscaled.
  expect(rope(x, 8, 4, { linearScaling: 4 })).toEqual(rope(x, 2, 4));
  const table = ropeTable(4, 9, 10000, 4);
  expect(table[8 * 4]).toBeCloseTo(Math.cos(2), 6);
  expect(table[8 * 4 + 1]).toBeCloseTo(Math.sin(2), 6);
  expect(() => rope(x, 1, 4, { linearScaling: 0 })).toThrow(
    "rope linearScaling: expected a finite number > 0, got 0",
  );
});
