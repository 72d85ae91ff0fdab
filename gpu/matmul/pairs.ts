/**
 * Registry entries of the matmul family: the plain and split-K matmul, the projection family (every
 * layout of `projection.ts` with each epilogue and the RMSNorm prologue, against the reference
 * functions composed the unfused way) and the f16/Q8_0/Q4_0/K-quant-weight matmuls, each against
 * its `reference/` oracle. No Deno APIs: these run in a browser too.
 *
 * @module
 */
import type { Gpu } from "../device.ts";
import {
  foldNormWeight,
  fusedRowOrder,
  fuseQkv,
  gatherPackedRows,
  interleaveGateUp,
} from "./fused_weights.ts";
import { matmulDispatches, uploadMatrix } from "./matmul.ts";
import { PROJECTION_VARIANTS, projectionKernel } from "./projection.ts";
import {
  type GpuWeightFormat,
  kQuantCooperativeFits,
  packedRowBlocks,
  packMatrix,
  quantMatmulDispatches,
} from "./quant.ts";
import type { KQuantLayout } from "./kquant.ts";
import {
  PACKED_PROJECTION_VARIANTS,
  packedProjectionKernel,
  type PackedProjectionVariant,
} from "./packed_projection.ts";
import {
  matvecQ8Activations,
  type Q8WeightFormat,
  quantizeActivations,
} from "../../reference/q8_activations.ts";
import {
  type DeviceCapabilities,
  type KernelPair,
  type KernelVariant,
  type PairBuffers,
  PRODUCT,
  type Tolerance,
} from "../pair.ts";
import { createState } from "../state.ts";
import { matmul } from "../../reference/matmul.ts";
import { rmsNorm } from "../../reference/norm.ts";
import { formatBytes, matvecQuantized, quantize } from "../../reference/quantize.ts";
import {
  K_BLOCK_BYTES,
  K_SUPER_BLOCK,
  kQuantBytes,
  type KQuantFormat,
} from "../../reference/kquants.ts";
import { f32ToF16Bits } from "../../reference/f16.ts";
import { Rng } from "../../reference/random.ts";
import { rope, type RopeLayout, ropeTable } from "../../reference/rope.ts";
import { siluMul } from "../../reference/swiglu.ts";
/** Shape of the matmul family: `x (rows, inDim)` times `Wᵀ`, W `(outDim, inDim)`. */
export interface MatmulPairShape {
  /** Tokens (rows) in one call. */
  rows: number;
  /** Output features (W's rows). */
  outDim: number;
  /** Input features (W's columns). */
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
  bench: {
    quick: [{ rows: 1, outDim: 1000, inDim: 288 }],
    full: [{ rows: 1, outDim: 1000, inDim: 2048 }],
  },
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

/** The fused forms reorder the norm's products and add RoPE's rounding to a product's. */
const FUSED: Tolerance = { maxNmse: 1e-8, maxAbsError: 2e-3 };

/** Shape of the projection family. */
export interface ProjectionPairShape {
  /** The epilogue. */
  kind: "store" | "add" | "siluMul" | "qkvRope";
  /** Tokens. */
  rows: number;
  /** Features in. */
  inDim: number;
  /** Outputs per token (store/add: rows of W; siluMul: hidden features). */
  outDim: number;
  /** With the RMSNorm prologue. */
  norm?: boolean;
  /** Only rows `[start, start + count)` of W, as one block of a split matrix (store/add). */
  block?: [start: number, count: number];
  /**
   * qkvRope: heads, KV heads, head dim, position of the first row, cache length, layout, and
   * whether K/V are staged (written to `(rows, kvDim)` scratch for a KV append) or cached.
   */
  attention?: {
    nHeads: number;
    nKvHeads: number;
    headDim: number;
    pos: number;
    maxSeqLen: number;
    layout: RopeLayout;
    staged?: boolean;
  };
}

/** Inputs of the projection family. */
export interface ProjectionInputs {
  /** Activations, `(rows, inDim)`. */
  x: Float32Array;
  /** RMSNorm weight, `(inDim)`. */
  norm: Float32Array;
  /** store/add: W; siluMul: W1, W3; qkvRope: Wq, Wk, Wv. */
  w: Float32Array[];
  /** add: the residual stream; qkvRope: the caches' (or the staged scratch's) previous contents. */
  initial: Float32Array[];
}

function units(shape: ProjectionPairShape): number {
  const { kind, outDim, block, attention: a } = shape;
  if (kind === "qkvRope" && a) return (a.nHeads + 2 * a.nKvHeads) * a.headDim / 2;
  return block ? block[1] : outDim;
}

function gpuWeights(shape: ProjectionPairShape, { w, norm }: ProjectionInputs): Float32Array {
  const { kind, inDim, block, attention: a } = shape;
  const folded = shape.norm ? norm : undefined;
  if (kind === "siluMul") return interleaveGateUp(w[0], w[1], inDim, folded);
  if (kind === "qkvRope" && a) {
    return fuseQkv(w[0], w[1], w[2], { dim: inDim, ...a }, folded);
  }
  const rows = block ? w[0].subarray(block[0] * inDim, (block[0] + block[1]) * inDim) : w[0];
  return folded ? foldNormWeight(rows, inDim, folded) : rows;
}

function projectionVariant(
  variant: (typeof PROJECTION_VARIANTS)[number],
): KernelVariant<ProjectionPairShape, ProjectionInputs> {
  return {
    name: variant.name,
    features: variant.features,
    applies: (shape, device) =>
      variant.applies(
        { rows: shape.rows, units: units(shape), inDim: shape.inDim },
        device,
      ),
    async record(gpu, shape, inputs, buffers) {
      const { kind, rows, inDim, outDim, norm = false, block, attention: a } = shape;
      const epilogue = kind === "qkvRope" && a
        ? { kind, ...a }
        : { kind } as { kind: "store" | "add" | "siluMul" };
      const kernel = await projectionKernel(
        gpu,
        { rows, units: units(shape), inDim },
        epilogue,
        variant,
        { norm, unitOffset: block?.[0] ?? 0, outStride: outDim },
      );
      const w = buffers.input(gpuWeights(shape, inputs));
      const x = buffers.input(inputs.x);
      if (kind === "qkvRope" && a) {
        return kernel.bind({
          w,
          x,
          q: buffers.output(rows * a.nHeads * a.headDim),
          keyCache: buffers.output(inputs.initial[0].length, inputs.initial[0]),
          valueCache: buffers.output(inputs.initial[1].length, inputs.initial[1]),
          table: buffers.input(ropeTable(a.headDim, a.maxSeqLen)),
          state: createState(gpu, { pos: a.pos }),
        } as never);
      }
      return kernel.bind({ w, x, out: buffers.output(rows * outDim, inputs.initial[0]) } as never);
    },
  };
}

/** `W_i · x` for each row of `x`: the way a projection's reference multiplies. */
type Product = (
  i: number,
  x: Float32Array,
  rows: number,
  outDim: number,
  inDim: number,
) => Float32Array;

function projectionReference(
  shape: ProjectionPairShape,
  inputs: ProjectionInputs,
  product: Product = (i, x, rows, outDim, inDim) => matmul(inputs.w[i], x, rows, outDim, inDim),
): Float32Array {
  const { kind, rows, inDim, outDim, block, attention: a } = shape;
  const xn = shape.norm ? rmsNorm(inputs.x, inputs.norm) : inputs.x;
  if (kind === "siluMul") {
    return siluMul(
      product(0, xn, rows, outDim, inDim),
      product(1, xn, rows, outDim, inDim),
    );
  }
  if (kind === "qkvRope" && a) {
    const qDim = a.nHeads * a.headDim;
    const kvDim = a.nKvHeads * a.headDim;
    const q = product(0, xn, rows, qDim, inDim);
    const k = product(1, xn, rows, kvDim, inDim);
    const v = product(2, xn, rows, kvDim, inDim);
    const keys = inputs.initial[0].slice();
    const values = inputs.initial[1].slice();
    const options = { layout: a.layout };
    for (let t = 0; t < rows; t++) {
      const pos = a.pos + t;
      const row = a.staged ? t : pos; // staged: the token's row of the scratch
      q.set(rope(q.subarray(t * qDim, (t + 1) * qDim), pos, a.headDim, options), t * qDim);
      keys.set(rope(k.subarray(t * kvDim, (t + 1) * kvDim), pos, a.headDim, options), row * kvDim);
      values.set(v.subarray(t * kvDim, (t + 1) * kvDim), row * kvDim);
    }
    const out = new Float32Array(q.length + keys.length + values.length);
    out.set(q);
    out.set(keys, q.length);
    out.set(values, q.length + keys.length);
    return out;
  }
  const projected = product(0, xn, rows, outDim, inDim);
  const out = inputs.initial[0].slice();
  const [start, count] = block ?? [0, outDim];
  for (let t = 0; t < rows; t++) {
    for (let r = start; r < start + count; r++) {
      const at = t * outDim + r;
      out[at] = kind === "add" ? out[at] + projected[at] : projected[at];
    }
  }
  return out;
}

function qkv(
  rows: number,
  dim: number,
  nHeads: number,
  nKvHeads: number,
  headDim: number,
  pos: number,
  maxSeqLen: number,
  layout: RopeLayout,
  staged = false,
): ProjectionPairShape {
  return {
    kind: "qkvRope",
    rows,
    inDim: dim,
    outDim: nHeads * headDim,
    norm: true,
    attention: { nHeads, nKvHeads, headDim, pos, maxSeqLen, layout, ...staged ? { staged } : {} },
  };
}

/**
 * Projections `W · x` with each epilogue (store, residual add, SiLU·mul over interleaved W1/W3,
 * Q/K/V with RoPE and the KV append) and the RMSNorm prologue, one variant per layout.
 */
export const PROJECTION_PAIR: KernelPair<ProjectionPairShape, ProjectionInputs> = {
  family: "projection",
  kernel: ({ kind, norm }) => `projection ${kind}${norm ? "+norm" : ""}`,
  describe: ({ rows, outDim, inDim, block, attention: a }) =>
    a
      ? `${rows}x${inDim} ${a.nHeads}/${a.nKvHeads}x${a.headDim} at ${a.pos} of ${a.maxSeqLen} ${a.layout}${
        a.staged ? " staged" : ""
      }`
      : `${rows}x${outDim}x${inDim}${block ? ` rows ${block[0]}..${block[0] + block[1] - 1}` : ""}`,
  inputs(shape) {
    const { kind, rows, inDim, outDim, attention: a } = shape;
    const rng = new Rng(outDim * 17 + inDim + rows + kind.length);
    const x = rng.uniformArray(rows * inDim);
    const norm = rng.uniformArray(inDim);
    if (kind === "qkvRope" && a) {
      const kvDim = a.nKvHeads * a.headDim;
      return {
        x,
        norm,
        w: [a.nHeads * a.headDim, kvDim, kvDim].map((n) => rng.uniformArray(n * inDim)),
        initial: [0, 1].map(() => rng.uniformArray((a.staged ? rows : a.maxSeqLen) * kvDim)),
      };
    }
    const w = kind === "siluMul"
      ? [rng.uniformArray(outDim * inDim), rng.uniformArray(outDim * inDim)]
      : [rng.uniformArray(outDim * inDim)];
    return { x, norm, w, initial: [rng.uniformArray(rows * outDim)] };
  },
  reference: (shape, inputs) => projectionReference(shape, inputs),
  conformance: [
    { kind: "store", rows: 1, outDim: 1, inDim: 1 },
    { kind: "store", rows: 1, outDim: 7, inDim: 33 },
    { kind: "store", rows: 1, outDim: 257, inDim: 4099 },
    { kind: "store", rows: 1, outDim: 768, inDim: 288 },
    { kind: "store", rows: 7, outDim: 33, inDim: 257 },
    { kind: "store", rows: 17, outDim: 288, inDim: 96 },
    { kind: "store", rows: 33, outDim: 65, inDim: 20 },
    { kind: "store", rows: 1, outDim: 1000, inDim: 288, norm: true, block: [256, 300] },
    { kind: "add", rows: 1, outDim: 288, inDim: 768 },
    { kind: "add", rows: 5, outDim: 33, inDim: 7, norm: true },
    { kind: "siluMul", rows: 1, outDim: 768, inDim: 288, norm: true },
    { kind: "siluMul", rows: 19, outDim: 33, inDim: 12, norm: true },
    qkv(1, 288, 6, 6, 48, 17, 32, "interleaved"),
    qkv(1, 64, 8, 2, 16, 31, 32, "half"),
    qkv(3, 36, 4, 2, 6, 5, 16, "half"),
    qkv(18, 64, 4, 1, 16, 0, 18, "interleaved"),
    qkv(1, 64, 8, 2, 16, 29, 32, "interleaved", true),
    qkv(3, 36, 4, 2, 6, 5, 16, "half", true),
  ],
  bench: {
    quick: [{ kind: "add", rows: 1, outDim: 288, inDim: 768 }],
    full: [{ kind: "siluMul", rows: 1, outDim: 5632, inDim: 2048, norm: true }],
  },
  // W (every pair of rows), x, the outputs once (an add reads them too)
  bytes: (shape) => {
    const { kind, rows, inDim, outDim } = shape;
    const wRows = kind === "store" || kind === "add" ? units(shape) : 2 * units(shape);
    const outs = kind === "qkvRope" ? 2 * units(shape) : outDim;
    return 4 * (wRows * inDim + rows * inDim + rows * outs * (kind === "add" ? 2 : 1));
  },
  flops: (shape) => {
    const wRows = shape.kind === "store" || shape.kind === "add" ? units(shape) : 2 * units(shape);
    return 2 * shape.rows * wRows * shape.inDim;
  },
  tolerance: FUSED,
  variants: PROJECTION_VARIANTS.map(projectionVariant),
};

/** Shape of a low-precision matmul: `x (rows, inDim)` times `Wᵀ`, W `(outDim, inDim)`. */
export interface QuantMatmulPairShape {
  /** Tokens (rows) in one call. */
  rows: number;
  /** Output features (W's rows). */
  outDim: number;
  /** Input features (W's columns). */
  inDim: number;
}

/** Inputs of a low-precision matmul: packed weights and f32 activations. */
export type QuantMatmulInputs = { w: Uint8Array; x: Float32Array };

function quantMatmulPair(
  format: GpuWeightFormat,
  conformance: QuantMatmulPairShape[],
): KernelPair<QuantMatmulPairShape, QuantMatmulInputs> {
  const variant = (name: string, shaderF16: boolean, kQuantLayout?: KQuantLayout) => ({
    name,
    features: shaderF16 ? ["shader-f16" as GPUFeatureName] : undefined,
    applies: kQuantLayout === "cooperative"
      ? (_: QuantMatmulPairShape, device: DeviceCapabilities) => kQuantCooperativeFits(device)
      : undefined,
    record: (
      gpu: Gpu,
      { rows, outDim, inDim }: QuantMatmulPairShape,
      { w, x }: QuantMatmulInputs,
      buffers: PairBuffers,
    ) => {
      const packed = packMatrix(w, format, outDim, inDim);
      return quantMatmulDispatches(
        gpu,
        {
          format,
          outDim,
          inDim,
          // Row blocks as uploadPacked cuts them under this device's binding limit.
          blocks: packedRowBlocks(packed, gpu.limits.maxStorageBufferBindingSize).map((b) => ({
            rowStart: b.rowStart,
            rows: b.rows,
            weights: buffers.input(b.weights),
            scales: b.scales.length ? buffers.input(b.scales) : undefined,
          })),
          bytes: packed.weights.byteLength + packed.scales.byteLength,
        },
        { rows, x: buffers.input(x), out: buffers.output(rows * outDim) },
        { shaderF16, kQuantLayout },
      );
    },
  });
  const kQuant = format === "q4_k" || format === "q5_k" || format === "q6_k" ? format : undefined;
  return {
    family: `matmul ${format}`,
    kernel: ({ rows }) => `${rows === 1 ? "matvec" : "matmul"} ${format}`,
    describe: ({ rows, outDim, inDim }) => `${rows}x${outDim}x${inDim}`,
    inputs({ rows, outDim, inDim }) {
      const rng = new Rng(outDim * 17 + inDim);
      return {
        w: kQuant
          ? randomKQuantBlocks(rng, kQuant, outDim * inDim)
          : quantize(rng.uniformArray(outDim * inDim), format),
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
      quick: [{ rows: 1, outDim: 768, inDim: kQuant ? 768 : 288 }],
      full: [{ rows: 1, outDim: 5632, inDim: 2048 }, { rows: 1, outDim: 2048, inDim: 5632 }],
    },
    bytes: ({ rows, outDim, inDim }) =>
      formatBytes(format, outDim * inDim) + 4 * (rows * inDim + rows * outDim),
    flops: ({ rows, outDim, inDim }) => 2 * rows * outDim * inDim,
    tolerance: PRODUCT,
    variants: kQuant ? [variant("row", false, "row"), variant("coop64", false, "cooperative")] : [
      variant("default", false),
      ...(format === "f16" ? [variant("shader-f16", true)] : []),
      ...PACKED_PROJECTION_VARIANTS.filter((v) =>
        format === "f16" ? v.activations === "f32" : v.features.length === 0
      ).map((v) => packedMatmulVariant(format, v)),
    ],
  };
}

/** A packed-projection variant as a matmul (the store epilogue, no norm). */
function packedMatmulVariant(
  format: GpuWeightFormat,
  variant: PackedProjectionVariant,
): KernelVariant<QuantMatmulPairShape, QuantMatmulInputs> {
  const packedShape = ({ rows, outDim, inDim }: QuantMatmulPairShape) => ({
    format,
    rows,
    units: outDim,
    inDim,
    pair: 1,
    norm: false,
  });
  return {
    name: variant.name,
    features: variant.features,
    applies: (shape, device) => variant.applies(packedShape(shape), device),
    reference: variant.activations === "q8"
      ? ({ rows, outDim, inDim }, { w, x }) => {
        const out = new Float32Array(rows * outDim);
        for (let t = 0; t < rows; t++) {
          const xt = quantizeActivations(x.subarray(t * inDim, (t + 1) * inDim));
          matvecQ8Activations(
            w,
            format as Q8WeightFormat,
            xt,
            outDim,
            inDim,
            out.subarray(t * outDim, (t + 1) * outDim),
          );
        }
        return out;
      }
      : undefined,
    async record(gpu, shape, { w, x }, buffers) {
      const packed = packMatrix(w, format, shape.outDim, shape.inDim);
      const kernel = await packedProjectionKernel(
        gpu,
        packedShape(shape),
        { kind: "store" },
        variant,
      );
      return kernel.bind({
        w: buffers.input(packed.weights),
        ...(packed.scales.length ? { scales: buffers.input(packed.scales) } : {}),
        x: buffers.input(x),
        out: buffers.output(shape.rows * shape.outDim),
      });
    },
  };
}

/**
 * `count` values of random valid `format` super-blocks: random quant and scale bytes, every f16
 * scale a random value sized so that the weights span about [-1, 1] (the bit patterns a
 * quantizer seldom makes, such as 6-bit scales with their top bits set, included).
 */
function randomKQuantBlocks(rng: Rng, format: KQuantFormat, count: number): Uint8Array {
  const bytes = new Uint8Array(kQuantBytes(format, count));
  for (let i = 0; i < bytes.length; i++) bytes[i] = rng.nextUint32() & 0xff;
  const blockBytes = K_BLOCK_BYTES[format];
  // Largest scale times largest quant: 63·15 (q4_k), 63·31 (q5_k), 128·32 (q6_k).
  const reach = format === "q4_k" ? 945 : format === "q5_k" ? 1953 : 4096;
  const fields = format === "q6_k" ? [208] : [0, 2];
  for (let b = 0; b < count / K_SUPER_BLOCK; b++) {
    for (const at of fields) {
      const bits = f32ToF16Bits(rng.uniform(0, 1) / reach);
      bytes[b * blockBytes + at] = bits & 0xff;
      bytes[b * blockBytes + at + 1] = bits >> 8;
    }
  }
  return bytes;
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
export const MATMUL_F16_PAIR: KernelPair<QuantMatmulPairShape, QuantMatmulInputs> = quantMatmulPair(
  "f16",
  [
    { rows: 1, outDim: 1, inDim: 1 },
    { rows: 1, outDim: 7, inDim: 33 },
    ...BLOCK_SHAPES.slice(2),
  ],
);

/** Matmul over Q8_0 weights. */
export const MATMUL_Q8_0_PAIR: KernelPair<QuantMatmulPairShape, QuantMatmulInputs> =
  quantMatmulPair(
    "q8_0",
    BLOCK_SHAPES,
  );

/** Matmul over Q4_0 weights. */
export const MATMUL_Q4_0_PAIR: KernelPair<QuantMatmulPairShape, QuantMatmulInputs> =
  quantMatmulPair(
    "q4_0",
    BLOCK_SHAPES,
  );

/** Shape of a packed projection: a projection's, with the weights' format (no row blocks). */
export interface PackedProjectionPairShape extends Omit<ProjectionPairShape, "block"> {
  /** The weights' format. */
  format: GpuWeightFormat;
}

/** Inputs of a packed projection: the float inputs and each matrix in its format's bytes. */
export interface PackedProjectionInputs extends ProjectionInputs {
  /** Each of `w`, quantized (GGUF's bytes). */
  stored: Uint8Array[];
}

function packedProjectionPairVariant(
  variant: PackedProjectionVariant,
): KernelVariant<PackedProjectionPairShape, PackedProjectionInputs> {
  const packedShape = (shape: PackedProjectionPairShape) => ({
    format: shape.format,
    rows: shape.rows,
    units: units(shape),
    inDim: shape.inDim,
    pair: shape.kind === "store" || shape.kind === "add" ? 1 : 2,
    norm: shape.norm ?? false,
  });
  return {
    name: variant.name,
    features: variant.features,
    applies: (shape, device) => variant.applies(packedShape(shape), device),
    reference: (shape, inputs) =>
      projectionReference(shape, inputs, (i, xn, rows, outDim, inDim) => {
        const out = new Float32Array(rows * outDim);
        for (let t = 0; t < rows; t++) {
          const xt = xn.subarray(t * inDim, (t + 1) * inDim);
          const row = out.subarray(t * outDim, (t + 1) * outDim);
          if (variant.activations === "q8") {
            const format = shape.format as Q8WeightFormat;
            matvecQ8Activations(
              inputs.stored[i],
              format,
              quantizeActivations(xt),
              outDim,
              inDim,
              row,
            );
          } else row.set(matvecQuantized(inputs.stored[i], shape.format, xt, outDim, inDim));
        }
        return out;
      }),
    async record(gpu, shape, inputs, buffers) {
      const { format, kind, rows, inDim, outDim, attention: a } = shape;
      const rowsOf = (i: number) => inputs.w[i].length / inDim;
      const packed = inputs.stored.map((bytes, i) => packMatrix(bytes, format, rowsOf(i), inDim));
      const matrix = kind === "siluMul"
        ? gatherPackedRows(packed, fusedRowOrder({ kind: "gateUp", hidden: outDim }))
        : kind === "qkvRope" && a
        ? gatherPackedRows(packed, fusedRowOrder({ kind: "qkv", ...a }))
        : packed[0];
      const epilogue = kind === "qkvRope" && a
        ? { kind, ...a }
        : { kind } as { kind: "store" | "add" | "siluMul" };
      // the scales after the weights, in one binding, as the decoder uploads them
      // (uploadPackedCombined): the QKV kernel then fits WebGPU's default 8 storage buffers
      const words = new Uint32Array(matrix.weights.length + matrix.scales.length);
      words.set(matrix.weights);
      words.set(matrix.scales, matrix.weights.length);
      const kernel = await packedProjectionKernel(gpu, packedShape(shape), epilogue, variant, {
        outStride: outDim,
        scalesAt: matrix.weights.length,
      });
      const common = {
        w: buffers.input(words),
        x: buffers.input(inputs.x),
        ...(shape.norm ? { normWeight: buffers.input(inputs.norm) } : {}),
      };
      if (kind === "qkvRope" && a) {
        return kernel.bind({
          ...common,
          q: buffers.output(rows * a.nHeads * a.headDim),
          keyCache: buffers.output(inputs.initial[0].length, inputs.initial[0]),
          valueCache: buffers.output(inputs.initial[1].length, inputs.initial[1]),
          table: buffers.input(ropeTable(a.headDim, a.maxSeqLen)),
          state: createState(gpu, { pos: a.pos }),
        });
      }
      return kernel.bind({ ...common, out: buffers.output(rows * outDim, inputs.initial[0]) });
    },
  };
}

/**
 * Projections over packed f16/Q8_0/Q4_0 weights with every epilogue and the RMSNorm prologue
 * (the fused decode step's kernels for those formats), each `PACKED_PROJECTION_VARIANTS` entry
 * against the unfused reference: Q8 activations for the `q8` variants (their oracle,
 * `reference/q8_activations.ts`), float ones otherwise.
 */
export const PACKED_PROJECTION_PAIR: KernelPair<
  PackedProjectionPairShape,
  PackedProjectionInputs
> = {
  family: "projection packed",
  kernel: ({ kind, norm, format }) => `projection ${kind}${norm ? "+norm" : ""} ${format}`,
  describe: (shape) => `${PROJECTION_PAIR.describe(shape)}`,
  inputs(shape) {
    const inputs = PROJECTION_PAIR.inputs(shape);
    return { ...inputs, stored: inputs.w.map((w) => quantize(w, shape.format)) };
  },
  reference: (shape, inputs) =>
    projectionReference(shape, inputs, (i, xn, rows, outDim, inDim) => {
      const out = new Float32Array(rows * outDim);
      for (let t = 0; t < rows; t++) {
        const xt = xn.subarray(t * inDim, (t + 1) * inDim);
        out.set(matvecQuantized(inputs.stored[i], shape.format, xt, outDim, inDim), t * outDim);
      }
      return out;
    }),
  conformance: (["q8_0", "q4_0", "f16"] as const).flatMap((format) => [
    { format, kind: "store" as const, rows: 1, outDim: 7, inDim: 96 },
    { format, kind: "add" as const, rows: 1, outDim: 288, inDim: 768 },
    { format, kind: "store" as const, rows: 5, outDim: 33, inDim: 64, norm: true },
    { format, kind: "siluMul" as const, rows: 1, outDim: 768, inDim: 288, norm: true },
    { format, ...qkv(1, 288, 6, 6, 48, 17, 32, "interleaved") },
    { format, ...qkv(3, 64, 8, 2, 16, 5, 16, "half") },
    { format, ...qkv(1, 288, 6, 6, 48, 30, 32, "interleaved", true) },
  ]),
  bench: {
    quick: [{ format: "q8_0", kind: "add", rows: 1, outDim: 288, inDim: 768 }],
    full: [{ format: "q8_0", kind: "siluMul", rows: 1, outDim: 5632, inDim: 2048, norm: true }],
  },
  bytes: (shape) => {
    const { kind, rows, inDim, outDim, format } = shape;
    const wRows = kind === "store" || kind === "add" ? units(shape) : 2 * units(shape);
    const outs = kind === "qkvRope" ? 2 * units(shape) : outDim;
    return formatBytes(format, wRows * inDim) +
      4 * (rows * inDim + rows * outs * (kind === "add" ? 2 : 1));
  },
  flops: (shape) => PROJECTION_PAIR.flops(shape),
  tolerance: FUSED,
  variants: PACKED_PROJECTION_VARIANTS.map(packedProjectionPairVariant),
};
/**
 * K-quant shapes: one super-block, odd row counts, real widths (stories15M's and
 * stories110M's FFN, Llama-2-7B's 4096 and 11008), prefill.
 */
const K_QUANT_SHAPES: QuantMatmulPairShape[] = [
  { rows: 1, outDim: 1, inDim: 256 },
  { rows: 1, outDim: 7, inDim: 768 },
  { rows: 1, outDim: 65, inDim: 1024 },
  { rows: 1, outDim: 288, inDim: 768 },
  { rows: 1, outDim: 77, inDim: 4096 },
  { rows: 1, outDim: 3, inDim: 11008 },
  { rows: 7, outDim: 33, inDim: 512 },
];

/** Matmul over Q4_K weights, read as stored (`row` and `cooperative` layouts). */
export const MATMUL_Q4_K_PAIR: KernelPair<QuantMatmulPairShape, QuantMatmulInputs> =
  quantMatmulPair("q4_k", K_QUANT_SHAPES);

/** Matmul over Q5_K weights, read as stored. */
export const MATMUL_Q5_K_PAIR: KernelPair<QuantMatmulPairShape, QuantMatmulInputs> =
  quantMatmulPair("q5_k", K_QUANT_SHAPES);

/** Matmul over Q6_K weights, read as stored. */
export const MATMUL_Q6_K_PAIR: KernelPair<QuantMatmulPairShape, QuantMatmulInputs> =
  quantMatmulPair("q6_k", K_QUANT_SHAPES);
