/**
 * Registry entries of the low-precision kernels (see `_pairs.ts`): matvec/matmul over f16
 * (`unpack2x16float` everywhere, `f16` arithmetic where the device has `shader-f16`), Q8_0 and
 * Q4_0 weights, each against `matvecQuantized`, which dequantizes the same bytes and
 * accumulates in f64; and attention over an f16 or Q8_0 KV cache against the reference
 * attention over the values a `KvCache` in that format holds.
 *
 * No Deno APIs: this module runs in a browser too.
 *
 * @module
 */
import { type KernelPair, type PairBuffers, PRODUCT } from "./_pair.ts";
import type { Gpu } from "./device.ts";
import { type GpuWeightFormat, packMatrix, quantMatmulDispatches } from "./matmul_quant.ts";
import { attentionKernel } from "./attention.ts";
import { packKvCache } from "./kv_cache.ts";
import { createState } from "./state.ts";
import { cachedAttention } from "../reference/attention.ts";
import { KvCache } from "../reference/kv_cache.ts";
import { formatBytes, matvecQuantized, quantize } from "../reference/quantize.ts";
import { Rng } from "../reference/random.ts";

/** Shape of a low-precision matmul: `x (rows, inDim)` times `Wᵀ`, W `(outDim, inDim)`. */
export interface QuantMatmulPairShape {
  rows: number;
  outDim: number;
  inDim: number;
}

type Inputs = { w: Uint8Array; x: Float32Array };

function quantMatmulPair(
  format: GpuWeightFormat,
  conformance: QuantMatmulPairShape[],
): KernelPair<QuantMatmulPairShape, Inputs> {
  const variant = (name: string, shaderF16: boolean) => ({
    name,
    features: shaderF16 ? ["shader-f16" as GPUFeatureName] : undefined,
    record: (
      gpu: Gpu,
      { rows, outDim, inDim }: QuantMatmulPairShape,
      { w, x }: Inputs,
      buffers: PairBuffers,
    ) => {
      const packed = packMatrix(w, format, outDim, inDim);
      return quantMatmulDispatches(
        gpu,
        {
          format,
          outDim,
          inDim,
          weights: buffers.input(packed.weights),
          scales: packed.scales.length ? buffers.input(packed.scales) : undefined,
          bytes: packed.weights.byteLength + packed.scales.byteLength,
        },
        { rows, x: buffers.input(x), out: buffers.output(rows * outDim) },
        { shaderF16 },
      );
    },
  });
  return {
    family: `matmul ${format}`,
    kernel: ({ rows }) => `${rows === 1 ? "matvec" : "matmul"} ${format}`,
    describe: ({ rows, outDim, inDim }) => `${rows}x${outDim}x${inDim}`,
    inputs({ rows, outDim, inDim }) {
      const rng = new Rng(outDim * 17 + inDim);
      return {
        w: quantize(rng.uniformArray(outDim * inDim), format),
        x: rng.uniformArray(rows * inDim),
      };
    },
    reference({ rows, outDim, inDim }, { w, x }) {
      const out = new Float32Array(rows * outDim);
      for (let t = 0; t < rows; t++) {
        const xt = x.subarray(t * inDim, (t + 1) * inDim);
        out.set(matvecQuantized(w, format, xt, outDim, inDim), t * outDim);
      }
      return out;
    },
    conformance,
    bench: {
      quick: [{ rows: 1, outDim: 768, inDim: 288 }],
      full: [{ rows: 1, outDim: 5632, inDim: 2048 }, { rows: 1, outDim: 2048, inDim: 5632 }],
    },
    bytes: ({ rows, outDim, inDim }) =>
      formatBytes(format, outDim * inDim) + 4 * (rows * inDim + rows * outDim),
    flops: ({ rows, outDim, inDim }) => 2 * rows * outDim * inDim,
    tolerance: PRODUCT,
    variants: format === "f16"
      ? [variant("default", false), variant("shader-f16", true)]
      : [variant("default", false)],
  };
}

const BLOCK_SHAPES: QuantMatmulPairShape[] = [
  { rows: 1, outDim: 1, inDim: 32 },
  { rows: 1, outDim: 7, inDim: 96 },
  { rows: 1, outDim: 65, inDim: 1024 },
  { rows: 1, outDim: 768, inDim: 288 },
  { rows: 1, outDim: 288, inDim: 768 },
  { rows: 7, outDim: 33, inDim: 256 },
];

/** Matmul over f16 weights (odd widths too: rows are padded to whole words). */
export const MATMUL_F16_PAIR: KernelPair<QuantMatmulPairShape, Inputs> = quantMatmulPair("f16", [
  { rows: 1, outDim: 1, inDim: 1 },
  { rows: 1, outDim: 7, inDim: 33 },
  ...BLOCK_SHAPES.slice(2),
]);

/** Matmul over Q8_0 weights. */
export const MATMUL_Q8_0_PAIR: KernelPair<QuantMatmulPairShape, Inputs> = quantMatmulPair(
  "q8_0",
  BLOCK_SHAPES,
);

/** Matmul over Q4_0 weights. */
export const MATMUL_Q4_0_PAIR: KernelPair<QuantMatmulPairShape, Inputs> = quantMatmulPair(
  "q4_0",
  BLOCK_SHAPES,
);

/** Shape of attention over a quantized KV cache. */
export interface QuantAttentionPairShape {
  rows: number;
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  pos: number;
}

type AttentionInputs = { q: Float32Array; keys: Float32Array; values: Float32Array };

function quantAttentionPair(
  format: "f16" | "q8_0",
): KernelPair<QuantAttentionPairShape, AttentionInputs> {
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
    bench: { quick: [], full: [{ rows: 1, nHeads: 32, nKvHeads: 4, headDim: 64, pos: 1023 }] },
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
export const ATTENTION_F16_PAIR: KernelPair<QuantAttentionPairShape, AttentionInputs> =
  quantAttentionPair("f16");

/** Attention over a Q8_0 KV cache (dequantized as it is read). */
export const ATTENTION_Q8_0_PAIR: KernelPair<QuantAttentionPairShape, AttentionInputs> =
  quantAttentionPair("q8_0");
