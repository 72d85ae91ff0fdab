/**
 * Matrix–vector and matrix–matrix products: `out[t] = W · x[t]` with `w: (outDim, inDim)`,
 * `x: (rows, inDim)`, `out: (rows, outDim)`. One invocation per output element, reading rows of
 * W as `vec4<f32>` when `inDim` is a multiple of 4.
 *
 * @module
 */
import { type BufferRange, type Dispatch, type Gpu, GpuError } from "../device.ts";
import { compileKernel, type Kernel } from "../kernel.ts";
import { checkInteger } from "../../reference/checks.ts";

/** Shape of a {@linkcode matmulKernel}. */
export interface MatmulShape {
  /** Input vectors (tokens); 1 for a matvec. */
  rows: number;
  /** Rows of W, features out. */
  outDim: number;
  /** Columns of W, features in. */
  inDim: number;
  /** Floats to skip at the start of `x` (e.g. to read only the last token); 0 by default. */
  xOffset?: number;
  /** Floats between consecutive rows of `out`; `outDim` by default (wider when W is split). */
  outStride?: number;
  /** Column of `out` this W's first row writes to; 0 by default (nonzero when W is split). */
  outOffset?: number;
}

/** Tuning of a {@linkcode matmulKernel}. */
export interface MatmulOptions {
  /** Invocations per workgroup (the WGSL `override WG`), 64 by default. */
  workgroupSize?: number;
}

function matmulWgsl(vec4: boolean): string {
  const type = vec4 ? "vec4<f32>" : "f32";
  const reduce = vec4 ? "acc.x + acc.y + acc.z + acc.w" : "acc";
  const zero = vec4 ? "vec4<f32>(0.0)" : "0.0";
  const len = vec4 ? "IN_DIM / 4u" : "IN_DIM";
  return /* wgsl */ `
override WG: u32 = 64u;
override OUT_DIM: u32;
override IN_DIM: u32;
override X_OFFSET: u32 = 0u;   // in units of the element type
override OUT_STRIDE: u32;
override OUT_OFFSET: u32 = 0u;
@group(0) @binding(0) var<storage, read> w: array<${type}>;
@group(0) @binding(1) var<storage, read> x: array<${type}>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let r = gid.x;
  let t = gid.y;
  if (r >= OUT_DIM) { return; }
  let n = ${len};
  let wBase = r * n;
  let xBase = X_OFFSET + t * n;
  var acc = ${zero};
  for (var c = 0u; c < n; c++) {
    acc += w[wBase + c] * x[xBase + c];
  }
  out[t * OUT_STRIDE + OUT_OFFSET + r] = ${reduce};
}`;
}

/**
 * Compiles `out = x · Wᵀ` for a shape. Bindings: `w (outDim·inDim)`, `x (rows·inDim)`,
 * `out (rows·outDim)`.
 *
 * @example
 * ```ts ignore
 * const matmul = await matmulKernel(gpu, { rows: 7, outDim: 768, inDim: 288 });
 * await gpu.submit(matmul.bind({ w, x, out }));
 * ```
 */
export function matmulKernel(
  gpu: Gpu,
  shape: MatmulShape,
  options: MatmulOptions = {},
): Promise<Kernel<"w" | "x" | "out">> {
  const { rows, outDim, inDim, xOffset = 0, outStride = outDim, outOffset = 0 } = shape;
  const name = `matmul ${rows}x${outDim}x${inDim}`;
  const vec4 = inDim % 4 === 0;
  if (vec4 && xOffset % 4 !== 0) {
    throw new GpuError(name, `xOffset: expected a multiple of 4, got ${xOffset}`);
  }
  checkInteger(`${name}: rows`, rows);
  checkInteger(`${name}: outDim`, outDim);
  checkInteger(`${name}: inDim`, inDim);
  const workgroupSize = options.workgroupSize ?? 64;
  return compileKernel(
    gpu,
    name,
    matmulWgsl(vec4),
    {
      WG: workgroupSize,
      OUT_DIM: outDim,
      IN_DIM: inDim,
      X_OFFSET: vec4 ? xOffset / 4 : xOffset,
      OUT_STRIDE: outStride,
      OUT_OFFSET: outOffset,
    },
    ["w", "x", "out"],
    [Math.ceil(outDim / workgroupSize), rows],
  );
}

/**
 * Compiles `out = W · x` for one vector: {@linkcode matmulKernel} with one row.
 *
 * @example
 * ```ts ignore
 * const matvec = await matvecKernel(gpu, { outDim: 768, inDim: 288 });
 * await gpu.submit(matvec.bind({ w, x, out }));
 * ```
 */
export function matvecKernel(
  gpu: Gpu,
  shape: Omit<MatmulShape, "rows">,
  options: MatmulOptions = {},
): Promise<Kernel<"w" | "x" | "out">> {
  return matmulKernel(gpu, { rows: 1, ...shape }, options);
}

/** A row block of a weight matrix resident on the GPU. */
export interface MatrixChunk {
  /** The block's rows, `(rows, inDim)`. */
  buffer: GPUBuffer;
  /** Index of its first row in the whole matrix. */
  rowStart: number;
  /** Rows in the block. */
  rows: number;
}

/**
 * A weight matrix `(outDim, inDim)` uploaded once, split by rows into blocks that each fit the
 * device's storage-binding limit (a 32000x4096 classifier is 500 MiB; many adapters bind 128).
 */
export interface GpuMatrix {
  /** Rows of the whole matrix. */
  outDim: number;
  /** Columns. */
  inDim: number;
  /** Row blocks, in order. */
  chunks: MatrixChunk[];
}

/**
 * Uploads `w: (outDim, inDim)`, split into row blocks of at most `maxBindingBytes` (the
 * device's limit by default), each a multiple of 64 rows unless it is the only one.
 *
 * @example
 * ```ts ignore
 * const classifier = uploadMatrix(gpu, wcls, 32000, 4096);
 * console.log(classifier.chunks.length); // 4 where bindings are limited to 128 MiB
 * ```
 */
export function uploadMatrix(
  gpu: Gpu,
  w: Float32Array,
  outDim: number,
  inDim: number,
  options: { label?: string; maxBindingBytes?: number } = {},
): GpuMatrix {
  const { label = "weights", maxBindingBytes = gpu.limits.maxStorageBufferBindingSize } = options;
  if (w.length !== outDim * inDim) {
    throw new GpuError(
      `upload ${label}`,
      `expected ${outDim}x${inDim} = ${outDim * inDim} floats, got ${w.length}`,
    );
  }
  const fitRows = Math.floor(maxBindingBytes / (inDim * 4));
  const blockRows = fitRows >= outDim ? outDim : Math.floor(fitRows / 64) * 64;
  if (blockRows < 1) {
    throw new GpuError(
      `upload ${label}`,
      `a block of 64 rows of ${inDim} floats exceeds the ${maxBindingBytes}-byte binding limit`,
    );
  }
  const chunks: MatrixChunk[] = [];
  for (let rowStart = 0; rowStart < outDim; rowStart += blockRows) {
    const rows = Math.min(blockRows, outDim - rowStart);
    const buffer = gpu.upload(
      w.subarray(rowStart * inDim, (rowStart + rows) * inDim),
      `${label}[${rowStart}..]`,
    );
    chunks.push({ buffer, rowStart, rows });
  }
  return { outDim, inDim, chunks };
}

/**
 * Dispatches computing `out = x · Wᵀ` for a split matrix, one per row block: `x: (rows, inDim)`
 * from float `xOffset`, `out: (rows, outDim)`.
 *
 * @example
 * ```ts ignore
 * const steps = await matmulDispatches(gpu, classifier, { rows: 1, x, out: logits });
 * await gpu.submit(steps);
 * ```
 */
export async function matmulDispatches(
  gpu: Gpu,
  matrix: GpuMatrix,
  args: { rows: number; x: BufferRange; out: BufferRange; xOffset?: number },
  options: MatmulOptions = {},
): Promise<Dispatch[]> {
  const dispatches: Dispatch[] = [];
  for (const chunk of matrix.chunks) {
    const kernel = await matmulKernel(gpu, {
      rows: args.rows,
      outDim: chunk.rows,
      inDim: matrix.inDim,
      xOffset: args.xOffset,
      outStride: matrix.outDim,
      outOffset: chunk.rowStart,
    }, options);
    dispatches.push(...kernel.bind({ w: chunk.buffer, x: args.x, out: args.out }));
  }
  return dispatches;
}
