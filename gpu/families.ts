/**
 * The contracts of the kernel families a kernel written outside this project can be checked
 * against ({@linkcode checkKernel}): for each family, the registry entry (its `reference/`
 * oracle, seeded inputs, conformance shapes and tolerance) plus the bindings a foreign WGSL
 * kernel receives, in order, and the shape uniform.
 *
 * Every family binds the same way, in `@group(0)`:
 *
 * - bindings `0 … k−1`: plain storage buffers in the order of {@linkcode KernelFamily.bindings};
 *   inputs are `var<storage, read>`, outputs (and in-place tensors) `var<storage, read_write>`;
 *   a kernel may view an `f32` buffer as `array<vec4<f32>>` where its length allows;
 * - binding `k`: `var<uniform>` holding the shape, one 4-byte field per
 *   {@linkcode KernelFamily.params} entry, in order (a struct of `u32`/`f32` fields);
 * - a kernel may leave any binding unused (the pipeline layout is explicit, not `"auto"`).
 *
 * No Deno APIs: this module runs in a browser too.
 *
 * @module
 */
import { ADD_PAIR } from "./add.ts";
import {
  MATMUL_F16_PAIR,
  MATMUL_PAIR,
  MATMUL_Q4_0_PAIR,
  MATMUL_Q4_K_PAIR,
  MATMUL_Q5_K_PAIR,
  MATMUL_Q6_K_PAIR,
  MATMUL_Q8_0_PAIR,
} from "./matmul/pairs.ts";
import type { MatmulPairShape, QuantMatmulInputs, QuantMatmulPairShape } from "./matmul/pairs.ts";
import { RMS_NORM_PAIR, type RmsNormPairShape } from "./norm.ts";
import type { KernelPair, OutputType, Tolerance } from "./pair.ts";
import { SOFTMAX_PAIR } from "./softmax.ts";
import { SILU_MUL_PAIR } from "./swiglu.ts";
import { DEFAULT_NORM_EPS } from "../reference/norm.ts";
import { quantizationErrorBound, type TensorFormat } from "../reference/quantize.ts";

/** One storage buffer of a family's contract. */
export interface BindingContract {
  /** Name, as the docs and error messages say it, e.g. "x". */
  readonly name: string;
  /** `read` for inputs, `read_write` for outputs and tensors updated in place. */
  readonly access: "read" | "read_write";
  /** Element type of the buffer as the harness fills it (`u32` for packed weights). */
  readonly type: OutputType;
  /** Its length in elements, as a formula of the shape, e.g. "rows·dim". */
  readonly length: string;
  /** What it holds and how it is laid out. */
  readonly meaning: string;
}

/** One 4-byte field of a family's shape uniform. */
export interface ParamContract {
  /** Field name, e.g. "rows". */
  readonly name: string;
  /** WGSL type of the field. */
  readonly type: "u32" | "f32";
  /** What it is. */
  readonly meaning: string;
}

/**
 * A kernel family's contract: the registry entry that judges it and how a foreign kernel is
 * bound. `S` is the family's shape, `I` its inputs.
 */
export interface KernelFamily<S, I> {
  /** The family's name, as in the conformance table, e.g. "rmsNorm". */
  readonly name: string;
  /** What one call computes. */
  readonly summary: string;
  /** The registry entry: reference, inputs, conformance shapes, tolerance. */
  readonly pair: KernelPair<S, I>;
  /** The storage buffers, in binding order (binding i is `bindings[i]`). */
  readonly bindings: readonly BindingContract[];
  /** The shape uniform's fields, in order; bound right after the storage buffers. */
  readonly params: readonly ParamContract[];
  /** The bounds a kernel's outputs must meet (the registry entry's). */
  readonly tolerance: Tolerance;
  /** The weight format of a quantized family (absent for f32 families). */
  readonly format?: TensorFormat;
  /** Each binding's contents for `shape` (outputs: their initial contents), in binding order. */
  data(shape: S, inputs: I): (Float32Array | Uint32Array)[];
  /** The uniform's field values for `shape`, in {@linkcode KernelFamily.params} order. */
  paramValues(shape: S): number[];
}

/** A family with its shape and input types hidden, for lists. */
// deno-lint-ignore no-explicit-any
export type AnyKernelFamily = KernelFamily<any, any>;

/** Bytes as little-endian u32 words, zero-padded to a whole word. */
function words(bytes: Uint8Array): Uint32Array {
  const padded = new Uint8Array(Math.ceil(bytes.length / 4) * 4);
  padded.set(bytes);
  return new Uint32Array(padded.buffer);
}

const MATMUL_PARAMS: readonly ParamContract[] = [
  { name: "rows", type: "u32", meaning: "tokens: rows of x and out" },
  { name: "outDim", type: "u32", meaning: "output features: rows of W" },
  { name: "inDim", type: "u32", meaning: "input features: columns of W" },
];

/** RMSNorm: `out[r, i] = weight[i] · x[r, i] / sqrt(mean_i(x[r, i]²) + eps)`. */
export const RMS_NORM_FAMILY: KernelFamily<
  RmsNormPairShape,
  { x: Float32Array; weight: Float32Array }
> = {
  name: "rmsNorm",
  summary: "out[r, i] = weight[i] · x[r, i] / sqrt(mean over i of x[r, i]² + eps), per row r",
  pair: RMS_NORM_PAIR,
  bindings: [
    { name: "x", access: "read", type: "f32", length: "rows·dim", meaning: "rows, row-major" },
    { name: "weight", access: "read", type: "f32", length: "dim", meaning: "the gain" },
    { name: "out", access: "read_write", type: "f32", length: "rows·dim", meaning: "like x" },
  ],
  params: [
    { name: "rows", type: "u32", meaning: "rows normalized independently" },
    { name: "dim", type: "u32", meaning: "features per row" },
    { name: "eps", type: "f32", meaning: "added to the mean square, inside the root (1e-5)" },
  ],
  tolerance: RMS_NORM_PAIR.tolerance,
  data: ({ rows, dim }, { x, weight }) => [x, weight, new Float32Array(rows * dim)],
  paramValues: ({ rows, dim }) => [rows, dim, DEFAULT_NORM_EPS],
};

/** Softmax of each row. */
export const SOFTMAX_FAMILY: KernelFamily<{ rows: number; n: number }, { x: Float32Array }> = {
  name: "softmax",
  summary: "out[r, i] = exp(x[r, i] − max_j x[r, j]) / sum_j exp(x[r, j] − max_j x[r, j])",
  pair: SOFTMAX_PAIR,
  bindings: [
    { name: "x", access: "read", type: "f32", length: "rows·n", meaning: "rows, in [-10, 10]" },
    { name: "out", access: "read_write", type: "f32", length: "rows·n", meaning: "like x" },
  ],
  params: [
    { name: "rows", type: "u32", meaning: "rows" },
    { name: "n", type: "u32", meaning: "values per row" },
  ],
  tolerance: SOFTMAX_PAIR.tolerance,
  data: ({ rows, n }, { x }) => [x, new Float32Array(rows * n)],
  paramValues: ({ rows, n }) => [rows, n],
};

/** SwiGLU's gate, in place. */
export const SILU_MUL_FAMILY: KernelFamily<
  { n: number },
  { gate: Float32Array; up: Float32Array }
> = {
  name: "siluMul",
  summary: "gate[i] = gate[i] / (1 + exp(−gate[i])) · up[i], in place",
  pair: SILU_MUL_PAIR,
  bindings: [
    { name: "gate", access: "read_write", type: "f32", length: "n", meaning: "in [-4, 4]; out" },
    { name: "up", access: "read", type: "f32", length: "n", meaning: "the up projection" },
  ],
  params: [{ name: "n", type: "u32", meaning: "elements" }],
  tolerance: SILU_MUL_PAIR.tolerance,
  data: (_, { gate, up }) => [gate, up],
  paramValues: ({ n }) => [n],
};

/** The residual add, in place. */
export const ADD_FAMILY: KernelFamily<{ n: number }, { x: Float32Array; delta: Float32Array }> = {
  name: "add",
  summary: "x[i] += delta[i], in place",
  pair: ADD_PAIR,
  bindings: [
    { name: "x", access: "read_write", type: "f32", length: "n", meaning: "the residual; out" },
    { name: "delta", access: "read", type: "f32", length: "n", meaning: "what is added" },
  ],
  params: [{ name: "n", type: "u32", meaning: "elements" }],
  tolerance: ADD_PAIR.tolerance,
  data: (_, { x, delta }) => [x, delta],
  paramValues: ({ n }) => [n],
};

/** `out = x · Wᵀ` over f32 weights (a matvec when rows is 1). */
export const MATMUL_FAMILY: KernelFamily<MatmulPairShape, { w: Float32Array; x: Float32Array }> = {
  name: "matmul",
  summary: "out[t, o] = sum_i W[o, i] · x[t, i]",
  // Without the `workgroupSize` of this project's kernel: a foreign kernel picks its own.
  pair: {
    ...MATMUL_PAIR,
    conformance: MATMUL_PAIR.conformance.map(({ rows, outDim, inDim }) => ({
      rows,
      outDim,
      inDim,
    })),
  },
  bindings: [
    { name: "w", access: "read", type: "f32", length: "outDim·inDim", meaning: "W, row-major" },
    { name: "x", access: "read", type: "f32", length: "rows·inDim", meaning: "activations" },
    { name: "out", access: "read_write", type: "f32", length: "rows·outDim", meaning: "result" },
  ],
  params: MATMUL_PARAMS,
  tolerance: MATMUL_PAIR.tolerance,
  data: ({ rows, outDim }, { w, x }) => [w, x, new Float32Array(rows * outDim)],
  paramValues: ({ rows, outDim, inDim }) => [rows, outDim, inDim],
};

function quantFamily(
  format: Exclude<TensorFormat, "f32">,
  pair: KernelPair<QuantMatmulPairShape, QuantMatmulInputs>,
  layout: string,
): KernelFamily<QuantMatmulPairShape, QuantMatmulInputs> {
  return {
    name: pair.family,
    summary: `out[t, o] = sum_i dequantize(W)[o, i] · x[t, i], W in ${format} (${layout})`,
    pair,
    format,
    bindings: [
      {
        name: "w",
        access: "read",
        type: "u32",
        length: "W's bytes / 4, rounded up",
        meaning: `W's ${format} bytes as GGUF stores them, row after row, no padding, as ` +
          "little-endian u32 words (the last one zero-padded)",
      },
      { name: "x", access: "read", type: "f32", length: "rows·inDim", meaning: "activations" },
      { name: "out", access: "read_write", type: "f32", length: "rows·outDim", meaning: "result" },
    ],
    params: MATMUL_PARAMS,
    tolerance: pair.tolerance,
    data: ({ rows, outDim }, { w, x }) => [words(w), x, new Float32Array(rows * outDim)],
    paramValues: ({ rows, outDim, inDim }) => [rows, outDim, inDim],
  };
}

/** `out = x · Wᵀ` over f16 weights (2 bytes per value, IEEE half). */
export const MATMUL_F16_FAMILY: KernelFamily<QuantMatmulPairShape, QuantMatmulInputs> = quantFamily(
  "f16",
  MATMUL_F16_PAIR,
  "IEEE binary16 per value",
);

/** `out = x · Wᵀ` over Q8_0 weights. */
export const MATMUL_Q8_0_FAMILY: KernelFamily<QuantMatmulPairShape, QuantMatmulInputs> =
  quantFamily(
    "q8_0",
    MATMUL_Q8_0_PAIR,
    "34-byte blocks of 32 values: an f16 scale d, then 32 int8 q; value = d·q",
  );

/** `out = x · Wᵀ` over Q4_0 weights. */
export const MATMUL_Q4_0_FAMILY: KernelFamily<QuantMatmulPairShape, QuantMatmulInputs> =
  quantFamily(
    "q4_0",
    MATMUL_Q4_0_PAIR,
    "18-byte blocks of 32 values: an f16 scale d, then 16 bytes whose low nibbles are values " +
      "0-15 and high nibbles values 16-31; value = d·(nibble − 8)",
  );

/** `out = x · Wᵀ` over Q4_K weights (llama.cpp's `block_q4_K`). */
export const MATMUL_Q4_K_FAMILY: KernelFamily<QuantMatmulPairShape, QuantMatmulInputs> =
  quantFamily(
    "q4_k",
    MATMUL_Q4_K_PAIR,
    "144-byte super-blocks of 256 values: f16 d and dmin, 12 bytes of 6-bit scales and mins for " +
      "8 sub-blocks of 32, then 128 bytes of nibbles; value = d·scale·q − dmin·min",
  );

/** `out = x · Wᵀ` over Q5_K weights (llama.cpp's `block_q5_K`). */
export const MATMUL_Q5_K_FAMILY: KernelFamily<QuantMatmulPairShape, QuantMatmulInputs> =
  quantFamily(
    "q5_k",
    MATMUL_Q5_K_PAIR,
    "176-byte super-blocks of 256 values: f16 d and dmin, 12 bytes of 6-bit scales and mins, " +
      "32 bytes of fifth bits, 128 bytes of nibbles; value = d·scale·q − dmin·min",
  );

/** `out = x · Wᵀ` over Q6_K weights (llama.cpp's `block_q6_K`). */
export const MATMUL_Q6_K_FAMILY: KernelFamily<QuantMatmulPairShape, QuantMatmulInputs> =
  quantFamily(
    "q6_k",
    MATMUL_Q6_K_PAIR,
    "210-byte super-blocks of 256 values: 128 bytes of low nibbles, 64 bytes of high 2-bit " +
      "pairs, 16 int8 scales for sub-blocks of 16, then an f16 d; value = d·scale·(q − 32)",
  );

/** Every family a foreign kernel can be checked against, by name. */
export const KERNEL_FAMILIES: readonly AnyKernelFamily[] = [
  RMS_NORM_FAMILY,
  SOFTMAX_FAMILY,
  SILU_MUL_FAMILY,
  ADD_FAMILY,
  MATMUL_FAMILY,
  MATMUL_F16_FAMILY,
  MATMUL_Q8_0_FAMILY,
  MATMUL_Q4_0_FAMILY,
  MATMUL_Q4_K_FAMILY,
  MATMUL_Q5_K_FAMILY,
  MATMUL_Q6_K_FAMILY,
];

/**
 * The family named `name`; throws naming the known ones otherwise.
 *
 * @example
 * ```ts
 * import { kernelFamily } from "./families.ts";
 * const norm = kernelFamily("rmsNorm");
 * if (norm.bindings.map((b) => b.name).join() !== "x,weight,out") throw new Error("wrong");
 * ```
 */
export function kernelFamily(name: string): AnyKernelFamily {
  const family = KERNEL_FAMILIES.find((f) => f.name === name);
  if (!family) {
    throw new Error(
      `family: expected one of ${KERNEL_FAMILIES.map((f) => `"${f.name}"`).join(", ")}, ` +
        `got ${JSON.stringify(name)}`,
    );
  }
  return family;
}

/**
 * What a weight format itself costs, per value: the bound on `|dequantize(quantize(w)) − w|`
 * from the reference (`quantizationErrorBound`). A quantized family's kernel is compared with the
 * product of the *dequantized* weights, within {@linkcode KernelFamily.tolerance} (the same bound
 * as this project's kernels); this budget is the extra error against f32 weights that the format
 * is allowed, e.g. to check a quantizer of your own.
 *
 * @example
 * ```ts
 * import { formatErrorBudget } from "./families.ts";
 * const w = Float32Array.from({ length: 32 }, (_, i) => (i - 16) / 16);
 * const budget = formatErrorBudget(w, "q8_0"); // half a step of d = 1/127, plus rounding
 * if (!(budget[0] > 0.5 / 127 && budget[0] < 0.51 / 127)) throw new Error("wrong");
 * ```
 */
export function formatErrorBudget(weights: ArrayLike<number>, format: TensorFormat): Float64Array {
  return quantizationErrorBound(weights, format);
}

/**
 * A family's binding contract as text: each binding with its WGSL declaration, then the uniform.
 *
 * @example
 * ```ts
 * import { describeContract, RMS_NORM_FAMILY } from "./families.ts";
 * const text = describeContract(RMS_NORM_FAMILY);
 * if (!text.includes("@binding(3) var<uniform>")) throw new Error("wrong");
 * ```
 */
export function describeContract(family: AnyKernelFamily): string {
  const storage = family.bindings.map((b, i) =>
    `@group(0) @binding(${i}) var<storage, ${b.access}> ${b.name}: array<${b.type}>; // ${b.length}: ${b.meaning}`
  );
  const fields = family.params.map((p) => `${p.name}: ${p.type}`).join(", ");
  return [
    `${family.name}: ${family.summary}`,
    ...storage,
    `@group(0) @binding(${family.bindings.length}) var<uniform> params: Params; // struct Params { ${fields} }`,
    `tolerance: NMSE <= ${family.tolerance.maxNmse}, max abs error <= ${family.tolerance.maxAbsError}`,
  ].join("\n");
}
