import { expect } from "expect";
import {
  attention,
  type AttentionShape,
  cachedAttention,
  compare,
  decodeAttention,
  KvCache,
  repeatKvHeads,
  Rng,
} from "../reference/mod.ts";

/** Textbook multi-head attention, one head at a time, written independently of the module. */
function plainMultiHead(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  seqLen: number,
  nHeads: number,
  headDim: number,
) {
  const dim = nHeads * headDim;
  const out = new Float32Array(seqLen * dim);
  for (let h = 0; h < nHeads; h++) {
    for (let i = 0; i < seqLen; i++) {
      const scores: number[] = [];
      for (let j = 0; j <= i; j++) {
        let s = 0;
        for (let d = 0; d < headDim; d++) {
          s += q[i * dim + h * headDim + d] * k[j * dim + h * headDim + d];
        }
        scores.push(s / Math.sqrt(headDim));
      }
      const m = Math.max(...scores);
      const e = scores.map((s) => Math.exp(s - m));
      const z = e.reduce((a, b) => a + b, 0);
      for (let d = 0; d < headDim; d++) {
        let acc = 0;
        for (let j = 0; j <= i; j++) acc += (e[j] / z) * v[j * dim + h * headDim + d];
        out[i * dim + h * headDim + d] = acc;
      }
    }
  }
  return out;
}

function randomQkv(rng: Rng, seqLen: number, shape: AttentionShape) {
  return {
    q: rng.uniformArray(seqLen * shape.nHeads * shape.headDim),
    k: rng.uniformArray(seqLen * shape.nKvHeads * shape.headDim),
    v: rng.uniformArray(seqLen * shape.nKvHeads * shape.headDim),
  };
}

Deno.test("attention of a single head matches a hand-computed case", () => {
  const shape = { nHeads: 1, nKvHeads: 1, headDim: 1 };
  // token 1: scores (1·0, 1·ln3) → weights (1/4, 3/4) → 0.25·4 + 0.75·8 = 7
  const out = attention(
    new Float32Array([0, 1]),
    new Float32Array([0, Math.log(3)]),
    new Float32Array([4, 8]),
    2,
    shape,
  );
  expect(out[0]).toBeCloseTo(4, 6);
  expect(out[1]).toBeCloseTo(7, 6);
});

Deno.test("attention with nKvHeads = nHeads equals plain multi-head attention", () => {
  const rng = new Rng(12);
  const shape = { nHeads: 4, nKvHeads: 4, headDim: 8 };
  const { q, k, v } = randomQkv(rng, 9, shape);
  const stats = compare(attention(q, k, v, 9, shape), plainMultiHead(q, k, v, 9, 4, 8));
  expect(stats.maxAbsError).toBeLessThan(1e-6);
});

Deno.test("grouped-query and multi-query attention equal MHA on K/V heads repeated nHeads/nKvHeads times", () => {
  const rng = new Rng(13);
  for (const nKvHeads of [1, 2, 4]) {
    const shape = { nHeads: 8, nKvHeads, headDim: 6 };
    const seqLen = 7;
    const { q, k, v } = randomQkv(rng, seqLen, shape);
    const repeats = 8 / nKvHeads;
    const expected = plainMultiHead(
      q,
      repeatKvHeads(k, seqLen, nKvHeads, 6, repeats),
      repeatKvHeads(v, seqLen, nKvHeads, 6, repeats),
      seqLen,
      8,
      6,
    );
    expect(compare(attention(q, k, v, seqLen, shape), expected).maxAbsError).toBeLessThan(1e-6);
  }
});

Deno.test("attention is causal: later tokens never change earlier outputs", () => {
  const rng = new Rng(14);
  const shape = { nHeads: 2, nKvHeads: 1, headDim: 4 };
  const { q, k, v } = randomQkv(rng, 6, shape);
  const full = attention(q, k, v, 6, shape);
  const prefix = attention(
    q.subarray(0, 4 * 8),
    k.subarray(0, 4 * 4),
    v.subarray(0, 4 * 4),
    4,
    shape,
  );
  expect(full.subarray(0, 4 * 8)).toEqual(prefix);
});

Deno.test("incremental decode against the KV cache equals full recompute at every position", () => {
  const rng = new Rng(15);
  for (const nKvHeads of [8, 2, 1]) {
    const shape = { nHeads: 8, nKvHeads, headDim: 16 };
    const seqLen = 20;
    const { q, k, v } = randomQkv(rng, seqLen, shape);
    const full = attention(q, k, v, seqLen, shape);
    const cache = new KvCache({ nLayers: 1, maxSeqLen: 32, nKvHeads, headDim: 16 });
    const kvDim = nKvHeads * 16;
    for (let pos = 0; pos < seqLen; pos++) {
      cache.write(
        0,
        pos,
        k.subarray(pos * kvDim, (pos + 1) * kvDim),
        v.subarray(pos * kvDim, (pos + 1) * kvDim),
      );
      const step = decodeAttention(
        q.subarray(pos * 128, (pos + 1) * 128),
        cache.keys[0],
        cache.values[0],
        pos,
        shape,
      );
      expect(compare(step, full.subarray(pos * 128, (pos + 1) * 128)).maxAbsError).toBeLessThan(
        1e-6,
      );
    }
  }
});

Deno.test("attention rejects nHeads not divisible by nKvHeads and mismatched lengths", () => {
  const shape = { nHeads: 6, nKvHeads: 4, headDim: 2 };
  expect(() => attention(new Float32Array(12), new Float32Array(8), new Float32Array(8), 1, shape))
    .toThrow(
      "nHeads (6) must be divisible by nKvHeads (4)",
    );
  const ok = { nHeads: 4, nKvHeads: 2, headDim: 2 };
  expect(() => attention(new Float32Array(8), new Float32Array(8), new Float32Array(4), 1, ok))
    .toThrow(
      "attention k (seqLen*nKvHeads*headDim): expected length 4, got 8",
    );
  expect(() =>
    decodeAttention(new Float32Array(8), new Float32Array(4), new Float32Array(4), 1, ok)
  ).toThrow(
    "decodeAttention keys ((pos+1)*nKvHeads*headDim): expected length >= 8, got 4",
  );
  expect(() => attention(new Float32Array(0), new Float32Array(0), new Float32Array(0), 0, ok))
    .toThrow("seqLen");
});

Deno.test("cachedAttention of rows from startPos equals those rows of full causal attention", () => {
  const shape = { nHeads: 4, nKvHeads: 2, headDim: 8 };
  const seqLen = 9;
  const rng = new Rng(17);
  const q = rng.uniformArray(seqLen * 32);
  const k = rng.uniformArray(seqLen * 16);
  const v = rng.uniformArray(seqLen * 16);
  const full = attention(q, k, v, seqLen, shape);
  // the whole prompt at once (prefill from 0), then the last 3 rows from position 6
  expect(compare(cachedAttention(q, k, v, 0, seqLen, shape), full).nmse).toBeLessThan(1e-12);
  const tail = cachedAttention(q.subarray(6 * 32), k, v, 6, 3, shape);
  expect(compare(tail, full.subarray(6 * 32)).nmse).toBeLessThan(1e-12);
  expect(() => cachedAttention(q, k, v, 1, seqLen, shape)).toThrow(
    "decodeAttention keys ((pos+1)*nKvHeads*headDim): expected length >= 160, got 144",
  );
  expect(() => cachedAttention(q.subarray(1), k, v, 0, seqLen, shape)).toThrow(
    "cachedAttention q (rows*nHeads*headDim): expected length 288, got 287",
  );
});
