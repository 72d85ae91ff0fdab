/**
 * The kernel-pair registry: one entry per kernel family pairing the WGSL kernel with its
 * `reference/` oracle (inputs, shapes, bytes, FLOPs, tolerance, variants). The kernel tests,
 * `deno task conformance`, the benchmark's kernel table and `deno bench bench/` iterate
 * {@linkcode KERNEL_PAIRS}: adding a kernel, or a variant, is one entry here.
 *
 * Adding a variant (a tiled matmul, an f16-weight matvec...): append to the family's
 * `variants` a `{ name, features?, applies?, tolerance?, record }`; `record` compiles and binds
 * it on the entry's inputs, allocating through `buffers` (`input` uploads, `output` is what
 * conformance guards and compares with the entry's `reference`, in allocation order). It then
 * shows up in the kernel tests, `deno task conformance` (its `variant` column), the bench
 * kernel table and `deno bench`, skipped where its features or predicate rule it out.
 *
 * No Deno APIs: this module runs in a browser too.
 *
 * @module
 */
import { type AnyKernelPair, EXACT, type KernelPair, PRODUCT, TIGHT } from "./_pair.ts";
import { addKernel } from "./add.ts";
import { attentionKernel } from "./attention.ts";
import { copyKernel } from "./copy.ts";
import { embeddingDispatches, embeddingKernel } from "./embedding.ts";
import { kvAppendKernel } from "./kv_cache.ts";
import { matmulDispatches, uploadMatrix } from "./matmul.ts";
import { rmsNormKernel } from "./norm.ts";
import { ropeKernel } from "./rope.ts";
import { argmaxKernel } from "./sampling.ts";
import { softmaxKernel } from "./softmax.ts";
import { createState, STATE_WORDS, stateWords } from "./state.ts";
import { siluMulKernel } from "./swiglu.ts";
import { PROJECTION_PAIR, TILED_ATTENTION_VARIANT } from "./_variant_pairs.ts";
import { BATCH_ATTENTION_PAIR, BATCH_ROPE_PAIR, KV_SCATTER_PAIR } from "./_batch_pairs.ts";
import {
  ATTENTION_F16_PAIR,
  ATTENTION_Q8_0_PAIR,
  MATMUL_F16_PAIR,
  MATMUL_Q4_0_PAIR,
  MATMUL_Q8_0_PAIR,
} from "./_quant_pairs.ts";
import { add } from "../reference/add.ts";
import { type AttentionShape, cachedAttention } from "../reference/attention.ts";
import { embedding } from "../reference/embedding.ts";
import { matmul } from "../reference/matmul.ts";
import { rmsNorm } from "../reference/norm.ts";
import { Rng } from "../reference/random.ts";
import { type RopeLayout, ropeRows, ropeTable } from "../reference/rope.ts";
import { gumbelSample } from "../reference/sampling.ts";
import { softmax } from "../reference/softmax.ts";
import { siluMul } from "../reference/swiglu.ts";

/** Shape of the matmul family: `x (rows, inDim)` times `Wᵀ`, W `(outDim, inDim)`. */
export interface MatmulPairShape {
  rows: number;
  outDim: number;
  inDim: number;
  /** Workgroup size to compile with (the kernel's default if absent). */
  workgroupSize?: number;
}

/** `out = x · Wᵀ`, one matvec per row. */
export const MATMUL_PAIR: KernelPair<MatmulPairShape, { w: Float32Array; x: Float32Array }> = {
  family: "matmul",
  kernel: ({ rows }) => rows === 1 ? "matvec" : "matmul",
  describe: ({ rows, outDim, inDim, workgroupSize }) =>
    `${rows}x${outDim}x${inDim}${workgroupSize ? ` wg${workgroupSize}` : ""}`,
  inputs({ rows, outDim, inDim }) {
    const rng = new Rng(outDim * 31 + inDim);
    return { w: rng.uniformArray(outDim * inDim), x: rng.uniformArray(rows * inDim) };
  },
  reference: ({ rows, outDim, inDim }, { w, x }) => matmul(w, x, rows, outDim, inDim),
  conformance: [
    { rows: 1, outDim: 1, inDim: 1 },
    { rows: 1, outDim: 7, inDim: 33 },
    { rows: 1, outDim: 257, inDim: 4099 },
    { rows: 1, outDim: 768, inDim: 288, workgroupSize: 32 },
    { rows: 1, outDim: 288, inDim: 768, workgroupSize: 128 },
    { rows: 1, outDim: 5632, inDim: 2048 },
    { rows: 1, outDim: 2048, inDim: 5632 },
    { rows: 7, outDim: 33, inDim: 257 },
    { rows: 7, outDim: 768, inDim: 288 },
    { rows: 3, outDim: 2048, inDim: 2048 },
  ],
  bench: {
    quick: [{ rows: 1, outDim: 768, inDim: 288 }, { rows: 1, outDim: 288, inDim: 768 }],
    full: [
      { rows: 1, outDim: 5632, inDim: 2048 },
      { rows: 1, outDim: 2048, inDim: 5632 },
      { rows: 1, outDim: 32000, inDim: 288 },
    ],
  },
  bytes: ({ rows, outDim, inDim }) => 4 * (outDim * inDim + rows * inDim + rows * outDim),
  flops: ({ rows, outDim, inDim }) => 2 * rows * outDim * inDim,
  tolerance: PRODUCT,
  variants: [{
    name: "default",
    record: (gpu, { rows, outDim, inDim, workgroupSize }, { w, x }, buffers) =>
      matmulDispatches(gpu, uploadMatrix(gpu, w, outDim, inDim), {
        rows,
        x: buffers.input(x),
        out: buffers.output(rows * outDim),
      }, { workgroupSize }),
  }],
};

/** RMSNorm of each row of `x (rows, dim)` with `weight (dim)`. */
export const RMS_NORM_PAIR: KernelPair<
  { rows: number; dim: number },
  { x: Float32Array; weight: Float32Array }
> = {
  family: "rmsNorm",
  describe: ({ rows, dim }) => `${rows}x${dim}`,
  inputs({ rows, dim }) {
    const rng = new Rng(dim + 7);
    return { x: rng.uniformArray(rows * dim), weight: rng.uniformArray(dim) };
  },
  reference: (_, { x, weight }) => rmsNorm(x, weight),
  conformance: [
    { rows: 1, dim: 1 },
    { rows: 3, dim: 7 },
    { rows: 1, dim: 4099 },
    { rows: 2, dim: 288 },
    { rows: 7, dim: 768 },
    { rows: 1, dim: 2048 },
  ],
  bench: { quick: [{ rows: 1, dim: 288 }], full: [{ rows: 1, dim: 2048 }] },
  bytes: ({ rows, dim }) => 4 * (2 * rows * dim + dim),
  flops: ({ rows, dim }) => 4 * rows * dim, // square-add, then scale and weight each element
  tolerance: TIGHT,
  variants: [{
    name: "default",
    record: async (gpu, shape, { x, weight }, buffers) =>
      (await rmsNormKernel(gpu, shape)).bind({
        x: buffers.input(x),
        weight: buffers.input(weight),
        out: buffers.output(x.length),
      }),
  }],
};

/** Softmax of each row of `x (rows, n)`; inputs in [-10, 10] so that rows are peaked. */
export const SOFTMAX_PAIR: KernelPair<{ rows: number; n: number }, { x: Float32Array }> = {
  family: "softmax",
  describe: ({ rows, n }) => `${rows}x${n}`,
  inputs: ({ rows, n }) => ({ x: new Rng(n + 3).uniformArray(rows * n).map((v) => v * 10) }),
  reference: ({ n }, { x }) => softmax(x, n),
  conformance: [{ rows: 1, n: 1 }, { rows: 3, n: 33 }, { rows: 1, n: 4099 }, { rows: 1, n: 32000 }],
  bench: { quick: [{ rows: 1, n: 512 }], full: [{ rows: 1, n: 32000 }] },
  bytes: ({ rows, n }) => 4 * 2 * rows * n,
  flops: ({ rows, n }) => 5 * rows * n, // max, subtract, exp, sum, divide
  tolerance: TIGHT,
  variants: [{
    name: "default",
    record: async (gpu, shape, { x }, buffers) =>
      (await softmaxKernel(gpu, shape)).bind({
        x: buffers.input(x),
        out: buffers.output(x.length),
      }),
  }],
};

/** SwiGLU's gating, `gate = silu(gate) ⊙ up`, in place; gate in [-4, 4]. */
export const SILU_MUL_PAIR: KernelPair<{ n: number }, { gate: Float32Array; up: Float32Array }> = {
  family: "siluMul",
  describe: ({ n }) => `${n}`,
  inputs({ n }) {
    const rng = new Rng(n + 5);
    return { gate: rng.uniformArray(n).map((v) => v * 4), up: rng.uniformArray(n) };
  },
  reference: (_, { gate, up }) => siluMul(gate, up),
  conformance: [{ n: 1 }, { n: 7 }, { n: 4099 }, { n: 768 }, { n: 5632 }],
  bench: { quick: [{ n: 768 }], full: [{ n: 5632 }] },
  bytes: ({ n }) => 4 * 3 * n,
  flops: ({ n }) => 5 * n, // negate, exp, add, divide, multiply
  tolerance: TIGHT,
  variants: [{
    name: "default",
    record: async (gpu, { n }, { gate, up }, buffers) =>
      (await siluMulKernel(gpu, n)).bind({ gate: buffers.output(n, gate), up: buffers.input(up) }),
  }],
};

/** The residual add, `x += delta`, in place. */
export const ADD_PAIR: KernelPair<{ n: number }, { x: Float32Array; delta: Float32Array }> = {
  family: "add",
  describe: ({ n }) => `${n}`,
  inputs({ n }) {
    const rng = new Rng(n + 11);
    return { x: rng.uniformArray(n), delta: rng.uniformArray(n) };
  },
  reference: (_, { x, delta }) => add(x, delta),
  conformance: [{ n: 1 }, { n: 257 }, { n: 288 }, { n: 2048 }],
  bench: { quick: [{ n: 288 }], full: [{ n: 2048 }] },
  bytes: ({ n }) => 4 * 3 * n,
  flops: ({ n }) => n,
  tolerance: TIGHT,
  variants: [{
    name: "default",
    record: async (gpu, { n }, { x, delta }, buffers) =>
      (await addKernel(gpu, n)).bind({ x: buffers.output(n, x), delta: buffers.input(delta) }),
  }],
};

/** Rows of a `(vocabSize, dim)` table for `rows` token ids (the first is the last id). */
export const EMBEDDING_PAIR: KernelPair<
  { rows: number; dim: number; vocabSize: number },
  { table: Float32Array; tokens: Uint32Array }
> = {
  family: "embedding",
  describe: ({ rows, dim, vocabSize }) => `${rows}x${dim} vocab ${vocabSize}`,
  inputs({ rows, dim, vocabSize }) {
    const rng = new Rng(vocabSize);
    const table = rng.uniformArray(vocabSize * dim);
    const tokens = Uint32Array.from(
      { length: rows },
      (_, t) => t === 0 ? vocabSize - 1 : rng.nextUint32() % vocabSize,
    );
    return { table, tokens };
  },
  reference: ({ dim }, { table, tokens }) => embedding(table, tokens, dim),
  conformance: [
    { rows: 1, dim: 1, vocabSize: 1 },
    { rows: 3, dim: 7, vocabSize: 33 },
    { rows: 5, dim: 288, vocabSize: 4099 },
    { rows: 2, dim: 2048, vocabSize: 257 },
  ],
  bench: { quick: [], full: [] },
  bytes: ({ rows, dim }) => 4 * (rows + 2 * rows * dim),
  flops: () => 0,
  tolerance: EXACT,
  variants: [{
    name: "default",
    record: async (gpu, shape, { table, tokens }, buffers) =>
      (await embeddingKernel(gpu, shape)).bind({
        table: buffers.input(table),
        tokens: buffers.input(tokens),
        out: buffers.output(shape.rows * shape.dim),
      }),
  }],
};

/** Shape of the RoPE family: `rows` tokens of `nHeads` heads from position `pos`. */
export interface RopePairShape {
  rows: number;
  nHeads: number;
  headDim: number;
  pos: number;
  layout: RopeLayout;
}

/** RoPE of `rows` tokens from `state.pos`, in place, angles from a table. */
export const ROPE_PAIR: KernelPair<RopePairShape, { x: Float32Array }> = {
  family: "rope",
  describe: ({ rows, nHeads, headDim, pos, layout }) =>
    `${rows}x${nHeads}x${headDim} pos ${pos} ${layout}`,
  inputs: ({ rows, nHeads, headDim, pos }) => ({
    x: new Rng(headDim * nHeads + pos).uniformArray(rows * nHeads * headDim),
  }),
  reference: ({ rows, headDim, pos, layout }, { x }) => ropeRows(x, pos, rows, headDim, { layout }),
  conformance: [
    { rows: 1, nHeads: 7, headDim: 2, pos: 0, layout: "interleaved" },
    { rows: 1, nHeads: 6, headDim: 48, pos: 5, layout: "interleaved" },
    { rows: 7, nHeads: 8, headDim: 64, pos: 100, layout: "interleaved" },
    { rows: 3, nHeads: 32, headDim: 128, pos: 1000, layout: "interleaved" },
    { rows: 1, nHeads: 6, headDim: 48, pos: 5, layout: "half" },
    { rows: 7, nHeads: 8, headDim: 64, pos: 100, layout: "half" },
    { rows: 3, nHeads: 32, headDim: 128, pos: 1000, layout: "half" },
  ],
  bench: {
    quick: [{ rows: 1, nHeads: 6, headDim: 48, pos: 255, layout: "interleaved" }],
    full: [{ rows: 1, nHeads: 32, headDim: 64, pos: 2047, layout: "interleaved" }],
  },
  // x read and written, one table row of (cos, sin) pairs per token
  bytes: ({ rows, nHeads, headDim }) => 4 * (2 * rows * nHeads * headDim + rows * headDim),
  flops: ({ rows, nHeads, headDim }) => 3 * rows * nHeads * headDim, // 6 per rotated pair
  tolerance: TIGHT,
  variants: [{
    name: "default",
    async record(gpu, { rows, nHeads, headDim, pos, layout }, { x }, buffers) {
      const maxSeqLen = pos + rows;
      const kernel = await ropeKernel(gpu, { rows, nHeads, headDim, maxSeqLen, layout });
      return kernel.bind({
        x: buffers.output(x.length, x),
        table: buffers.input(ropeTable(headDim, maxSeqLen)),
        state: createState(gpu, { pos }),
      });
    },
  }],
};

/** Shape of the KV-cache append: `rows` tokens of `kvDim` written at `pos`. */
export interface KvAppendPairShape {
  rows: number;
  kvDim: number;
  maxSeqLen: number;
  pos: number;
}

/** Appends `k, v (rows, kvDim)` to both caches at `state.pos`; rows past the end are dropped. */
export const KV_APPEND_PAIR: KernelPair<
  KvAppendPairShape,
  { k: Float32Array; v: Float32Array; keys: Float32Array; values: Float32Array }
> = {
  family: "kvAppend",
  describe: ({ rows, kvDim, maxSeqLen, pos }) => `${rows}x${kvDim} at ${pos} of ${maxSeqLen}`,
  inputs({ rows, kvDim, maxSeqLen, pos }) {
    const rng = new Rng(kvDim + pos);
    return {
      k: rng.uniformArray(rows * kvDim),
      v: rng.uniformArray(rows * kvDim),
      keys: rng.uniformArray(maxSeqLen * kvDim),
      values: rng.uniformArray(maxSeqLen * kvDim),
    };
  },
  reference({ rows, kvDim, maxSeqLen, pos }, { k, v, keys, values }) {
    const kept = Math.min(rows, maxSeqLen - pos) * kvDim;
    const out = new Float32Array(keys.length + values.length);
    out.set(keys);
    out.set(k.subarray(0, kept), pos * kvDim);
    out.set(values, keys.length);
    out.set(v.subarray(0, kept), keys.length + pos * kvDim);
    return out;
  },
  conformance: [
    { rows: 1, kvDim: 1, maxSeqLen: 1, pos: 0 },
    { rows: 7, kvDim: 33, maxSeqLen: 40, pos: 3 },
    { rows: 1, kvDim: 288, maxSeqLen: 16, pos: 15 },
    { rows: 3, kvDim: 256, maxSeqLen: 64, pos: 62 }, // the last row falls past maxSeqLen
  ],
  bench: { quick: [], full: [] },
  bytes: ({ rows, kvDim }) => 4 * 4 * rows * kvDim, // k and v read, written into the caches
  flops: () => 0,
  tolerance: EXACT,
  variants: [{
    name: "default",
    record: async (gpu, { rows, kvDim, maxSeqLen, pos }, { k, v, keys, values }, buffers) =>
      (await kvAppendKernel(gpu, { rows, kvDim, maxSeqLen })).bind({
        k: buffers.input(k),
        v: buffers.input(v),
        keyCache: buffers.output(keys.length, keys),
        valueCache: buffers.output(values.length, values),
        state: createState(gpu, { pos }),
      }),
  }],
};

/** Shape of the attention family: `rows` queries from position `pos`. */
export interface AttentionPairShape extends AttentionShape {
  rows: number;
  pos: number;
  /** Workgroups splitting each head's keys (the kernel's choice if absent). */
  splits?: number;
}

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

/** Shape of the token choice: `n` logits, greedy (temperature 0) or Gumbel-max sampling. */
export interface ArgmaxPairShape {
  n: number;
  /** Put the maximum at three ids (the lowest must win). */
  ties: boolean;
  temperature: number;
}

const ARGMAX_SEED = 1234;
/** Noise positions each sampling case draws at (greedy ignores the position). */
const argmaxPositions = ({ temperature }: ArgmaxPairShape) => temperature > 0 ? [0, 1, 2, 77] : [0];

/**
 * The chosen token, written into the state buffer: each output is the whole state, so a kernel
 * that wrote anything but `token` fails too.
 */
export const ARGMAX_PAIR: KernelPair<ArgmaxPairShape, { logits: Float32Array }> = {
  family: "argmax",
  kernel: ({ temperature }) => temperature > 0 ? "argmax gumbel" : "argmax",
  describe: ({ n, ties, temperature }) =>
    `${n}${ties ? " with ties" : ""}${temperature > 0 ? ` T=${temperature}` : ""}`,
  inputs({ n, ties }) {
    const logits = new Rng(n + 13).uniformArray(n);
    if (ties) { for (const i of [n - 1, Math.floor(n / 2), Math.floor(n / 3) + 1]) logits[i] = 2; }
    return { logits };
  },
  reference(shape, { logits }) {
    const states = argmaxPositions(shape).map((next) =>
      stateWords({ next, token: gumbelSample(logits, shape.temperature, ARGMAX_SEED, next) })
    );
    return Float32Array.from(states.flatMap((words) => [...words]));
  },
  conformance: [
    { n: 1, ties: false, temperature: 0 },
    { n: 7, ties: true, temperature: 0 },
    { n: 4099, ties: true, temperature: 0 },
    { n: 32000, ties: false, temperature: 0 },
    { n: 512, ties: false, temperature: 0.8 },
    { n: 32000, ties: false, temperature: 1 },
  ],
  bench: {
    quick: [{ n: 512, ties: false, temperature: 0 }],
    full: [{ n: 32000, ties: false, temperature: 0 }],
  },
  bytes: ({ n }) => 4 * (n + 1),
  flops: ({ n }) => n,
  tolerance: EXACT,
  variants: [{
    name: "default",
    async record(gpu, shape, { logits }, buffers) {
      const { n, temperature } = shape;
      const kernel = await argmaxKernel(gpu, n, { temperature, seed: ARGMAX_SEED });
      const logitsBuffer = buffers.input(logits);
      return argmaxPositions(shape).flatMap((next) =>
        kernel.bind({
          logits: logitsBuffer,
          state: buffers.output(STATE_WORDS, stateWords({ next }), "u32"),
        })
      );
    },
  }],
};

/**
 * A matrix split into 256-row blocks (as one too big for a binding is), read for the last
 * row of `x` only, as the decoder's classifier does after a prefill.
 */
export const MATMUL_SPLIT_PAIR: KernelPair<
  { rows: number; outDim: number; inDim: number },
  { w: Float32Array; x: Float32Array }
> = {
  family: "matmul split",
  describe: ({ rows, outDim, inDim }) => `${rows}x${outDim}x${inDim} in 256-row blocks, last row`,
  inputs({ rows, outDim, inDim }) {
    const rng = new Rng(4242);
    return { w: rng.uniformArray(outDim * inDim), x: rng.uniformArray(rows * inDim) };
  },
  reference: ({ rows, outDim, inDim }, { w, x }) =>
    matmul(w, x.subarray((rows - 1) * inDim), 1, outDim, inDim),
  conformance: [{ rows: 3, outDim: 1000, inDim: 36 }],
  bench: { quick: [], full: [] },
  bytes: ({ outDim, inDim }) => 4 * (outDim * inDim + inDim + outDim),
  flops: ({ outDim, inDim }) => 2 * outDim * inDim,
  tolerance: PRODUCT,
  variants: [{
    name: "default",
    async record(gpu, { rows, outDim, inDim }, { w, x }, buffers) {
      const matrix = uploadMatrix(gpu, w, outDim, inDim, {
        maxBindingBytes: 256 * inDim * 4 + 100,
      });
      if (matrix.chunks.length !== 4) {
        throw new Error(`blocks: expected 4, got ${matrix.chunks.length}`);
      }
      return await matmulDispatches(gpu, matrix, {
        rows: 1,
        x: buffers.input(x),
        out: buffers.output(outDim),
        xOffset: (rows - 1) * inDim,
      });
    },
  }],
};

/** The plain copy whose bandwidth is the benchmark's roofline; its reference is the input. */
export const COPY_PAIR: KernelPair<{ n: number }, { src: Float32Array }> = {
  family: "copy",
  describe: ({ n }) => `${n}`,
  inputs: ({ n }) => ({ src: new Rng(n).uniformArray(n) }),
  reference: (_, { src }) => src,
  conformance: [{ n: 4 }, { n: 4100 }],
  bench: { quick: [], full: [] },
  bytes: ({ n }) => 4 * 2 * n,
  flops: () => 0,
  tolerance: EXACT,
  variants: [{
    name: "default",
    record: async (gpu, { n }, { src }, buffers) =>
      (await copyKernel(gpu, n)).bind({ src: buffers.input(src), dst: buffers.output(n) }),
  }],
};

/** An embedding table split into 64-row blocks: each block writes the rows whose ids it holds. */
export const EMBEDDING_SPLIT_PAIR: KernelPair<
  { dim: number; vocabSize: number; tokens: readonly number[] },
  { table: Float32Array; tokens: Uint32Array }
> = {
  family: "embedding split",
  describe: ({ dim, vocabSize, tokens }) =>
    `${tokens.length}x${dim} vocab ${vocabSize} in 64-row blocks`,
  inputs: ({ dim, vocabSize, tokens }) => ({
    table: new Rng(77).uniformArray(vocabSize * dim),
    tokens: Uint32Array.from(tokens),
  }),
  reference: ({ dim }, { table, tokens }) => embedding(table, tokens, dim),
  conformance: [{ dim: 8, vocabSize: 300, tokens: [0, 299, 64, 130] }],
  bench: { quick: [], full: [] },
  bytes: ({ dim, tokens }) => 4 * (tokens.length + 2 * tokens.length * dim),
  flops: () => 0,
  tolerance: EXACT,
  variants: [{
    name: "default",
    record: (gpu, { dim, vocabSize }, { table, tokens }, buffers) =>
      embeddingDispatches(
        gpu,
        uploadMatrix(gpu, table, vocabSize, dim, { maxBindingBytes: 64 * dim * 4 }),
        {
          rows: tokens.length,
          tokens: buffers.input(tokens),
          out: buffers.output(tokens.length * dim),
        },
      ),
  }],
};

/** Every kernel family, in the conformance table's order. */
export const KERNEL_PAIRS: readonly AnyKernelPair[] = [
  MATMUL_PAIR,
  RMS_NORM_PAIR,
  SOFTMAX_PAIR,
  SILU_MUL_PAIR,
  ADD_PAIR,
  EMBEDDING_PAIR,
  ROPE_PAIR,
  KV_APPEND_PAIR,
  ATTENTION_PAIR,
  ARGMAX_PAIR,
  MATMUL_SPLIT_PAIR,
  COPY_PAIR,
  EMBEDDING_SPLIT_PAIR,
  PROJECTION_PAIR,
  BATCH_ROPE_PAIR,
  KV_SCATTER_PAIR,
  BATCH_ATTENTION_PAIR,
  MATMUL_F16_PAIR,
  MATMUL_Q8_0_PAIR,
  MATMUL_Q4_0_PAIR,
  ATTENTION_F16_PAIR,
  ATTENTION_Q8_0_PAIR,
];
