/**
 * Matrix–vector and matrix–matrix products over low-precision weights: `out[t] = W · x[t]` with
 * `W (outDim, inDim)` stored as f16, Q8_0, Q4_0 or a K-quant (Q6_K, Q5_K, Q4_K), `x` and `out`
 * f32. Each weight is dequantized in registers and accumulated in f32, so the kernel reads 2,
 * 1.0625, 0.5625 (or 0.82, 0.69, 0.56) bytes per weight instead of 4.
 *
 * GPU layouts (what {@linkcode packMatrix} builds from GGUF's bytes):
 * - `f16`: rows of halves, two per `u32` (low half first), each row padded to an even count;
 *   read through `unpack2x16float` on every adapter, or as `f16` where the device has
 *   `shader-f16`;
 * - `q8_0`, `q4_0`: the blocks' quants, contiguous (8 or 4 words per 32 values, in GGUF's byte
 *   order: for Q4_0 a word's low nibbles are values 4k..4k+3 of the block, its high nibbles
 *   values 16+4k..), and the blocks' f16 scales apart, two per `u32`. Moving the 2-byte scales
 *   out keeps every quant word 4-byte aligned (GGUF's 34- and 18-byte blocks are not);
 * - the K-quants: GGUF's super-blocks as words, Q6_K's f16 scales apart (see `kquant.ts`, whose
 *   kernels come in a `row` and a `cooperative` layout).
 *
 * @module
 */
import { type BufferRange, type Dispatch, type Gpu, GpuError } from "../device.ts";
import { QUANT_BLOCK } from "../../reference/quantize.ts";
import { isKQuantFormat, K_SUPER_BLOCK, type KQuantFormat } from "../../reference/kquants.ts";
import { K_BLOCK_WORDS, type KQuantLayout, kQuantWgsl, packKQuant } from "./kquant.ts";
import { isSoftwareAdapter } from "../tuning.ts";

/** Weight formats these kernels read (f32 weights use `matmul.ts`). */
export type GpuWeightFormat = "f16" | "q8_0" | "q4_0" | KQuantFormat;

/** A weight matrix in a {@linkcode GpuWeightFormat}'s GPU layout, on the CPU. */
export interface PackedMatrix {
  /** Storage format. */
  format: GpuWeightFormat;
  /** Rows. */
  outDim: number;
  /** Columns. */
  inDim: number;
  /** Halves (f16), quants (q8_0, q4_0) or super-blocks (K-quants), as words. */
  weights: Uint32Array;
  /** Block scales as f16 pairs (q8_0, q4_0, q6_k); empty otherwise. */
  scales: Uint32Array;
}

/**
 * Rearranges a matrix stored in GGUF's bytes for `format` (see `reference/quantize.ts`) into the
 * GPU layout. Throws, naming the field, on a size mismatch or an `inDim` that is not whole
 * blocks (32 values for Q8_0/Q4_0, 256 for a K-quant).
 *
 * @example
 * ```ts
 * import { quantize } from "../../reference/quantize.ts";
 * import { packMatrix } from "./quant.ts";
 * const packed = packMatrix(quantize(new Float32Array(64).fill(1), "q4_0"), "q4_0", 2, 32);
 * if (packed.weights.length !== 8 || packed.scales.length !== 1) throw new Error("wrong");
 * ```
 */
export function packMatrix(
  bytes: Uint8Array,
  format: GpuWeightFormat,
  outDim: number,
  inDim: number,
): PackedMatrix {
  const what = `pack ${format} ${outDim}x${inDim}`;
  if (!Number.isInteger(outDim) || outDim < 1 || !Number.isInteger(inDim) || inDim < 1) {
    throw new GpuError(what, `expected positive integer dimensions`);
  }
  if (format === "f16") {
    expectBytes(what, bytes, outDim * inDim * 2);
    const halves = new Uint16Array(bytes.slice().buffer);
    const rowWords = Math.ceil(inDim / 2);
    const out = new Uint16Array(outDim * rowWords * 2);
    for (let r = 0; r < outDim; r++) {
      out.set(halves.subarray(r * inDim, (r + 1) * inDim), r * rowWords * 2);
    }
    return {
      format,
      outDim,
      inDim,
      weights: new Uint32Array(out.buffer),
      scales: new Uint32Array(0),
    };
  }
  if (isKQuantFormat(format)) {
    return { format, outDim, inDim, ...packKQuant(bytes, format, outDim, inDim) };
  }
  if (format !== "q8_0" && format !== "q4_0") {
    throw new GpuError(
      what,
      `format: expected f16, q8_0, q4_0, q4_k, q5_k or q6_k, got "${format}"`,
    );
  }
  if (inDim % QUANT_BLOCK !== 0) {
    throw new GpuError(what, `inDim: expected a multiple of ${QUANT_BLOCK}, got ${inDim}`);
  }
  const blocks = outDim * inDim / QUANT_BLOCK;
  const quantBytes = format === "q8_0" ? 32 : 16;
  const blockBytes = quantBytes + 2;
  expectBytes(what, bytes, blocks * blockBytes);
  const quants = new Uint8Array(blocks * quantBytes);
  const scales = new Uint16Array(blocks + (blocks % 2));
  for (let b = 0; b < blocks; b++) {
    const at = b * blockBytes;
    scales[b] = bytes[at] | (bytes[at + 1] << 8);
    quants.set(bytes.subarray(at + 2, at + blockBytes), b * quantBytes);
  }
  return {
    format,
    outDim,
    inDim,
    weights: new Uint32Array(quants.buffer),
    scales: new Uint32Array(scales.buffer),
  };
}

function expectBytes(what: string, bytes: Uint8Array, expected: number): void {
  if (bytes.byteLength !== expected) {
    throw new GpuError(what, `expected ${expected} bytes, got ${bytes.byteLength}`);
  }
}

/** Options of {@linkcode quantMatmulDispatches}. */
export interface QuantMatmulOptions {
  /** Read f16 weights as `f16` (needs the device's `shader-f16`); default `unpack2x16float`. */
  shaderF16?: boolean;
  /** Invocations per workgroup, 64 by default (a power of two for the cooperative layout). */
  workgroupSize?: number;
  /**
   * A K-quant kernel's layout (see `kquant.ts`): by default `row` on a software adapter, where
   * an invocation is a CPU loop, and `cooperative` elsewhere where it fits the workgroup budget.
   */
  kQuantLayout?: KQuantLayout;
}

/**
 * Whether a `cooperative` K-quant kernel of `workgroupSize` invocations (and as many floats of
 * workgroup memory) fits the device's limits and workgroup budget.
 *
 * @example
 * ```ts
 * import { kQuantCooperativeFits } from "./quant.ts";
 * const limits = { maxComputeInvocationsPerWorkgroup: 256 } as GPUSupportedLimits;
 * if (!kQuantCooperativeFits({ limits, workgroupElementBudget: 128 })) throw new Error("wrong");
 * if (kQuantCooperativeFits({ limits, workgroupElementBudget: 32 })) throw new Error("wrong");
 * ```
 */
export function kQuantCooperativeFits(
  device: { limits: GPUSupportedLimits; workgroupElementBudget?: number },
  workgroupSize = 64,
): boolean {
  return workgroupSize <= device.limits.maxComputeInvocationsPerWorkgroup &&
    workgroupSize <= (device.workgroupElementBudget ?? Infinity);
}

/** The dispatches of a K-quant product (see {@linkcode quantMatmulDispatches}). */
async function kQuantDispatches(
  gpu: Gpu,
  matrix: GpuPackedMatrix & { format: KQuantFormat },
  args: { rows: number; x: BufferRange; out: BufferRange; xOffset?: number },
  options: QuantMatmulOptions,
): Promise<Dispatch[]> {
  const { format, outDim, inDim } = matrix;
  const workgroupSize = options.workgroupSize ?? 64;
  const layout = options.kQuantLayout ??
    (!isSoftwareAdapter(gpu.adapter) && kQuantCooperativeFits(gpu, workgroupSize)
      ? "cooperative"
      : "row");
  const name = `matmul ${format} ${layout} ${args.rows}x${outDim}x${inDim}`;
  if (layout === "cooperative" && !kQuantCooperativeFits(gpu, workgroupSize)) {
    throw new GpuError(
      name,
      `workgroupSize ${workgroupSize} exceeds the device's invocations or workgroup budget (${gpu.workgroupElementBudget})`,
    );
  }
  const dispatches: Dispatch[] = [];
  for (const block of matrix.blocks) {
    const groupsX = Math.min(block.rows, gpu.limits.maxComputeWorkgroupsPerDimension);
    const code = kQuantWgsl(format, layout, workgroupSize, groupsX);
    const pipeline = await gpu.pipeline(name, code, {
      OUT_DIM: block.rows,
      IN_DIM: inDim,
      X_OFFSET: args.xOffset ?? 0,
      ROWS: args.rows,
      OUT_STRIDE: outDim,
      OUT_OFFSET: block.rowStart,
    });
    dispatches.push(
      gpu.dispatch(
        name,
        pipeline,
        [block.weights, args.x, args.out, ...(block.scales ? [block.scales] : [])],
        layout === "row"
          ? [Math.ceil(block.rows / workgroupSize), args.rows]
          : [groupsX, args.rows, Math.ceil(block.rows / groupsX)],
      ),
    );
  }
  return dispatches;
}

/** The WGSL of one format's kernel: one invocation per (output row, token). */
function quantWgsl(format: GpuWeightFormat, inDim: number, shaderF16: boolean): string {
  const header = /* wgsl */ `
override WG: u32 = 64u;
override OUT_DIM: u32;
override IN_DIM: u32;
override X_OFFSET: u32 = 0u;
override ROWS: u32 = 1u;
override OUT_STRIDE: u32; // the whole matrix's rows (OUT_DIM is this row block's)
override OUT_OFFSET: u32 = 0u; // the block's first row
@group(0) @binding(0) var<storage, read> w: array<${shaderF16 ? "f16" : "u32"}>;
${
    format === "f16"
      ? "" // no scales: x and out move up one binding
      : "@group(0) @binding(3) var<storage, read> scales: array<u32>;"
  }
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
`;
  const main = (body: string) => /* wgsl */ `
@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let r = gid.x;
  let t = gid.y;
  if (r >= OUT_DIM || t >= ROWS) { return; }
  let xBase = X_OFFSET + t * IN_DIM;
  var acc = 0.0;
${body}
  out[t * OUT_STRIDE + OUT_OFFSET + r] = acc;
}`;
  const xv = (i: string) => `vec4<f32>(x[${i}], x[${i} + 1u], x[${i} + 2u], x[${i} + 3u])`;
  const scale = /* wgsl */ `
fn scale(b: u32) -> f32 {
  let pair = unpack2x16float(scales[b / 2u]);
  return select(pair.x, pair.y, (b & 1u) == 1u);
}`;
  if (format === "f16" && shaderF16) {
    return "enable f16;\n" + header + main(/* wgsl */ `
  let rowStart = r * ((IN_DIM + 1u) / 2u) * 2u;
  for (var c = 0u; c < IN_DIM; c++) {
    acc += f32(w[rowStart + c]) * x[xBase + c];
  }`);
  }
  if (format === "f16") {
    const tail = inDim % 2 === 1
      ? "  acc += unpack2x16float(w[rowStart + IN_DIM / 2u]).x * x[xBase + IN_DIM - 1u];"
      : "";
    return header + main(/* wgsl */ `
  let rowStart = r * ((IN_DIM + 1u) / 2u);
  for (var c = 0u; c < IN_DIM / 2u; c++) {
    let pair = unpack2x16float(w[rowStart + c]);
    acc += pair.x * x[xBase + 2u * c] + pair.y * x[xBase + 2u * c + 1u];
  }
${tail}`);
  }
  if (format === "q8_0") {
    return header + scale + main(/* wgsl */ `
  let blocks = IN_DIM / 32u;
  for (var b = 0u; b < blocks; b++) {
    let block = r * blocks + b;
    var sum = 0.0;
    for (var k = 0u; k < 8u; k++) {
      let word = i32(w[block * 8u + k]);
      let q = vec4<f32>(vec4<i32>(extractBits(word, 0u, 8u), extractBits(word, 8u, 8u),
                                  extractBits(word, 16u, 8u), extractBits(word, 24u, 8u)));
      sum += dot(q, ${xv("xBase + b * 32u + 4u * k")});
    }
    acc += scale(block) * sum;
  }`);
  }
  return header + scale + main(/* wgsl */ `
  let blocks = IN_DIM / 32u;
  for (var b = 0u; b < blocks; b++) {
    let block = r * blocks + b;
    var sum = 0.0;
    for (var k = 0u; k < 4u; k++) {
      let word = w[block * 4u + k];
      let low = vec4<f32>(vec4<u32>(word & 15u, (word >> 8u) & 15u, (word >> 16u) & 15u,
                                    (word >> 24u) & 15u)) - 8.0;
      let high = vec4<f32>(vec4<u32>((word >> 4u) & 15u, (word >> 12u) & 15u,
                                     (word >> 20u) & 15u, word >> 28u)) - 8.0;
      sum += dot(low, ${xv("xBase + b * 32u + 4u * k")});
      sum += dot(high, ${xv("xBase + b * 32u + 16u + 4u * k")});
    }
    acc += scale(block) * sum;
  }`);
}

/** A row block of a {@linkcode GpuPackedMatrix}: its rows' weights and scales. */
export interface GpuPackedBlock {
  /** The block's weights, in the format's GPU layout. */
  weights: GPUBuffer;
  /** The block's scales (q8_0, q4_0, q6_k), unless they follow the weights in `weights`. */
  scales?: GPUBuffer;
  /**
   * Where the scales start in `weights`, in words, when they share its buffer (see
   * {@linkcode uploadPackedCombined}: one binding fewer, for kernels at the 8-binding default).
   */
  scalesAt?: number;
  /** Index of its first row in the whole matrix. */
  rowStart: number;
  /** Rows in the block. */
  rows: number;
}

/** A {@linkcode PackedMatrix} uploaded to the GPU, in row blocks that fit the binding limit. */
export interface GpuPackedMatrix {
  /** Storage format. */
  format: GpuWeightFormat;
  /** Rows. */
  outDim: number;
  /** Columns. */
  inDim: number;
  /** Row blocks, in order: one unless the weights exceed the binding limit. */
  blocks: GpuPackedBlock[];
  /** Bytes resident on the GPU. */
  bytes: number;
}

/**
 * Rows per block of a packed `(outDim, inDim)` matrix in `format` under a binding limit of
 * `maxBindingBytes`: every row when its weights fit, else the most that fit, rounded down to a
 * multiple of 64 (as f32 matrices split, `matmul.ts`), which also keeps each block's scales
 * starting on a whole word. Blocks are whole rows, so a K-quant block holds whole super-blocks
 * (a row is `inDim / 256` of them). Throws, with sizes, when not even 64 rows fit.
 *
 * @example
 * ```ts
 * import { packedBlockRows } from "./quant.ts";
 * // an f16 32000x4096 classifier (262 MB) under WebGPU's default 128 MiB: two blocks
 * if (packedBlockRows("f16", 32000, 4096, 2 ** 27) !== 16384) throw new Error("wrong");
 * ```
 */
export function packedBlockRows(
  format: GpuWeightFormat,
  outDim: number,
  inDim: number,
  maxBindingBytes: number,
): number {
  const rowBytes = packedRowWords(format, inDim) * 4;
  const fitRows = Math.floor(maxBindingBytes / rowBytes);
  if (fitRows >= outDim) return outDim;
  const blockRows = Math.floor(fitRows / 64) * 64;
  if (blockRows < 1) {
    throw new GpuError(
      `pack ${format} ${outDim}x${inDim}`,
      `a block of 64 rows (${
        64 * rowBytes
      } bytes) exceeds the ${maxBindingBytes}-byte binding limit`,
    );
  }
  return blockRows;
}

/** 32-bit words of one packed row's weights (not its scales). */
function packedRowWords(format: GpuWeightFormat, inDim: number): number {
  if (format === "f16") return Math.ceil(inDim / 2);
  if (isKQuantFormat(format)) return inDim / K_SUPER_BLOCK * K_BLOCK_WORDS[format];
  return inDim / QUANT_BLOCK * (format === "q8_0" ? 8 : 4);
}

/** f16 scales of one packed row, kept apart from its weights (two a word). */
function packedRowScales(format: GpuWeightFormat, inDim: number): number {
  if (format === "q8_0" || format === "q4_0") return inDim / QUANT_BLOCK;
  return format === "q6_k" ? inDim / K_SUPER_BLOCK : 0; // f16, q4_k, q5_k: none apart
}

/**
 * A packed matrix cut into row blocks of {@linkcode packedBlockRows} rows: each block's weights
 * and scales (views of `packed`'s, no copy).
 *
 * @example
 * ```ts
 * import { quantize } from "../../reference/quantize.ts";
 * import { packMatrix, packedRowBlocks } from "./quant.ts";
 * const packed = packMatrix(quantize(new Float32Array(130 * 32), "q8_0"), "q8_0", 130, 32);
 * const blocks = packedRowBlocks(packed, 64 * 32);
 * if (blocks.map((b) => b.rows).join() !== "64,64,2") throw new Error("wrong");
 * ```
 */
export function packedRowBlocks(
  packed: PackedMatrix,
  maxBindingBytes: number,
): { rowStart: number; rows: number; weights: Uint32Array; scales: Uint32Array }[] {
  const { format, outDim, inDim } = packed;
  const blockRows = packedBlockRows(format, outDim, inDim, maxBindingBytes);
  const rowWords = packedRowWords(format, inDim);
  const rowScales = packedRowScales(format, inDim); // f16 halves, two a word
  const blocks = [];
  for (let rowStart = 0; rowStart < outDim; rowStart += blockRows) {
    const rows = Math.min(blockRows, outDim - rowStart);
    blocks.push({
      rowStart,
      rows,
      weights: packed.weights.subarray(rowStart * rowWords, (rowStart + rows) * rowWords),
      scales: packed.scales.subarray(
        rowStart * rowScales / 2, // even: rowStart is a multiple of 64
        Math.ceil((rowStart + rows) * rowScales / 2),
      ),
    });
  }
  return blocks;
}

/**
 * Uploads a packed matrix, in row blocks when its weights exceed `maxBindingBytes` (the
 * device's storage-binding limit by default).
 *
 * @example
 * ```ts ignore
 * const wq = uploadPacked(gpu, packMatrix(quantize(w, "q8_0"), "q8_0", 288, 288));
 * ```
 */
export function uploadPacked(
  gpu: Gpu,
  packed: PackedMatrix,
  label = "weights",
  maxBindingBytes: number = gpu.limits.maxStorageBufferBindingSize,
): GpuPackedMatrix {
  const blocks = packedRowBlocks(packed, maxBindingBytes).map((block) => ({
    rowStart: block.rowStart,
    rows: block.rows,
    weights: gpu.upload(block.weights, `${label}[${block.rowStart}..]`),
    scales: block.scales.length
      ? gpu.upload(block.scales, `${label}[${block.rowStart}..] scales`)
      : undefined,
  }));
  return {
    format: packed.format,
    outDim: packed.outDim,
    inDim: packed.inDim,
    blocks,
    bytes: packed.weights.byteLength + packed.scales.byteLength,
  };
}

/**
 * The dispatches computing `out = x · Wᵀ` for `rows` vectors: `x (rows, inDim)` from float
 * `xOffset`, `out (rows, outDim)`.
 *
 * @example
 * ```ts ignore
 * const steps = await quantMatmulDispatches(gpu, wq, { rows: 1, x, out });
 * await gpu.submit(steps);
 * ```
 */
export async function quantMatmulDispatches(
  gpu: Gpu,
  matrix: GpuPackedMatrix,
  args: { rows: number; x: BufferRange; out: BufferRange; xOffset?: number },
  options: QuantMatmulOptions = {},
): Promise<Dispatch[]> {
  const { format, outDim, inDim } = matrix;
  if (isKQuantFormat(format)) {
    return kQuantDispatches(gpu, { ...matrix, format }, args, options);
  }
  const shaderF16 = format === "f16" && (options.shaderF16 ?? false);
  const name = `matmul ${format}${shaderF16 ? " shader-f16" : ""} ${args.rows}x${outDim}x${inDim}`;
  if (shaderF16 && !gpu.device.features.has("shader-f16")) {
    throw new GpuError(name, "the device was created without the shader-f16 feature");
  }
  const workgroupSize = options.workgroupSize ?? 64;
  const code = quantWgsl(format, inDim, shaderF16);
  const dispatches: Dispatch[] = [];
  for (const block of matrix.blocks) {
    const pipeline = await gpu.pipeline(name, code, {
      WG: workgroupSize,
      OUT_DIM: block.rows,
      IN_DIM: inDim,
      X_OFFSET: args.xOffset ?? 0,
      ROWS: args.rows,
      OUT_STRIDE: outDim,
      OUT_OFFSET: block.rowStart,
    });
    dispatches.push(
      gpu.dispatch(name, pipeline, [
        block.weights,
        args.x,
        args.out,
        ...(block.scales ? [block.scales] : []),
      ], [
        Math.ceil(block.rows / workgroupSize),
        args.rows,
      ]),
    );
  }
  return dispatches;
}

/**
 * Uploads a packed matrix as {@linkcode uploadPacked} does, but each row block's scales follow
 * its weights in one buffer (`scalesAt` words in): the packed projections read both through one
 * binding, which keeps the fused QKV kernel within WebGPU's default of 8 storage buffers. Blocks
 * are cut so that weights and scales together fit `maxBindingBytes`.
 *
 * @example
 * ```ts ignore
 * const wqkv = uploadPackedCombined(gpu, packMatrix(bytes, "q8_0", 864, 288), "wqkv");
 * ```
 */
export function uploadPackedCombined(
  gpu: Gpu,
  packed: PackedMatrix,
  label = "weights",
  maxBindingBytes: number = gpu.limits.maxStorageBufferBindingSize,
): GpuPackedMatrix {
  const { format, inDim } = packed;
  const weightBytes = packedRowWords(format, inDim) * 4;
  const scaleBytes = format === "f16" ? 0 : inDim / QUANT_BLOCK * 2;
  // the scales' share taken off the limit (plus a word for an odd count's padding)
  const limit = Math.floor((maxBindingBytes - 4) * weightBytes / (weightBytes + scaleBytes));
  const blocks = packedRowBlocks(packed, limit).map((block) => {
    const words = new Uint32Array(block.weights.length + block.scales.length);
    words.set(block.weights);
    words.set(block.scales, block.weights.length);
    return {
      rowStart: block.rowStart,
      rows: block.rows,
      weights: gpu.upload(words, `${label}[${block.rowStart}..]`),
      scalesAt: block.weights.length,
    };
  });
  return {
    format,
    outDim: packed.outDim,
    inDim,
    blocks,
    bytes: packed.weights.byteLength + packed.scales.byteLength,
  };
}
