import { expect } from "expect";
import {
  attention,
  compare,
  decodeAttention,
  KvCache,
  pagedAttention,
  PagedKvCache,
  Rng,
  SlidingKvCache,
  slidingWindowAttention,
  windowStart,
} from "../reference/mod.ts";

const shape = { nHeads: 4, nKvHeads: 2, headDim: 8 };
const kvDim = shape.nKvHeads * shape.headDim;

Deno.test("PagedKvCache takes ceil(length / blockSize) blocks, lowest ids first, and maps rows", () => {
  const cache = new PagedKvCache({
    nLayers: 1,
    nKvHeads: 1,
    headDim: 2,
    blockSize: 4,
    numBlocks: 8,
  });
  cache.blocks.reserve(0, 5); // blocks 0, 1
  cache.blocks.reserve(1, 4); // block 2
  cache.blocks.reserve(0, 9); // grows into block 3
  expect(Array.from(cache.blocks.blockTable(0))).toEqual([0, 1, 3]);
  expect(Array.from(cache.blocks.blockTable(1))).toEqual([2]);
  // position 8 of sequence 0: logical block 2 -> pool block 3, offset 0 -> row 12
  expect(cache.blocks.row(0, 8)).toBe(12);
  expect(cache.blocks.row(1, 3)).toBe(11);
  expect(cache.blocks.freeBlocks).toBe(4);
  const perToken = 2 * 1 * 1 * 2 * 4;
  expect(cache.reservedBytes).toBe(perToken * 32);
  expect(cache.allocatedBytes).toBe(perToken * 16);
  expect(cache.usedBytes).toBe(perToken * 13);
});

Deno.test("PagedKvCache frees a finished sequence's blocks for the next one", () => {
  const cache = new PagedKvCache({
    nLayers: 1,
    nKvHeads: 1,
    headDim: 2,
    blockSize: 2,
    numBlocks: 4,
  });
  cache.blocks.reserve(0, 4);
  cache.blocks.reserve(1, 4);
  expect(() => cache.blocks.reserve(2, 1)).toThrow(
    "PagedKvCache: sequence 2 needs 1 more blocks of 2 positions for length 1, got 0 free of 4",
  );
  cache.blocks.release(0);
  expect(cache.blocks.sequences).toEqual([1]);
  cache.blocks.reserve(2, 3);
  expect(Array.from(cache.blocks.blockTable(2))).toEqual([0, 1]);
  expect(() => cache.blocks.row(0, 0)).toThrow("PagedKvCache: expected a live sequence id, got 0");
});

Deno.test("PagedKvCache reservation is all or nothing, and positions past it are refused", () => {
  const cache = new PagedKvCache({
    nLayers: 2,
    nKvHeads: 1,
    headDim: 2,
    blockSize: 4,
    numBlocks: 3,
  });
  cache.blocks.reserve(5, 4);
  expect(() => cache.blocks.reserve(5, 13)).toThrow("got 2 free of 3");
  expect(cache.blocks.freeBlocks).toBe(2);
  expect(cache.blocks.length(5)).toBe(4);
  const v = new Float32Array(2);
  expect(() => cache.write(0, 5, 4, v, v)).toThrow(
    "PagedKvCache position of sequence 5: expected an integer in [0, 4), got 4",
  );
  expect(() => cache.write(2, 5, 0, v, v)).toThrow(
    "PagedKvCache layer: expected an integer in [0, 2), got 2",
  );
  expect(() => cache.write(0, 5, 0, new Float32Array(3), v)).toThrow(
    "PagedKvCache key (nKvHeads*headDim): expected length 2, got 3",
  );
  expect(() => cache.blocks.release(9)).toThrow("expected a live sequence id, got 9");
  expect(() =>
    new PagedKvCache({ nLayers: 1, nKvHeads: 1, headDim: 2, blockSize: 0, numBlocks: 3 })
  )
    .toThrow("blockSize: expected an integer >= 1, got 0");
});

Deno.test("paged attention over interleaved sequences equals contiguous attention per sequence", () => {
  const rng = new Rng(7);
  const blockSize = 4;
  const paged = new PagedKvCache({ nLayers: 1, ...shape, blockSize, numBlocks: 16 });
  const lengths = [13, 6, 9];
  const contiguous = lengths.map((n) => new KvCache({ nLayers: 1, maxSeqLen: n, ...shape }));
  // Sequences grow in lockstep, so their blocks interleave in the pool.
  for (let pos = 0; pos < Math.max(...lengths); pos++) {
    lengths.forEach((n, seq) => {
      if (pos >= n) return;
      const k = rng.uniformArray(kvDim), v = rng.uniformArray(kvDim);
      paged.blocks.reserve(seq, pos + 1);
      paged.write(0, seq, pos, k, v);
      contiguous[seq].write(0, pos, k, v);
    });
  }
  expect(Array.from(paged.blocks.blockTable(0))).not.toEqual([0, 1, 2, 3]);
  lengths.forEach((n, seq) => {
    for (const pos of [0, blockSize - 1, blockSize, n - 1]) {
      const q = rng.uniformArray(shape.nHeads * shape.headDim);
      const got = pagedAttention(
        q,
        paged.keys[0],
        paged.values[0],
        paged.blocks.blockTable(seq),
        blockSize,
        pos,
        shape,
      );
      const want = decodeAttention(
        q,
        contiguous[seq].keys[0],
        contiguous[seq].values[0],
        pos,
        shape,
      );
      expect(compare(got, want).maxAbsError).toBeLessThan(1e-6);
    }
  });
});

Deno.test("pagedAttention names a block table too short or pointing outside the pool", () => {
  const pool = new Float32Array(4 * kvDim);
  const q = new Float32Array(shape.nHeads * shape.headDim);
  expect(() => pagedAttention(q, pool, pool, Int32Array.of(0), 2, 2, shape)).toThrow(
    "pagedAttention blockTable: expected >= 2 blocks to cover position 2, got 1",
  );
  expect(() => pagedAttention(q, pool, pool, Int32Array.of(0, 2), 2, 2, shape)).toThrow(
    "pagedAttention blockTable[1]: expected a block in [0, 2), got 2",
  );
});

Deno.test("a sliding window sees the last `window` positions: ring equals a full cache's tail", () => {
  const rng = new Rng(3);
  const window = 5;
  const ring = new SlidingKvCache({ nLayers: 1, ...shape, window });
  const full = new KvCache({ nLayers: 1, maxSeqLen: 32, ...shape });
  for (let pos = 0; pos < 23; pos++) {
    const k = rng.uniformArray(kvDim), v = rng.uniformArray(kvDim);
    ring.write(0, pos, k, v);
    full.write(0, pos, k, v);
    const q = rng.uniformArray(shape.nHeads * shape.headDim);
    const got = slidingWindowAttention(q, ring.keys[0], ring.values[0], pos, window, shape);
    // The same positions, read straight from a contiguous cache.
    const start = windowStart(pos, window);
    const want = decodeAttention(
      q,
      full.keys[0].subarray(start * kvDim),
      full.values[0].subarray(start * kvDim),
      pos - start,
      shape,
    );
    expect(compare(got, want).maxAbsError).toBeLessThan(1e-6);
  }
  expect(ring.bytes).toBe(2 * 1 * kvDim * 4 * window);
});

Deno.test("a ring shorter than the window serves a run shorter than the window", () => {
  // Window 512, a run of 6 positions: a ring of 6 rows holds every position seen.
  const rng = new Rng(4);
  const [ringSize, window] = [6, 512];
  const full = new KvCache({ nLayers: 1, maxSeqLen: ringSize, ...shape });
  for (let pos = 0; pos < ringSize; pos++) {
    full.write(0, pos, rng.uniformArray(kvDim), rng.uniformArray(kvDim));
    const q = rng.uniformArray(shape.nHeads * shape.headDim);
    const got = slidingWindowAttention(
      q,
      full.keys[0],
      full.values[0],
      pos,
      window,
      shape,
      ringSize,
    );
    const want = decodeAttention(q, full.keys[0], full.values[0], pos, shape);
    expect(compare(got, want).maxAbsError).toBeLessThan(1e-6);
  }
  // Position 6 would see 7 positions: they no longer fit.
  const q = rng.uniformArray(shape.nHeads * shape.headDim);
  expect(() => slidingWindowAttention(q, full.keys[0], full.values[0], 6, window, shape, 6))
    .toThrow("ringSize: expected an integer >= the 7 positions seen at pos 6 (window 512), got 6");
});

Deno.test("windowed attention: hand-computed at window 2, full causal attention at a wide window", () => {
  const one = { nHeads: 1, nKvHeads: 1, headDim: 1 };
  // Token 2 sees tokens 1 and 2 with scores q·k = 0 and ln 3: weights 1/4, 3/4.
  const q = new Float32Array([1, 1, 1]);
  const k = new Float32Array([5, 0, Math.log(3)]);
  const v = new Float32Array([100, 4, 8]);
  const out = attention(q, k, v, 3, one, 2);
  expect(out[2]).toBeCloseTo(4 / 4 + 8 * 3 / 4, 5);
  const rng = new Rng(11);
  const seqLen = 9;
  const qs = rng.uniformArray(seqLen * shape.nHeads * shape.headDim);
  const ks = rng.uniformArray(seqLen * kvDim), vs = rng.uniformArray(seqLen * kvDim);
  const wide = attention(qs, ks, vs, seqLen, shape, seqLen);
  expect(compare(wide, attention(qs, ks, vs, seqLen, shape)).maxAbsError).toBeLessThan(1e-6);
});
