/**
 * The per-row steps of batched decoding that depend on each row's own position: RoPE at the
 * row's position, and the KV write into the pool row its sequence's layout assigns. Both read
 * the per-step row buffer of `batch_attention.ts`.
 *
 * @module
 */
import type { Gpu } from "./device.ts";
import { GpuError } from "./device.ts";
import { compileElementwise, elementwiseWgsl, type Kernel } from "./kernel.ts";
import type { RopeLayout } from "../reference/rope.ts";

const ROPE_WGSL = elementwiseWgsl(
  `override HEAD_DIM: u32;
override WIDTH: u32;       // nHeads * HEAD_DIM
override MAX_SEQ: u32;
override HALF_LAYOUT: bool; // pairs (i, i + HEAD_DIM/2) instead of (2i, 2i+1)
@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read> table: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read> batchRows: array<vec4<u32>>;`,
  `let half = HEAD_DIM / 2u;
  let row = i / (WIDTH / 2u);
  let pair = i % (WIDTH / 2u);
  let j = pair % half;
  let start = row * WIDTH + (pair / half) * HEAD_DIM;
  let a = select(start + 2u * j, start + j, HALF_LAYOUT);
  let b = select(a + 1u, a + half, HALF_LAYOUT);
  let pos = batchRows[row].x;
  // Past the table there is no angle: poison the output rather than reuse a wrong one.
  let cs = select(vec2<f32>(bitcast<f32>(0x7fc00000u)), table[min(pos, MAX_SEQ - 1u) * half + j], pos < MAX_SEQ);
  let xa = x[a];
  let xb = x[b];
  x[a] = xa * cs.x - xb * cs.y;
  x[b] = xa * cs.y + xb * cs.x;`,
);

/** Shape of a {@linkcode batchRopeKernel}. */
export interface BatchRopeShape {
  /** Rows, each at the position its row entry gives. */
  rows: number;
  /** Heads per row (query or key/value heads). */
  nHeads: number;
  /** Features per head; even. */
  headDim: number;
  /** Positions in the angle table. */
  maxSeqLen: number;
  /** Feature pairing; `"interleaved"` by default. */
  layout?: RopeLayout;
}

/**
 * RoPE in place on `x: (rows, nHeads·headDim)`, row `r` at position `rows[r].pos`. Bindings:
 * `x`, `table` (from `ropeTable`), `rows` (the step's row buffer).
 *
 * @example
 * ```ts ignore
 * const rope = await batchRopeKernel(gpu, { rows: 4, nHeads: 8, headDim: 64, maxSeqLen: 1024 });
 * await gpu.submit([rope.bind({ x: q, table, rows })]);
 * ```
 */
export function batchRopeKernel(
  gpu: Gpu,
  shape: BatchRopeShape,
): Promise<Kernel<"x" | "table" | "rows">> {
  const { rows, nHeads, headDim, maxSeqLen, layout = "interleaved" } = shape;
  const name = `batchRope ${rows}x${nHeads}x${headDim} (${layout})`;
  if (headDim % 2 !== 0) {
    throw new GpuError(name, `headDim: expected an even number, got ${headDim}`);
  }
  return compileElementwise(gpu, name, ROPE_WGSL, (rows * nHeads * headDim) / 2, [
    "x",
    "table",
    "rows",
  ], {
    HEAD_DIM: headDim,
    WIDTH: nHeads * headDim,
    MAX_SEQ: maxSeqLen,
    HALF_LAYOUT: layout === "half" ? 1 : 0,
  });
}

const WRITE_WGSL = elementwiseWgsl(
  `override KV_DIM: u32;
@group(0) @binding(0) var<storage, read> k: array<f32>;
@group(0) @binding(1) var<storage, read> v: array<f32>;
@group(0) @binding(2) var<storage, read_write> keyPool: array<f32>;
@group(0) @binding(3) var<storage, read_write> valuePool: array<f32>;
@group(0) @binding(4) var<storage, read> batchRows: array<vec4<u32>>;`,
  `let at = batchRows[i / KV_DIM].y * KV_DIM + i % KV_DIM;
  keyPool[at] = k[i];
  valuePool[at] = v[i];`,
);

/**
 * Writes each row's key and value, `(rows, kvDim)` each, into pool row `rows[r].slot`.
 * Bindings: `k, v`, `keyPool, valuePool (poolRows·kvDim)`, `rows`.
 *
 * @example
 * ```ts ignore
 * const write = await batchKvWriteKernel(gpu, 4, 128);
 * await gpu.submit([write.bind({ k, v, keyPool, valuePool, rows })]);
 * ```
 */
export function batchKvWriteKernel(
  gpu: Gpu,
  rows: number,
  kvDim: number,
): Promise<Kernel<"k" | "v" | "keyPool" | "valuePool" | "rows">> {
  return compileElementwise(
    gpu,
    `batchKvWrite ${rows}x${kvDim}`,
    WRITE_WGSL,
    rows * kvDim,
    ["k", "v", "keyPool", "valuePool", "rows"],
    { KV_DIM: kvDim },
  );
}
