/**
 * Rotary positional embedding, in place on `x: (rows, nHeads·headDim)` (queries or keys of
 * `rows` tokens at positions `state.pos + row`), one invocation per rotated pair. Angles come
 * from a `(maxSeqLen, headDim/2)` table of (cos, sin) built once by `ropeTable`.
 *
 * @module
 */
import type { Gpu } from "./device.ts";
import { compileElementwise, elementwiseWgsl, type Kernel, WGSL_NAN } from "./kernel.ts";
import { STATE, stateBinding } from "./state.ts";
import { BATCH_ROW, batchRowsBinding } from "./batch_rows.ts";
import type { RopeLayout } from "../reference/rope.ts";
import { GpuError } from "./device.ts";

/** RoPE's WGSL, each row's position read by `position` from what `positionSource` declares. */
function ropeWgsl(positionSource: string, position: string): string {
  return elementwiseWgsl(
    `override HEAD_DIM: u32;
override WIDTH: u32;       // nHeads * HEAD_DIM
override MAX_SEQ: u32;
override HALF_LAYOUT: bool; // pairs (i, i + HEAD_DIM/2) instead of (2i, 2i+1)
@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read> table: array<vec2<f32>>;
${positionSource}`,
    `let half = HEAD_DIM / 2u;
  let row = i / (WIDTH / 2u);
  let pair = i % (WIDTH / 2u);
  let j = pair % half;
  let start = row * WIDTH + (pair / half) * HEAD_DIM;
  let a = select(start + 2u * j, start + j, HALF_LAYOUT);
  let b = select(a + 1u, a + half, HALF_LAYOUT);
  let pos = ${position};
  // Past the table there is no angle: poison the output rather than reuse a wrong one.
  let cs = select(vec2<f32>(${WGSL_NAN}), table[min(pos, MAX_SEQ - 1u) * half + j], pos < MAX_SEQ);
  let xa = x[a];
  let xb = x[b];
  x[a] = xa * cs.x - xb * cs.y;
  x[b] = xa * cs.y + xb * cs.x;`,
  );
}

const WGSL = ropeWgsl(stateBinding(2), `state[${STATE.pos}u] + row`);
const BY_ROW_WGSL = ropeWgsl(batchRowsBinding(2), `batchRows[row][${BATCH_ROW.pos}]`);

/** Shape of a {@linkcode ropeKernel}. */
export interface RopeShape {
  /** Tokens, at positions `state.pos + row`. */
  rows: number;
  /** Heads per token (query or key/value heads). */
  nHeads: number;
  /** Features per head; even. */
  headDim: number;
  /** Positions in the table. */
  maxSeqLen: number;
  /** Feature pairing; `"interleaved"` by default. */
  layout?: RopeLayout;
}

/**
 * Compiles RoPE for a shape. Bindings: `x (rows·nHeads·headDim)` (rotated in place),
 * `table` from `ropeTable(headDim, maxSeqLen, theta)`, `state` (u32; reads `pos`).
 *
 * @example
 * ```ts ignore
 * const table = gpu.upload(ropeTable(48, 256));
 * const ropeQ = await ropeKernel(gpu, { rows: 1, nHeads: 6, headDim: 48, maxSeqLen: 256 });
 * await gpu.submit(ropeQ.bind({ x: q, table, state }));
 * ```
 */
export function ropeKernel(gpu: Gpu, shape: RopeShape): Promise<Kernel<"x" | "table" | "state">> {
  return compileRope(gpu, "rope", WGSL, shape, "state");
}

/**
 * RoPE for batched decoding: row `r` of `x` turns by the position its entry in the step's row
 * buffer gives (`batch_rows.ts`), not `state.pos + r`. Bindings: `x`, `table`, `rows`.
 *
 * @example
 * ```ts ignore
 * const rope = await batchRopeKernel(gpu, { rows: 4, nHeads: 8, headDim: 64, maxSeqLen: 1024 });
 * await gpu.submit(rope.bind({ x: q, table, rows }));
 * ```
 */
export function batchRopeKernel(
  gpu: Gpu,
  shape: RopeShape,
): Promise<Kernel<"x" | "table" | "rows">> {
  return compileRope(gpu, "batchRope", BY_ROW_WGSL, shape, "rows");
}

function compileRope<P extends string>(
  gpu: Gpu,
  kernel: string,
  code: string,
  shape: RopeShape,
  positions: P,
): Promise<Kernel<"x" | "table" | P>> {
  const { rows, nHeads, headDim, maxSeqLen, layout = "interleaved" } = shape;
  const name = `${kernel} ${rows}x${nHeads}x${headDim} (${layout})`;
  if (headDim % 2 !== 0) {
    throw new GpuError(name, `headDim: expected an even number, got ${headDim}`);
  }
  return compileElementwise(
    gpu,
    name,
    code,
    (rows * nHeads * headDim) / 2,
    ["x", "table", positions],
    {
      HEAD_DIM: headDim,
      WIDTH: nHeads * headDim,
      MAX_SEQ: maxSeqLen,
      HALF_LAYOUT: layout === "half" ? 1 : 0,
    },
  );
}
