/**
 * Registry entries of the batched-decoding kernels (see `_pairs.ts`): attention over a shared
 * KV pool under every layout, RoPE at per-row positions, and the KV scatter into pool slots.
 * Each row of a case is its own sequence, its blocks scattered through the pool in a seeded
 * shuffle, so that addressing through the block table is what gets tested.
 *
 * No Deno APIs: this module runs in a browser too.
 *
 * @module
 */
import { EXACT, type KernelPair, PRODUCT, TIGHT } from "./_pair.ts";
import { batchAttentionKernel } from "./batch_attention.ts";
import { type BatchRowEntry, batchRowWords } from "./batch_rows.ts";
import { kvScatterKernel } from "./kv_cache.ts";
import { batchRopeKernel } from "./rope.ts";
import { type AttentionShape, windowStart } from "../reference/attention.ts";
import { pagedAttention } from "../reference/paged_kv_cache.ts";
import { Rng } from "../reference/random.ts";
import { rope, type RopeLayout, ropeTable } from "../reference/rope.ts";
import { slidingWindowAttention } from "../reference/sliding_kv_cache.ts";

/**
 * Shape of batched attention: one row per sequence at `positions[r]`, its keys and values in a
 * pool of blocks of `blockSize` positions (`ring`: each sequence one ring of `blockSize`
 * positions); a row sees the last `window` positions (default: all; a ring: `blockSize`).
 */
export interface BatchAttentionPairShape extends AttentionShape {
  positions: number[];
  blockSize: number;
  ring: boolean;
  window?: number;
}

interface BatchAttentionInputs {
  q: Float32Array;
  keyPool: Float32Array;
  valuePool: Float32Array;
  /** Each row's block table (ring: one ring id). */
  tables: number[][];
}

const blocksOf = ({ positions, blockSize, ring }: BatchAttentionPairShape, r: number) =>
  ring ? 1 : Math.floor(positions[r] / blockSize) + 1;

const poolBlocks = (shape: BatchAttentionPairShape) =>
  shape.positions.reduce((sum, _, r) => sum + blocksOf(shape, r), 0) + 3; // 3 spare: noise

const windowOf = ({ ring, blockSize, window }: BatchAttentionPairShape) =>
  window ?? (ring ? blockSize : Infinity);

const startOf = (shape: BatchAttentionPairShape, pos: number) => windowStart(pos, windowOf(shape));

/** Each row's query against its own sequence in the pool, through its block table. */
export const BATCH_ATTENTION_PAIR: KernelPair<BatchAttentionPairShape, BatchAttentionInputs> = {
  family: "batchAttention",
  describe: ({ positions, nHeads, nKvHeads, headDim, blockSize, ring, window }) =>
    `${positions.length}x${nHeads}/${nKvHeads}x${headDim} at ${positions.join(",")} ${
      ring ? "ring" : "block"
    } ${blockSize}${window ? ` window ${window}` : ""}`,
  inputs(shape) {
    const { positions, nHeads, nKvHeads, headDim, blockSize } = shape;
    const rng = new Rng(nHeads * 1000 + headDim * 10 + blockSize + positions.length);
    const kvDim = nKvHeads * headDim;
    const blocks = poolBlocks(shape);
    // A seeded shuffle of the pool's blocks, dealt to the rows in turn.
    const order = Array.from({ length: blocks }, (_, i) => i);
    for (let i = blocks - 1; i > 0; i--) {
      const j = Math.floor(rng.next() * (i + 1));
      [order[i], order[j]] = [order[j], order[i]];
    }
    const tables = positions.map((_, r) => order.splice(0, blocksOf(shape, r)));
    return {
      q: rng.uniformArray(positions.length * nHeads * headDim),
      keyPool: rng.uniformArray(blocks * blockSize * kvDim),
      valuePool: rng.uniformArray(blocks * blockSize * kvDim),
      tables,
    };
  },
  reference(shape, { q, keyPool, valuePool, tables }) {
    const { positions, nHeads, headDim, blockSize, ring } = shape;
    const qDim = nHeads * headDim, kvDim = shape.nKvHeads * headDim;
    const out = new Float32Array(positions.length * qDim);
    positions.forEach((pos, r) => {
      const qr = q.subarray(r * qDim, (r + 1) * qDim);
      if (ring) {
        const ringOf = (pool: Float32Array) =>
          pool.subarray(tables[r][0] * blockSize * kvDim, (tables[r][0] + 1) * blockSize * kvDim);
        const at = slidingWindowAttention(
          qr,
          ringOf(keyPool),
          ringOf(valuePool),
          pos,
          windowOf(shape),
          shape,
          blockSize,
        );
        out.set(at, r * qDim);
      } else {
        const table = Int32Array.from(tables[r]);
        const at = pagedAttention(
          qr,
          keyPool,
          valuePool,
          table,
          blockSize,
          pos,
          shape,
          startOf(shape, pos),
        );
        out.set(at, r * qDim);
      }
    });
    return out;
  },
  conformance: [
    { positions: [0], nHeads: 1, nKvHeads: 1, headDim: 1, blockSize: 1, ring: false },
    { positions: [5, 0, 63, 17], nHeads: 4, nKvHeads: 2, headDim: 8, blockSize: 16, ring: false },
    { positions: [300, 7], nHeads: 6, nKvHeads: 6, headDim: 48, blockSize: 16, ring: false },
    { positions: [129, 64, 1], nHeads: 32, nKvHeads: 8, headDim: 128, blockSize: 32, ring: false },
    {
      positions: [70, 3],
      nHeads: 2,
      nKvHeads: 1,
      headDim: 130,
      blockSize: 16,
      ring: false,
      window: 37,
    },
    { positions: [200, 3, 49, 50], nHeads: 4, nKvHeads: 2, headDim: 16, blockSize: 50, ring: true },
    {
      positions: [200, 3, 49, 50],
      nHeads: 4,
      nKvHeads: 2,
      headDim: 16,
      blockSize: 50,
      ring: true,
      window: 37, // a ring longer than the window, as the decoder sizes it
    },
    { positions: [99, 0], nHeads: 8, nKvHeads: 1, headDim: 64, blockSize: 100, ring: false },
  ],
  bench: {
    quick: [],
    full: [{
      positions: Array(16).fill(1023),
      nHeads: 32,
      nKvHeads: 8,
      headDim: 64,
      blockSize: 16,
      ring: false,
    }],
  },
  // q read, out written, each row's visible keys and values read once
  bytes: (shape) => {
    const { positions, nHeads, nKvHeads, headDim } = shape;
    const visible = positions.reduce((sum, pos) => sum + pos - startOf(shape, pos) + 1, 0);
    return 4 * (2 * positions.length * nHeads * headDim + 2 * visible * nKvHeads * headDim);
  },
  flops: (shape) =>
    shape.positions.reduce(
      (sum, pos) => sum + 4 * shape.nHeads * shape.headDim * (pos - startOf(shape, pos) + 1),
      0,
    ),
  tolerance: PRODUCT,
  variants: [{
    name: "default",
    async record(gpu, shape, { q, keyPool, valuePool, tables }, buffers) {
      const { positions, nHeads, nKvHeads, headDim, blockSize, ring } = shape;
      const offsets = tables.map((_, r) => tables.slice(0, r).flat().length);
      const entries: BatchRowEntry[] = positions.map((pos, r) => ({
        pos,
        slot: 0,
        table: offsets[r],
        start: startOf(shape, pos),
      }));
      const kernel = await batchAttentionKernel(gpu, {
        rows: positions.length,
        nHeads,
        nKvHeads,
        headDim,
        blockSize,
        ring,
      });
      return kernel.bind({
        q: buffers.input(q),
        keyPool: buffers.input(keyPool),
        valuePool: buffers.input(valuePool),
        out: buffers.output(q.length),
        rows: buffers.input(batchRowWords(entries)),
        tables: buffers.input(Uint32Array.from(tables.flat())),
      });
    },
  }],
};

/** Shape of per-row RoPE: row `r` at `positions[r]`. */
export interface BatchRopePairShape {
  positions: number[];
  nHeads: number;
  headDim: number;
  layout?: RopeLayout;
}

/** RoPE in place, each row at its own position. */
export const BATCH_ROPE_PAIR: KernelPair<BatchRopePairShape, { x: Float32Array }> = {
  family: "batchRope",
  describe: ({ positions, nHeads, headDim, layout = "interleaved" }) =>
    `${positions.length}x${nHeads}x${headDim} at ${positions.join(",")} ${layout}`,
  inputs: ({ positions, nHeads, headDim }) => ({
    x: new Rng(nHeads * headDim + positions.length).uniformArray(
      positions.length * nHeads * headDim,
    ),
  }),
  reference({ positions, nHeads, headDim, layout }, { x }) {
    const width = nHeads * headDim;
    const out = new Float32Array(x.length);
    positions.forEach((pos, r) =>
      out.set(rope(x.subarray(r * width, (r + 1) * width), pos, headDim, { layout }), r * width)
    );
    return out;
  },
  conformance: [
    { positions: [0], nHeads: 1, headDim: 2 },
    { positions: [17, 0, 63, 5], nHeads: 3, headDim: 8 },
    { positions: [1000, 3, 511], nHeads: 32, headDim: 128 },
    { positions: [1000, 3, 511], nHeads: 32, headDim: 128, layout: "half" },
  ],
  bench: { quick: [], full: [] },
  bytes: ({ positions, nHeads, headDim }) =>
    4 * (2 * positions.length * nHeads * headDim + positions.length * headDim),
  flops: ({ positions, nHeads, headDim }) => 3 * positions.length * nHeads * headDim,
  tolerance: TIGHT,
  variants: [{
    name: "default",
    async record(gpu, { positions, nHeads, headDim, layout }, { x }, buffers) {
      const maxSeqLen = Math.max(...positions) + 1;
      const kernel = await batchRopeKernel(gpu, {
        rows: positions.length,
        nHeads,
        headDim,
        maxSeqLen,
        layout,
      });
      return kernel.bind({
        x: buffers.output(x.length, x),
        table: buffers.input(ropeTable(headDim, maxSeqLen)),
        rows: buffers.input(
          batchRowWords(positions.map((pos) => ({ pos, slot: 0, table: 0, start: 0 }))),
        ),
      });
    },
  }],
};

/** Shape of the KV scatter: row `r`'s key and value to pool row `slots[r]`. */
export interface KvScatterPairShape {
  slots: number[];
  kvDim: number;
  poolRows: number;
}

/** Writes `k, v (rows, kvDim)` into both pools at each row's slot; other rows untouched. */
export const KV_SCATTER_PAIR: KernelPair<
  KvScatterPairShape,
  { k: Float32Array; v: Float32Array; keys: Float32Array; values: Float32Array }
> = {
  family: "kvScatter",
  describe: ({ slots, kvDim, poolRows }) =>
    `${slots.length}x${kvDim} to ${slots.join(",")} of ${poolRows}`,
  inputs({ slots, kvDim, poolRows }) {
    const rng = new Rng(kvDim + poolRows);
    return {
      k: rng.uniformArray(slots.length * kvDim),
      v: rng.uniformArray(slots.length * kvDim),
      keys: rng.uniformArray(poolRows * kvDim),
      values: rng.uniformArray(poolRows * kvDim),
    };
  },
  reference({ slots, kvDim }, { k, v, keys, values }) {
    const out = new Float32Array(keys.length + values.length);
    out.set(keys);
    out.set(values, keys.length);
    slots.forEach((slot, r) => {
      out.set(k.subarray(r * kvDim, (r + 1) * kvDim), slot * kvDim);
      out.set(v.subarray(r * kvDim, (r + 1) * kvDim), keys.length + slot * kvDim);
    });
    return out;
  },
  conformance: [
    { slots: [0], kvDim: 1, poolRows: 1 },
    { slots: [6, 2, 0, 4], kvDim: 33, poolRows: 8 },
    { slots: [130, 17, 64], kvDim: 256, poolRows: 160 },
  ],
  bench: { quick: [], full: [] },
  bytes: ({ slots, kvDim }) => 4 * 4 * slots.length * kvDim,
  flops: () => 0,
  tolerance: EXACT,
  variants: [{
    name: "default",
    record: async (gpu, { slots, kvDim }, { k, v, keys, values }, buffers) =>
      (await kvScatterKernel(gpu, { rows: slots.length, kvDim })).bind({
        k: buffers.input(k),
        v: buffers.input(v),
        keyPool: buffers.output(keys.length, keys),
        valuePool: buffers.output(values.length, values),
        rows: buffers.input(
          batchRowWords(slots.map((slot) => ({ pos: 0, slot, table: 0, start: 0 }))),
        ),
      }),
  }],
};
