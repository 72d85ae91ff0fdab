/**
 * Registry entries of the attention family: single-sequence attention (its default and split
 * layouts, the tiled prefill variant), attention over an f16 or Q8_0 cache, and batched attention
 * over a paged or sliding-window pool, each against its `reference/` oracle. No Deno APIs: these
 * run in a browser too.
 *
 * @module
 */
import { attentionKernel } from "./attention.ts";
import { batchAttentionKernel } from "./batch.ts";
import { tiledAttentionKernel } from "./tiled.ts";
import { type BatchRowEntry, batchRowWords } from "../batch_rows.ts";
import { packKvCache } from "../kv_cache.ts";
import { type KernelPair, type KernelVariant, PRODUCT } from "../pair.ts";
import { createState } from "../state.ts";
import { type AttentionShape, cachedAttention, windowStart } from "../../reference/attention.ts";
import { KvCache } from "../../reference/kv_cache.ts";
import { pagedAttention } from "../../reference/paged_kv_cache.ts";
import { Rng } from "../../reference/random.ts";
import { slidingWindowAttention } from "../../reference/sliding_kv_cache.ts";
/** Shape of the attention family: `rows` queries from position `pos`. */
export interface AttentionPairShape extends AttentionShape {
  /** Tokens (rows) in one call. */
  rows: number;
  /** Position of the first row. */
  pos: number;
  /** Workgroups splitting each head's keys (the kernel's choice if absent). */
  splits?: number;
}

/**
 * The tiled prefill attention as a variant of the attention family (prefill rows only; the
 * `splits` of a shape do not apply to it).
 */
export const TILED_ATTENTION_VARIANT: KernelVariant<
  AttentionPairShape,
  { q: Float32Array; keys: Float32Array; values: Float32Array }
> = {
  name: "tiled",
  applies: ({ rows, splits }) => rows > 1 && splits === undefined,
  record: async (gpu, { rows, nHeads, nKvHeads, headDim, pos }, inputs, buffers) =>
    (await tiledAttentionKernel(gpu, { rows, nHeads, nKvHeads, headDim })).bind({
      q: buffers.input(inputs.q),
      keyCache: buffers.input(inputs.keys),
      valueCache: buffers.input(inputs.values),
      state: createState(gpu, { pos }),
      out: buffers.output(inputs.q.length),
    }),
};

/** Attention of `rows` new tokens against a cache holding positions up to `pos + rows - 1`. */
export const ATTENTION_PAIR: KernelPair<
  AttentionPairShape,
  { q: Float32Array; keys: Float32Array; values: Float32Array }
> = {
  family: "attention",
  kernel: ({ rows }) => rows === 1 ? "attention decode" : "attention prefill",
  describe: ({ rows, nHeads, nKvHeads, headDim, pos, splits }) =>
    `${rows}x${nHeads}/${nKvHeads}x${headDim} at ${pos}${splits ? ` split ${splits}` : ""}`,
  inputs({ rows, nHeads, nKvHeads, headDim, pos }) {
    const rng = new Rng(nHeads * 100 + nKvHeads * 10 + headDim + pos);
    const maxSeqLen = pos + rows + 3; // positions past the last query hold noise it must not see
    return {
      q: rng.uniformArray(rows * nHeads * headDim),
      keys: rng.uniformArray(maxSeqLen * nKvHeads * headDim),
      values: rng.uniformArray(maxSeqLen * nKvHeads * headDim),
    };
  },
  reference: ({ rows, pos, ...shape }, { q, keys, values }) =>
    cachedAttention(q, keys, values, pos, rows, shape),
  conformance: [
    { rows: 1, nHeads: 1, nKvHeads: 1, headDim: 1, pos: 0 },
    { rows: 1, nHeads: 6, nKvHeads: 6, headDim: 48, pos: 32 },
    { rows: 1, nHeads: 12, nKvHeads: 6, headDim: 64, pos: 100 },
    { rows: 1, nHeads: 32, nKvHeads: 8, headDim: 128, pos: 257 },
    { rows: 1, nHeads: 32, nKvHeads: 4, headDim: 128, pos: 300 },
    { rows: 1, nHeads: 8, nKvHeads: 1, headDim: 64, pos: 64 },
    { rows: 1, nHeads: 2, nKvHeads: 1, headDim: 257, pos: 65 },
    { rows: 1, nHeads: 32, nKvHeads: 2, headDim: 64, pos: 200 }, // two workgroups per KV head
    { rows: 1, nHeads: 32, nKvHeads: 1, headDim: 64, pos: 150 },
    { rows: 1, nHeads: 8, nKvHeads: 2, headDim: 64, pos: 700, splits: 1 }, // one walks every chunk
    { rows: 1, nHeads: 8, nKvHeads: 2, headDim: 64, pos: 700, splits: 3 }, // uneven chunk shares
    { rows: 1, nHeads: 8, nKvHeads: 1, headDim: 64, pos: 40, splits: 8 }, // idle splits
    { rows: 3, nHeads: 8, nKvHeads: 8, headDim: 64, pos: 300, splits: 2 },
    { rows: 5, nHeads: 24, nKvHeads: 1, headDim: 48, pos: 130 },
    { rows: 7, nHeads: 8, nKvHeads: 4, headDim: 64, pos: 0 },
    { rows: 33, nHeads: 6, nKvHeads: 6, headDim: 48, pos: 0 },
    { rows: 7, nHeads: 8, nKvHeads: 2, headDim: 64, pos: 60 },
    { rows: 3, nHeads: 32, nKvHeads: 4, headDim: 128, pos: 129 },
    // past ~480 keys a loop per feature ran out of llvmpipe's loop budget (see attention_tiled.ts)
    { rows: 2, nHeads: 8, nKvHeads: 8, headDim: 64, pos: 560 },
    { rows: 5, nHeads: 2, nKvHeads: 1, headDim: 50, pos: 700 }, // a partial last vec4
  ],
  bench: {
    quick: [{ rows: 1, nHeads: 6, nKvHeads: 6, headDim: 48, pos: 127 }],
    full: [
      { rows: 1, nHeads: 32, nKvHeads: 4, headDim: 64, pos: 1023 },
      { rows: 1, nHeads: 32, nKvHeads: 32, headDim: 128, pos: 1023 },
    ],
  },
  // q read, out written, the keys and values of positions 0..pos+rows-1 read once
  bytes: ({ rows, nHeads, nKvHeads, headDim, pos }) =>
    4 * (2 * rows * nHeads * headDim + 2 * (pos + rows) * nKvHeads * headDim),
  // per query head and visible key: a dot product and a weighted sum, 2·headDim each
  flops: ({ rows, nHeads, headDim, pos }) =>
    4 * nHeads * headDim * (rows * (pos + 1) + rows * (rows - 1) / 2),
  tolerance: PRODUCT,
  variants: [{
    name: "default",
    record: async (gpu, { rows, nHeads, nKvHeads, headDim, pos, splits }, inputs, buffers) =>
      (await attentionKernel(gpu, { rows, nHeads, nKvHeads, headDim, splits })).bind({
        q: buffers.input(inputs.q),
        keyCache: buffers.input(inputs.keys),
        valueCache: buffers.input(inputs.values),
        state: createState(gpu, { pos }),
        out: buffers.output(inputs.q.length),
      }),
  }, TILED_ATTENTION_VARIANT],
};

/** Shape of attention over a quantized KV cache. */
export interface QuantAttentionPairShape {
  /** Tokens (rows) in one call. */
  rows: number;
  /** Query heads. */
  nHeads: number;
  /** Key/value heads. */
  nKvHeads: number;
  /** Features per head. */
  headDim: number;
  /** Position of the first row. */
  pos: number;
}

/** Inputs of attention over a quantized cache: queries and the f32 keys and values to store. */
export type QuantAttentionInputs = { q: Float32Array; keys: Float32Array; values: Float32Array };

function quantAttentionPair(
  format: "f16" | "q8_0",
): KernelPair<QuantAttentionPairShape, QuantAttentionInputs> {
  const maxSeqLen = (s: QuantAttentionPairShape) => s.pos + s.rows + 3;
  const kvBytes = format === "f16" ? 2 : 36 / 32;
  return {
    family: `attention ${format} cache`,
    kernel: ({ rows }) => `attention ${rows === 1 ? "decode" : "prefill"} ${format} KV`,
    describe: ({ rows, nHeads, nKvHeads, headDim, pos }) =>
      `${rows}x${nHeads}/${nKvHeads}x${headDim} at ${pos}`,
    inputs(shape) {
      const { rows, nHeads, nKvHeads, headDim } = shape;
      const rng = new Rng(nHeads * 100 + nKvHeads * 10 + headDim + shape.pos);
      // The caches hold what a KvCache in the format holds: each position quantized.
      const cache = new KvCache(
        { nLayers: 1, maxSeqLen: maxSeqLen(shape), nKvHeads, headDim },
        format,
      );
      const kvDim = nKvHeads * headDim;
      for (let p = 0; p < maxSeqLen(shape); p++) {
        cache.write(0, p, rng.uniformArray(kvDim, -2, 2), rng.uniformArray(kvDim));
      }
      return {
        q: rng.uniformArray(rows * nHeads * headDim),
        keys: cache.keys[0],
        values: cache.values[0],
      };
    },
    reference: ({ rows, pos, ...shape }, { q, keys, values }) =>
      cachedAttention(q, keys, values, pos, rows, shape),
    conformance: [
      { rows: 1, nHeads: 4, nKvHeads: 4, headDim: 8, pos: 20 },
      { rows: 1, nHeads: 8, nKvHeads: 2, headDim: 64, pos: 300 },
      { rows: 7, nHeads: 8, nKvHeads: 4, headDim: 64, pos: 40 },
    ],
    bench: {
      quick: [{ rows: 1, nHeads: 6, nKvHeads: 6, headDim: 48, pos: 127 }],
      full: [{ rows: 1, nHeads: 32, nKvHeads: 4, headDim: 64, pos: 1023 }],
    },
    bytes: ({ rows, nHeads, nKvHeads, headDim, pos }) =>
      4 * 2 * rows * nHeads * headDim + kvBytes * 2 * (pos + rows) * nKvHeads * headDim,
    flops: ({ rows, nHeads, headDim, pos }) =>
      4 * nHeads * headDim * (rows * (pos + 1) + rows * (rows - 1) / 2),
    tolerance: PRODUCT,
    variants: [{
      name: "default",
      record: async (gpu, shape, inputs, buffers) => {
        const { rows, nHeads, nKvHeads, headDim, pos } = shape;
        const kvDim = nKvHeads * headDim;
        const kernel = await attentionKernel(gpu, {
          rows,
          nHeads,
          nKvHeads,
          headDim,
          kvFormat: format,
          maxSeqLen: maxSeqLen(shape),
        });
        return kernel.bind({
          q: buffers.input(inputs.q),
          keyCache: buffers.input(packKvCache(inputs.keys, format, kvDim)),
          valueCache: buffers.input(packKvCache(inputs.values, format, kvDim)),
          state: createState(gpu, { pos }),
          out: buffers.output(inputs.q.length),
        });
      },
    }],
  };
}

/** Attention over an f16 KV cache (keys and values unpacked as they are read). */
export const ATTENTION_F16_PAIR: KernelPair<QuantAttentionPairShape, QuantAttentionInputs> =
  quantAttentionPair("f16");

/** Attention over a Q8_0 KV cache (dequantized as it is read). */
export const ATTENTION_Q8_0_PAIR: KernelPair<QuantAttentionPairShape, QuantAttentionInputs> =
  quantAttentionPair("q8_0");

/**
 * Shape of batched attention: one row per sequence at `positions[r]`, its keys and values in a
 * pool of blocks of `blockSize` positions (`ring`: each sequence one ring of `blockSize`
 * positions); a row sees the last `window` positions (default: all; a ring: `blockSize`).
 */
export interface BatchAttentionPairShape extends AttentionShape {
  /** Each row's position. */
  positions: number[];
  /** Positions per pool block. */
  blockSize: number;
  /** Whether each sequence's block is a ring. */
  ring: boolean;
  /** Positions a token sees. */
  window?: number;
}

/** Inputs of batched attention. */
export interface BatchAttentionInputs {
  /** Queries, `(rows, nHeads·headDim)`. */
  q: Float32Array;
  /** Key pool, `(poolRows, nKvHeads·headDim)`. */
  keyPool: Float32Array;
  /** Value pool, like the keys. */
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
    quick: [{
      positions: [127, 127, 127, 127],
      nHeads: 6,
      nKvHeads: 6,
      headDim: 48,
      blockSize: 16,
      ring: false,
    }],
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
