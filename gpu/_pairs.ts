/**
 * The kernel-pair registry: one entry per kernel family pairing the WGSL kernel with its
 * `reference/` oracle (inputs, shapes, bytes, FLOPs, tolerance, variants). The kernel tests,
 * `deno task conformance`, the benchmark's kernel table and `deno bench bench/` iterate
 * {@linkcode KERNEL_PAIRS}: adding a kernel, or a variant, is one entry here.
 *
 * No Deno APIs: this module runs in a browser too.
 *
 * @module
 */
import { type AnyKernelPair, type KernelPair, PRODUCT } from "./_pair.ts";
import { matmulDispatches, uploadMatrix } from "./matmul.ts";
import { matmul } from "../reference/matmul.ts";
import { Rng } from "../reference/random.ts";

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

/** Every kernel family, in the conformance table's order. */
export const KERNEL_PAIRS: readonly AnyKernelPair[] = [MATMUL_PAIR];
