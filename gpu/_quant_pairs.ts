/**
 * Registry entries of the low-precision weight kernels (see `_pairs.ts`): matvec/matmul over
 * f16 (`unpack2x16float` everywhere, `f16` arithmetic where the device has `shader-f16`), Q8_0
 * and Q4_0 weights, each against `matvecQuantized`, which dequantizes the same bytes and
 * accumulates in f64.
 *
 * No Deno APIs: this module runs in a browser too.
 *
 * @module
 */
import { type KernelPair, type PairBuffers, PRODUCT } from "./_pair.ts";
import type { Gpu } from "./device.ts";
import { type GpuWeightFormat, packMatrix, quantMatmulDispatches } from "./matmul_quant.ts";
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
  { rows: 1, outDim: 257, inDim: 4096 },
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
