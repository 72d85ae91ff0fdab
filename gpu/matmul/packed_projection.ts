/**
 * Projections over packed weights (f16, Q8_0, Q4_0 in `quant.ts`'s GPU layout) with every
 * epilogue of `projection.ts` (store, residual add, SiLU·mul, Q/K/V with RoPE and the KV
 * append) and the RMSNorm prologue, so that the fused decode step runs whatever the weights'
 * format, with the same dispatches.
 *
 * Two ways to read the activations:
 *
 * - `q8` (Q8_0/Q4_0 weights): each workgroup first quantizes its token's activations (normed,
 *   if the prologue is on) into Q8 blocks in workgroup memory, once for all the rows it
 *   computes; each block's product is then an integer sum of `dot4I8Packed` over four quants per
 *   word (where WGSL has `packed_4x8_integer_dot_product`; shifts and multiplies otherwise), and
 *   the two block scales multiply that sum once. This is llama.cpp's `vec_dot_q8_0_q8_0` /
 *   `vec_dot_q4_0_q8_0`; `reference/q8_activations.ts` is its oracle and states the error the
 *   activations' quantization adds. Q4_0's `−8` offset is one `8·Σq` per block.
 * - `f32` (every format): the weights dequantized in registers against float activations; the
 *   form for adapters whose workgroup memory cannot hold a quantized row (the GL backend's
 *   budget) and for f16 weights.
 *
 * Layouts: `row` (one invocation per unit, best on software adapters) and `lanesN` (N
 * invocations per unit splitting the blocks, reduced in workgroup memory, for GPUs).
 *
 * The RMSNorm weight is not folded into the matrix (that would mean quantizing again): the
 * prologue multiplies each activation by its norm weight and `1/rms(x)`.
 *
 * @module
 */
import { type BufferRange, type Dispatch, type Gpu, GpuError } from "../device.ts";
import { compileKernel } from "../kernel.ts";
import {
  bindingNames,
  epilogueWgsl,
  PAIR,
  projectionConstants,
  type ProjectionEpilogue,
} from "./projection.ts";
import type { ProjectionDevice } from "./projection.ts";
import { checkInteger } from "../../reference/checks.ts";
import { DEFAULT_NORM_EPS } from "../../reference/norm.ts";

/**
 * A packed matrix as uploaded by `quant.ts` (its `GpuPackedMatrix`, restated here: `quant.ts`
 * reaches `tuning.ts`, which lists these variants).
 */
export interface PackedMatrixBlocks {
  /** Storage format. */
  format: string;
  /** Rows. */
  outDim: number;
  /** Columns. */
  inDim: number;
  /** Row blocks: weights, scales apart or `scalesAt` words into the weights, first row, rows. */
  blocks: {
    weights: GPUBuffer;
    scales?: GPUBuffer;
    scalesAt?: number;
    rowStart: number;
    rows: number;
  }[];
}

/** Weight formats the packed projections read (K-quants use `kquant.ts`'s matmul). */
export type PackedFormat = "f16" | "q8_0" | "q4_0";

/** Shape of a packed projection. */
export interface PackedProjectionShape {
  /** The weights' format (any GPU format; variants apply to the {@linkcode PackedFormat}s). */
  format: string;
  /** Tokens. */
  rows: number;
  /** Output units (rows of W / `pair`). */
  units: number;
  /** Features in. */
  inDim: number;
  /** Rows of W per unit: 1 (store, add) or 2 (siluMul, qkvRope). */
  pair: number;
  /** With the RMSNorm prologue. */
  norm: boolean;
}

/** One registered way to compute a packed projection. */
export interface PackedProjectionVariant {
  /** Name, as tuning files and reports spell it. */
  readonly name: string;
  /** How the activations are read (see the module's documentation). */
  readonly activations: "q8" | "f32";
  /** Invocations per workgroup (a power of two). */
  readonly workgroupSize: number;
  /** Invocations per unit (a power of two, at most the workgroup size). */
  readonly lanes: number;
  /** Integer dot products: `dot4I8Packed` where WGSL has it ("auto"), or never ("unpacked"). */
  readonly dot: "auto" | "unpacked";
  /** Device features it needs (`shader-f16`: f16 weights read as `f16`, not unpacked). */
  readonly features: readonly GPUFeatureName[];
  /** Whether the variant suits a shape on a device (formats, limits, workgroup budget). */
  applies(shape: PackedProjectionShape, device?: ProjectionDevice): boolean;
}

/**
 * Workgroup-array elements a variant declares for a shape (the GL budget counts these).
 *
 * @example
 * ```ts
 * import { packedProjectionVariant, packedWorkgroupElements } from "./packed_projection.ts";
 * const shape = { format: "q8_0", inDim: 2048, pair: 1, norm: false } as const;
 * if (packedWorkgroupElements(packedProjectionVariant("q8 row"), shape) !== 512 + 64) throw new Error("wrong");
 * ```
 */
export function packedWorkgroupElements(
  variant: Pick<PackedProjectionVariant, "activations" | "workgroupSize" | "lanes">,
  shape: Pick<PackedProjectionShape, "format" | "inDim" | "pair" | "norm">,
): number {
  const blocks = shape.inDim / 32;
  const staged = variant.activations === "q8"
    ? shape.inDim / 4 + blocks * (shape.format === "q4_0" ? 2 : 1)
    : 0;
  const norm = shape.norm ? variant.workgroupSize : 0;
  const reduction = variant.lanes > 1 ? shape.pair * variant.workgroupSize : 0;
  return staged + norm + reduction;
}

/**
 * Whether WGSL here has `dot4I8Packed` (Chromium, and Deno's wgpu, do).
 *
 * @example
 * ```ts
 * import { hasPackedDot } from "./packed_projection.ts";
 * if (typeof hasPackedDot() !== "boolean") throw new Error("wrong");
 * ```
 */
export function hasPackedDot(): boolean {
  const gpu = (globalThis.navigator as Navigator | undefined)?.gpu as
    | { wgslLanguageFeatures?: { has(name: string): boolean } }
    | undefined;
  return gpu?.wgslLanguageFeatures?.has("packed_4x8_integer_dot_product") ?? false;
}

const PACKED_FORMATS: readonly string[] = ["f16", "q8_0", "q4_0"];

function packedVariant(
  name: string,
  activations: "q8" | "f32",
  workgroupSize: number,
  lanes: number,
  dot: "auto" | "unpacked" = "auto",
  features: readonly GPUFeatureName[] = [],
): PackedProjectionVariant {
  const variant = { activations, workgroupSize, lanes };
  const shaderF16 = features.includes("shader-f16" as GPUFeatureName);
  return {
    name,
    ...variant,
    dot,
    features,
    applies: (shape, device) => {
      if (!PACKED_FORMATS.includes(shape.format)) return false;
      if (activations === "q8" && shape.format === "f16") return false;
      if (shaderF16 && shape.format !== "f16") return false;
      if (shape.format !== "f16" && shape.inDim % 32 !== 0) return false;
      const limits = device?.limits;
      const elements = packedWorkgroupElements(variant, shape);
      return workgroupSize <= (limits?.maxComputeInvocationsPerWorkgroup ?? 256) &&
        elements <= (device?.workgroupElementBudget ?? Infinity) &&
        4 * elements <= (limits?.maxComputeWorkgroupStorageSize ?? 16384) &&
        Math.ceil(shape.units / (workgroupSize / lanes)) <=
          (limits?.maxComputeWorkgroupsPerDimension ?? 65535) &&
        shape.rows <= (limits?.maxComputeWorkgroupsPerDimension ?? 65535);
    },
  };
}

/**
 * Every packed-projection variant: `q8 row`, `q8 row256` (Q8 activations, a unit per invocation
 * in workgroups of 64 or 256: software adapters, where the larger one quantizes the activations
 * a quarter as often), `q8 lanes8`/`q8 lanes32` (8 or 32 invocations per unit: GPUs), `q8 row unpacked`
 * (the integer products without `dot4I8Packed`, to prove that path wherever it is available),
 * the float-activation forms `f32 row`/`f32 lanes8` (f16 weights, and where the quantized
 * row does not fit the workgroup budget), and `f16 row`/`f16 lanes8`, which read f16 weights as
 * `f16` where the device has `shader-f16` (accumulating in f32).
 *
 * @example
 * ```ts
 * import { PACKED_PROJECTION_VARIANTS } from "./packed_projection.ts";
 * if (!PACKED_PROJECTION_VARIANTS.some((v) => v.name === "q8 row")) throw new Error("missing");
 * ```
 */
export const PACKED_PROJECTION_VARIANTS: readonly PackedProjectionVariant[] = [
  packedVariant("q8 row", "q8", 64, 1),
  packedVariant("q8 row256", "q8", 256, 1),
  packedVariant("q8 lanes8", "q8", 64, 8),
  packedVariant("q8 lanes32", "q8", 256, 32),
  packedVariant("q8 row unpacked", "q8", 64, 1, "unpacked"),
  packedVariant("f32 row", "f32", 64, 1),
  packedVariant("f32 lanes8", "f32", 64, 8),
  packedVariant("f16 row", "f32", 64, 1, "auto", ["shader-f16" as GPUFeatureName]),
  packedVariant("f16 lanes8", "f32", 64, 8, "auto", ["shader-f16" as GPUFeatureName]),
];

/**
 * The packed variant named `name`; throws naming the known ones otherwise.
 *
 * @example
 * ```ts
 * import { packedProjectionVariant } from "./packed_projection.ts";
 * if (packedProjectionVariant("q8 row").lanes !== 1) throw new Error("wrong");
 * ```
 */
export function packedProjectionVariant(name: string): PackedProjectionVariant {
  const variant = PACKED_PROJECTION_VARIANTS.find((v) => v.name === name);
  if (!variant) {
    throw new GpuError(
      "packed projection",
      `variant: expected one of ${
        PACKED_PROJECTION_VARIANTS.map((v) => v.name).join(", ")
      }, got ${name}`,
    );
  }
  return variant;
}

/**
 * The first variant of `preferred` that applies to `shape` on `gpu` (features and budget), else
 * the first of all that does; throws when none does.
 *
 * @example
 * ```ts ignore
 * const variant = choosePackedVariant(gpu, shape, ["q8 row"]);
 * ```
 */
export function choosePackedVariant(
  gpu: ProjectionDevice,
  shape: PackedProjectionShape,
  preferred: readonly string[],
): PackedProjectionVariant {
  const candidates = [
    ...preferred.map(packedProjectionVariant),
    ...PACKED_PROJECTION_VARIANTS.filter((v) => v.dot === "auto" && v.features.length === 0),
  ];
  const features = (gpu as { device?: { features: { has(f: string): boolean } } }).device
    ?.features;
  const found = candidates.find((v) =>
    v.applies(shape, gpu) && v.features.every((f) => features?.has(f) ?? false)
  );
  if (!found) {
    throw new GpuError(
      "packed projection",
      `no variant applies to ${shape.format} ${shape.rows}x${shape.units}x${shape.inDim}`,
    );
  }
  return found;
}

/** Options of {@linkcode packedProjectionKernel}. */
export interface PackedProjectionOptions {
  /** RMSNorm epsilon; 1e-5 by default. */
  eps?: number;
  /** Floats to skip at the start of `x`. */
  xOffset?: number;
  /** Units before this weight block (its outputs' offset); 0 by default. */
  unitOffset?: number;
  /** Floats between consecutive tokens of `out` (store and add); the total units by default. */
  outStride?: number;
  /** Words into `w` where the scales start, when they share its buffer (no `scales` binding). */
  scalesAt?: number;
}

/** A compiled packed projection. */
export interface PackedProjectionKernel {
  /** Name with shape and variant. */
  readonly name: string;
  /** The variant it runs. */
  readonly variant: PackedProjectionVariant;
  /**
   * Binds `w`, `x`, the epilogue's buffers, `scales` (Q8_0/Q4_0) and `normWeight` (with the
   * prologue).
   */
  bind(buffers: Record<string, BufferRange>): Dispatch[];
}

const ROUND_AWAY = /* wgsl */ `
// to nearest, halves away from zero (ggml's roundf); exact: a - trunc(a) has no rounding
fn roundAway(v: f32) -> f32 {
  let a = abs(v);
  let r = trunc(a);
  return sign(v) * select(r, r + 1.0, a - r >= 0.5);
}`;

function dotWgsl(packed: boolean): string {
  return packed ? "fn dot4(a: u32, b: u32) -> i32 { return dot4I8Packed(a, b); }" : /* wgsl */ `
fn dot4(a: u32, b: u32) -> i32 {
  let p = bitcast<i32>(a);
  let q = bitcast<i32>(b);
  return extractBits(p, 0u, 8u) * extractBits(q, 0u, 8u) +
    extractBits(p, 8u, 8u) * extractBits(q, 8u, 8u) +
    extractBits(p, 16u, 8u) * extractBits(q, 16u, 8u) +
    extractBits(p, 24u, 8u) * extractBits(q, 24u, 8u);
}`;
}

function packedWgsl(
  shape: PackedProjectionShape,
  variant: PackedProjectionVariant,
  epilogue: ProjectionEpilogue,
  packedDot: boolean,
  scalesInWeights: boolean,
): string {
  const { format, inDim, pair, norm } = shape;
  const { workgroupSize: wg, lanes, activations } = variant;
  const blocks = inDim / 32;
  const epilogueBindings = bindingNames(epilogue.kind).length;
  const ps = [...Array(pair).keys()];
  const quantized = format !== "f16";
  let binding = epilogueBindings;
  // the scales in their own binding, or after the weights in w (SCALES_AT words in)
  const scalesBinding = quantized && !scalesInWeights
    ? `@group(0) @binding(${binding++}) var<storage, read> scales: array<u32>;`
    : "";
  const normBinding = norm
    ? `@group(0) @binding(${binding++}) var<storage, read> normWeight: array<f32>;`
    : "";
  const head = /* wgsl */ `${variant.features.length ? "enable f16;" : ""}
override IN_DIM: u32;
override UNITS: u32;
override ROWS: u32;
override X_OFFSET: u32;
override UNIT_OFFSET: u32;
override EPS: f32;
const WG: u32 = ${wg}u;
const LANES: u32 = ${lanes}u;
const P: u32 = ${pair}u;
const NORM: bool = ${norm};
@group(0) @binding(0) var<storage, read> w: array<${variant.features.length ? "vec2<f16>" : "u32"}>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
${scalesBinding}
${normBinding}
${epilogueWgsl(epilogue)}
// activation c of token t, normed (norm weight, then 1/rms) when the prologue is on
fn xn(t: u32, c: u32, s: f32) -> f32 {
  let v = x[X_OFFSET + t * IN_DIM + c];
  ${norm ? "return normWeight[c] * v * s;" : "return v;"}
}
${
    quantized
      ? `${scalesInWeights ? "override SCALES_AT: u32;" : ""}
fn blockScale(b: u32) -> f32 {
  let pair = unpack2x16float(${scalesInWeights ? "w[SCALES_AT + b / 2u]" : "scales[b / 2u]"});
  return select(pair.x, pair.y, (b & 1u) == 1u);
}`
      : ""
  }
${
    norm
      ? /* wgsl */ `
var<workgroup> normPartial: array<f32, WG>;
fn workgroupScale(t: u32, lid: u32) -> f32 {
  var sum = 0.0;
  for (var c = lid; c < IN_DIM; c += WG) {
    let v = x[X_OFFSET + t * IN_DIM + c];
    sum += v * v;
  }
  normPartial[lid] = sum;
  workgroupBarrier();
  for (var half = WG / 2u; half > 0u; half /= 2u) {
    if (lid < half) { normPartial[lid] += normPartial[lid + half]; }
    workgroupBarrier();
  }
  let s = 1.0 / sqrt(normPartial[0] / f32(IN_DIM) + EPS);
  workgroupBarrier();
  return s;
}`
      : "fn workgroupScale(t: u32, lid: u32) -> f32 { return 1.0; }"
  }`;
  const staging = activations === "q8"
    ? /* wgsl */ `
const BLOCKS: u32 = ${blocks}u;
var<workgroup> xq: array<u32, ${inDim / 4}>;
var<workgroup> xd: array<f32, ${blocks}>;
${format === "q4_0" ? `var<workgroup> xs: array<i32, ${blocks}>;` : ""}
${ROUND_AWAY}
${dotWgsl(packedDot)}
// Token t's activations as Q8 blocks: quants four to a word, a float scale per block (and,
// for Q4_0, each block's sum of quants). Call from uniform control flow.
fn quantizeActivations(t: u32, lid: u32, s: f32) {
  for (var b = lid; b < BLOCKS; b += WG) {
    var amax = 0.0;
    for (var j = 0u; j < 32u; j++) { amax = max(amax, abs(xn(t, b * 32u + j, s))); }
    let d = amax / 127.0;
    let inv = select(0.0, 1.0 / d, d != 0.0);
    var sum = 0i;
    for (var k = 0u; k < 8u; k++) {
      var word = 0u;
      for (var i = 0u; i < 4u; i++) {
        let q = i32(clamp(roundAway(xn(t, b * 32u + 4u * k + i, s) * inv), -127.0, 127.0));
        sum += q;
        word |= (bitcast<u32>(q) & 0xffu) << (8u * i);
      }
      xq[b * 8u + k] = word;
    }
    xd[b] = d;
    ${format === "q4_0" ? "xs[b] = sum;" : ""}
  }
  workgroupBarrier();
}`
    : "";
  // The product of unit u's row p over this lane's share, into acc{p}.
  let product: string;
  if (activations === "q8") {
    const blockDot = format === "q8_0"
      ? `var dot = 0i;
        for (var k = 0u; k < 8u; k++) { dot += dot4(w[blk * 8u + k], xq[b * 8u + k]); }`
      : `var dot = -8 * xs[b];
        for (var k = 0u; k < 4u; k++) {
          let word = w[blk * 4u + k];
          dot += dot4(word & 0x0f0f0f0fu, xq[b * 8u + k]) +
            dot4((word >> 4u) & 0x0f0f0f0fu, xq[b * 8u + 4u + k]);
        }`;
    product = ps.map((p) => /* wgsl */ `
      {
        let blk = (u * P + ${p}u) * BLOCKS + b;
        ${blockDot}
        acc${p} += f32(dot) * (blockScale(blk) * xd[b]);
      }`).join("");
    product = `for (var b = lane; b < BLOCKS; b += LANES) {${product}\n    }`;
  } else if (format === "f16") {
    const unpackHalves = variant.features.length ? "vec2<f32>" : "unpack2x16float";
    product = /* wgsl */ `
    let words = (IN_DIM + 1u) / 2u;
    for (var c = lane; c < words; c += LANES) {
      let x0 = xn(t, 2u * c, s);
      let x1 = select(0.0, xn(t, min(2u * c + 1u, IN_DIM - 1u), s), 2u * c + 1u < IN_DIM);
      ${
      ps.map((p) =>
        `let h${p} = ${unpackHalves}(w[(u * P + ${p}u) * words + c]);
      acc${p} += h${p}.x * x0 + h${p}.y * x1;`
      ).join("\n      ")
    }
    }`;
  } else {
    const blockSum = format === "q8_0"
      ? `for (var k = 0u; k < 8u; k++) {
          let word = bitcast<i32>(w[blk * 8u + k]);
          let q = vec4<f32>(vec4<i32>(extractBits(word, 0u, 8u), extractBits(word, 8u, 8u),
                                      extractBits(word, 16u, 8u), extractBits(word, 24u, 8u)));
          sum += dot(q, xs4(t, b * 32u + 4u * k, s));
        }`
      : `for (var k = 0u; k < 4u; k++) {
          let word = w[blk * 4u + k];
          let low = vec4<f32>(vec4<u32>(word & 15u, (word >> 8u) & 15u, (word >> 16u) & 15u,
                                        (word >> 24u) & 15u)) - 8.0;
          let high = vec4<f32>(vec4<u32>((word >> 4u) & 15u, (word >> 12u) & 15u,
                                         (word >> 20u) & 15u, word >> 28u)) - 8.0;
          sum += dot(low, xs4(t, b * 32u + 4u * k, s)) + dot(high, xs4(t, b * 32u + 16u + 4u * k, s));
        }`;
    product = /* wgsl */ `
    for (var b = lane; b < IN_DIM / 32u; b += LANES) {${
      ps.map((p) => `
      {
        let blk = (u * P + ${p}u) * (IN_DIM / 32u) + b;
        var sum = 0.0;
        ${blockSum}
        acc${p} += blockScale(blk) * sum;
      }`).join("")
    }
    }`;
  }
  const xs4 = activations === "f32" && quantized
    ? "fn xs4(t: u32, c: u32, s: f32) -> vec4<f32> { return vec4<f32>(xn(t, c, s), xn(t, c + 1u, s), xn(t, c + 2u, s), xn(t, c + 3u, s)); }"
    : "";
  const reduce = lanes > 1
    ? /* wgsl */ `
  ${ps.map((p) => `red[${p}u * WG + lid] = acc${p};`).join("\n  ")}
  workgroupBarrier();
  for (var half = LANES / 2u; half > 0u; half /= 2u) {
    if (lane < half) {
      ${ps.map((p) => `red[${p}u * WG + lid] += red[${p}u * WG + lid + half];`).join("\n      ")}
    }
    workgroupBarrier();
  }
  ${ps.map((p) => `acc${p} = red[${p}u * WG + lid];`).join("\n  ")}`
    : "";
  return /* wgsl */ `
${head}
${staging}
${xs4}
${lanes > 1 ? `var<workgroup> red: array<f32, ${pair * wg}>;` : ""}
@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let t = wid.y;
  let s = workgroupScale(t, lid);
  ${activations === "q8" ? "quantizeActivations(t, lid, s);" : ""}
  let lane = lid % LANES;
  let u = wid.x * (WG / LANES) + lid / LANES;
  ${ps.map((p) => `var acc${p} = 0.0;`).join("\n  ")}
  if (u < UNITS) {
    ${product}
  }
  ${reduce}
  if (lane == 0u && u < UNITS) {
    emit(t, u, ${ps.map((p) => `acc${p}`).join(", ")});
  }
}`;
}

/**
 * Compiles a projection over packed weights: `shape.units · pair` rows of W in `shape.format`'s
 * GPU layout (see `quant.ts`; the rows of the fused layouts permuted, never requantized), with
 * `epilogue` and, when `shape.norm`, the RMSNorm prologue reading `normWeight`.
 *
 * @example
 * ```ts ignore
 * const shape = { format: "q8_0", rows: 1, units: 288, inDim: 768, pair: 1, norm: false } as const;
 * const kernel = await packedProjectionKernel(gpu, shape, { kind: "add" }, packedProjectionVariant("q8 row"));
 * await gpu.submit(kernel.bind({ w, scales, x: hb, out: residual }));
 * ```
 */
export async function packedProjectionKernel(
  gpu: Gpu,
  shape: PackedProjectionShape,
  epilogue: ProjectionEpilogue,
  variant: PackedProjectionVariant,
  options: PackedProjectionOptions = {},
): Promise<PackedProjectionKernel> {
  const { format, rows, units, inDim, norm } = shape;
  const { eps = DEFAULT_NORM_EPS, xOffset = 0, unitOffset = 0 } = options;
  const name = `${epilogue.kind}${
    norm ? "+norm" : ""
  } ${format} ${rows}x${units}x${inDim} ${variant.name}`;
  checkInteger(`${name}: rows`, rows);
  checkInteger(`${name}: units`, units);
  checkInteger(`${name}: inDim`, inDim);
  if (shape.pair !== PAIR[epilogue.kind]) {
    throw new GpuError(name, `pair: expected ${PAIR[epilogue.kind]}, got ${shape.pair}`);
  }
  if (!variant.applies(shape, gpu)) {
    throw new GpuError(name, `variant ${variant.name} does not apply to this shape here`);
  }
  for (const feature of variant.features) {
    if (!gpu.device.features.has(feature)) {
      throw new GpuError(name, `variant ${variant.name} needs the ${feature} feature`);
    }
  }
  const constants = projectionConstants(name, epilogue, {
    inDim,
    units,
    rows,
    xOffset: xOffset,
    unitOffset,
    eps,
    outStride: options.outStride,
  });
  const packedDot = variant.dot === "auto" && hasPackedDot();
  const scalesInWeights = format !== "f16" && options.scalesAt !== undefined;
  if (scalesInWeights) constants.SCALES_AT = options.scalesAt!;
  const code = packedWgsl(shape, variant, epilogue, packedDot, scalesInWeights);
  const names = [
    ...bindingNames(epilogue.kind),
    ...(format === "f16" || scalesInWeights ? [] : ["scales"]),
    ...(norm ? ["normWeight"] : []),
  ];
  const grid: [number, number] = [Math.ceil(units / (variant.workgroupSize / variant.lanes)), rows];
  const kernel = await compileKernel(gpu, name, code, constants, names, grid);
  return { name, variant, bind: (buffers) => kernel.bind(buffers) };
}

/**
 * The dispatches of a projection over a packed matrix, one per row block (each block's units
 * offset), with `preferred` (a tuning's choice) where it applies and otherwise the first
 * variant that does.
 *
 * @example
 * ```ts ignore
 * const steps = await packedMatrixDispatches(gpu, classifier, { kind: "store" }, ["q8 row"], {
 *   rows: 1, x: xb, buffers: { out: logits },
 * });
 * ```
 */
export async function packedMatrixDispatches(
  gpu: Gpu,
  matrix: PackedMatrixBlocks,
  epilogue: ProjectionEpilogue,
  preferred: readonly string[],
  args: {
    rows: number;
    x: BufferRange;
    norm?: boolean;
    normWeight?: BufferRange;
    eps?: number;
    xOffset?: number;
    buffers: Record<string, BufferRange>;
  },
): Promise<Dispatch[]> {
  const pair = PAIR[epilogue.kind];
  const norm = args.norm ?? false;
  if (norm && !args.normWeight) {
    throw new GpuError("packed projection", "normWeight: expected a buffer with norm");
  }
  const dispatches: Dispatch[] = [];
  for (const block of matrix.blocks) {
    const shape = {
      format: matrix.format,
      rows: args.rows,
      units: block.rows / pair,
      inDim: matrix.inDim,
      pair,
      norm,
    };
    const variant = choosePackedVariant(gpu, shape, preferred);
    const kernel = await packedProjectionKernel(gpu, shape, epilogue, variant, {
      eps: args.eps,
      xOffset: args.xOffset,
      unitOffset: block.rowStart / pair,
      outStride: matrix.outDim / pair,
      scalesAt: block.scalesAt,
    });
    dispatches.push(...kernel.bind({
      w: block.weights,
      x: args.x,
      ...(block.scales ? { scales: block.scales } : {}),
      ...(norm ? { normWeight: args.normWeight! } : {}),
      ...args.buffers,
    }));
  }
  return dispatches;
}
