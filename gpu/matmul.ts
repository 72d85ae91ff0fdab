/**
 * Matrix–vector and matrix–matrix products: `out[t] = W · x[t]` with `w: (outDim, inDim)`,
 * `x: (rows, inDim)`, `out: (rows, outDim)`. One invocation per output element, reading rows of
 * W as `vec4<f32>` when `inDim` is a multiple of 4.
 *
 * @module
 */
import type { Gpu } from "./device.ts";
import { checkDimension, compileKernel, type Kernel } from "./kernel.ts";

/** Shape of a {@linkcode matmulKernel}. */
export interface MatmulShape {
  /** Input vectors (tokens); 1 for a matvec. */
  rows: number;
  /** Rows of W, features out. */
  outDim: number;
  /** Columns of W, features in. */
  inDim: number;
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
  let xBase = t * n;
  var acc = ${zero};
  for (var c = 0u; c < n; c++) {
    acc += w[wBase + c] * x[xBase + c];
  }
  out[t * OUT_DIM + r] = ${reduce};
}`;
}

/**
 * Compiles `out = x · Wᵀ` for a shape. Bindings: `w (outDim·inDim)`, `x (rows·inDim)`,
 * `out (rows·outDim)`.
 *
 * @example
 * ```ts ignore
 * const matmul = await matmulKernel(gpu, { rows: 7, outDim: 768, inDim: 288 });
 * await gpu.submit([matmul.bind({ w, x, out })]);
 * ```
 */
export function matmulKernel(
  gpu: Gpu,
  shape: MatmulShape,
  options: MatmulOptions = {},
): Promise<Kernel<"w" | "x" | "out">> {
  const { rows, outDim, inDim } = shape;
  const name = `matmul ${rows}x${outDim}x${inDim}`;
  checkDimension(name, "rows", rows);
  checkDimension(name, "outDim", outDim);
  checkDimension(name, "inDim", inDim);
  const workgroupSize = options.workgroupSize ?? 64;
  return compileKernel(
    gpu,
    name,
    matmulWgsl(inDim % 4 === 0),
    { WG: workgroupSize, OUT_DIM: outDim, IN_DIM: inDim },
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
 * await gpu.submit([matvec.bind({ w, x, out })]);
 * ```
 */
export function matvecKernel(
  gpu: Gpu,
  shape: Omit<MatmulShape, "rows">,
  options: MatmulOptions = {},
): Promise<Kernel<"w" | "x" | "out">> {
  return matmulKernel(gpu, { rows: 1, ...shape }, options);
}
