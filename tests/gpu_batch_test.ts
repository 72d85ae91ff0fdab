import { expect } from "expect";
import { BATCH_ROW_WORDS, batchAttentionKernel } from "../gpu/batch_attention.ts";
import { batchKvWriteKernel, batchRopeKernel } from "../gpu/batch_kv.ts";
import {
  compare,
  pagedAttention,
  Rng,
  rope,
  ropeTable,
  slidingWindowAttention,
  windowStart,
} from "../reference/mod.ts";
import { gpuTest } from "./_gpu.ts";

interface Row {
  pos: number;
  slot: number;
  table: number;
  start: number;
}

function rowBuffer(rows: Row[]): Uint32Array {
  const data = new Uint32Array(rows.length * BATCH_ROW_WORDS);
  rows.forEach((r, i) => data.set([r.pos, r.slot, r.table, r.start], i * BATCH_ROW_WORDS));
  return data;
}

for (
  const [nHeads, nKvHeads, headDim] of [[4, 2, 8], [8, 8, 64], [6, 1, 48], [2, 1, 130]] as const
) {
  gpuTest(
    `batched paged attention ${nHeads}/${nKvHeads}x${headDim} matches pagedAttention per row`,
    async (gpu) => {
      const rng = new Rng(nHeads * 100 + headDim);
      const shape = { nHeads, nKvHeads, headDim };
      const kvDim = nKvHeads * headDim, qDim = nHeads * headDim;
      const blockSize = 16, numBlocks = 24;
      const keyPool = rng.uniformArray(numBlocks * blockSize * kvDim);
      const valuePool = rng.uniformArray(numBlocks * blockSize * kvDim);
      // Three sequences with shuffled blocks; one row sees a sliding window of 37.
      const tables = [[5, 0, 17, 3, 9, 21, 2, 11], [4, 13], [8, 1, 20, 7, 15, 6]];
      const offsets = [0, 8, 10];
      const rows = [
        { seq: 0, pos: 127, start: 0 },
        { seq: 1, pos: 0, start: 0 },
        { seq: 2, pos: 70, start: windowStart(70, 37) },
        { seq: 1, pos: 31, start: 0 },
      ];
      const q = rng.uniformArray(rows.length * qDim);
      const kernel = await batchAttentionKernel(gpu, {
        rows: rows.length,
        ...shape,
        blockSize,
        ring: false,
      });
      const out = gpu.createBuffer(rows.length * qDim * 4);
      await gpu.submit([kernel.bind({
        q: gpu.upload(q),
        keyPool: gpu.upload(keyPool),
        valuePool: gpu.upload(valuePool),
        out,
        rows: gpu.upload(rowBuffer(rows.map((r) => ({ ...r, slot: 0, table: offsets[r.seq] })))),
        tables: gpu.upload(Uint32Array.from(tables.flat())),
      })]);
      const actual = await gpu.readFloat32(out);
      rows.forEach((r, i) => {
        const expected = pagedAttention(
          q.subarray(i * qDim, (i + 1) * qDim),
          keyPool,
          valuePool,
          Int32Array.from(tables[r.seq]),
          blockSize,
          r.pos,
          shape,
          r.start,
        );
        const stats = compare(actual.subarray(i * qDim, (i + 1) * qDim), expected);
        expect(stats.firstNonFinite).toBe(-1);
        expect(stats.nmse).toBeLessThan(1e-9);
      });
    },
  );
}

gpuTest("batched ring attention matches slidingWindowAttention per row", async (gpu) => {
  const rng = new Rng(5);
  const shape = { nHeads: 4, nKvHeads: 2, headDim: 16 };
  const kvDim = 32, qDim = 64, window = 50, rings = 3;
  const keyPool = rng.uniformArray(rings * window * kvDim);
  const valuePool = rng.uniformArray(rings * window * kvDim);
  const rows = [{ ring: 2, pos: 200 }, { ring: 0, pos: 3 }, { ring: 1, pos: 49 }, {
    ring: 1,
    pos: 50,
  }];
  const q = rng.uniformArray(rows.length * qDim);
  const kernel = await batchAttentionKernel(gpu, {
    rows: rows.length,
    ...shape,
    blockSize: window,
    ring: true,
  });
  const out = gpu.createBuffer(rows.length * qDim * 4);
  await gpu.submit([kernel.bind({
    q: gpu.upload(q),
    keyPool: gpu.upload(keyPool),
    valuePool: gpu.upload(valuePool),
    out,
    rows: gpu.upload(
      rowBuffer(
        rows.map((r, i) => ({ pos: r.pos, slot: 0, table: i, start: windowStart(r.pos, window) })),
      ),
    ),
    tables: gpu.upload(Uint32Array.from(rows.map((r) => r.ring))),
  })]);
  const actual = await gpu.readFloat32(out);
  rows.forEach((r, i) => {
    const ring = (pool: Float32Array) =>
      pool.subarray(r.ring * window * kvDim, (r.ring + 1) * window * kvDim);
    const expected = slidingWindowAttention(
      q.subarray(i * qDim, (i + 1) * qDim),
      ring(keyPool),
      ring(valuePool),
      r.pos,
      window,
      shape,
    );
    expect(compare(actual.subarray(i * qDim, (i + 1) * qDim), expected).nmse).toBeLessThan(1e-9);
  });
});

gpuTest(
  "batched RoPE rotates each row at its own position; the KV write scatters rows to slots",
  async (gpu) => {
    const rng = new Rng(9);
    const nHeads = 3, headDim = 8, width = nHeads * headDim, maxSeqLen = 64;
    const positions = [17, 0, 63, 5];
    const x = rng.uniformArray(positions.length * width);
    const rows = gpu.upload(
      rowBuffer(positions.map((pos, i) => ({ pos, slot: [6, 2, 0, 4][i], table: 0, start: 0 }))),
    );
    const xBuffer = gpu.upload(x);
    const ropeKernel = await batchRopeKernel(gpu, {
      rows: positions.length,
      nHeads,
      headDim,
      maxSeqLen,
    });
    const keyPool = gpu.createBuffer(8 * width * 4), valuePool = gpu.createBuffer(8 * width * 4);
    const v = rng.uniformArray(positions.length * width);
    const write = await batchKvWriteKernel(gpu, positions.length, width);
    await gpu.submit([
      ropeKernel.bind({ x: xBuffer, table: gpu.upload(ropeTable(headDim, maxSeqLen)), rows }),
      write.bind({ k: xBuffer, v: gpu.upload(v), keyPool, valuePool, rows }),
    ]);
    const rotated = await gpu.readFloat32(xBuffer);
    const keys = await gpu.readFloat32(keyPool), values = await gpu.readFloat32(valuePool);
    positions.forEach((pos, i) => {
      const expected = rope(x.subarray(i * width, (i + 1) * width), pos, headDim);
      expect(compare(rotated.subarray(i * width, (i + 1) * width), expected).maxAbsError)
        .toBeLessThan(1e-5);
      const slot = [6, 2, 0, 4][i];
      expect(Array.from(keys.subarray(slot * width, (slot + 1) * width)))
        .toEqual(Array.from(rotated.subarray(i * width, (i + 1) * width)));
      expect(Array.from(values.subarray(slot * width, (slot + 1) * width)))
        .toEqual(Array.from(v.subarray(i * width, (i + 1) * width)));
    });
    // Untouched slots stay zero.
    expect(keys.subarray(width, 2 * width).every((k) => k === 0)).toBe(true);
  },
);
