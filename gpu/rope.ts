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
import { batchRowWords } from "./batch_rows.ts";
import { type KernelPair, TIGHT } from "./pair.ts";
import { createState } from "./state.ts";
import { Rng } from "../reference/random.ts";
import { rope, ropeRows, ropeTable } from "../reference/rope.ts";

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

// ─── Registry entries: these kernels against their reference (collected in `pairs.ts`) ───

/** Shape of the RoPE family: `rows` tokens of `nHeads` heads from position `pos`. */
export interface RopePairShape {
  /** Tokens (rows) in one call. */
  rows: number;
  /** Query heads. */
  nHeads: number;
  /** Features per head. */
  headDim: number;
  /** Position of the first row. */
  pos: number;
  /** RoPE pairing (interleaved by default). */
  layout: RopeLayout;
}

/** RoPE of `rows` tokens from `state.pos`, in place, angles from a table. */
export const ROPE_PAIR: KernelPair<RopePairShape, { x: Float32Array }> = {
  family: "rope",
  describe: ({ rows, nHeads, headDim, pos, layout }) =>
    `${rows}x${nHeads}x${headDim} pos ${pos} ${layout}`,
  inputs: ({ rows, nHeads, headDim, pos }) => ({
    x: new Rng(headDim * nHeads + pos).uniformArray(rows * nHeads * headDim),
  }),
  reference: ({ rows, headDim, pos, layout }, { x }) => ropeRows(x, pos, rows, headDim, { layout }),
  conformance: [
    { rows: 1, nHeads: 7, headDim: 2, pos: 0, layout: "interleaved" },
    { rows: 1, nHeads: 6, headDim: 48, pos: 5, layout: "interleaved" },
    { rows: 7, nHeads: 8, headDim: 64, pos: 100, layout: "interleaved" },
    { rows: 3, nHeads: 32, headDim: 128, pos: 1000, layout: "interleaved" },
    { rows: 1, nHeads: 6, headDim: 48, pos: 5, layout: "half" },
    { rows: 7, nHeads: 8, headDim: 64, pos: 100, layout: "half" },
    { rows: 3, nHeads: 32, headDim: 128, pos: 1000, layout: "half" },
  ],
  bench: {
    quick: [{ rows: 1, nHeads: 6, headDim: 48, pos: 255, layout: "interleaved" }],
    full: [{ rows: 1, nHeads: 32, headDim: 64, pos: 2047, layout: "interleaved" }],
  },
  // x read and written, one table row of (cos, sin) pairs per token
  bytes: ({ rows, nHeads, headDim }) => 4 * (2 * rows * nHeads * headDim + rows * headDim),
  flops: ({ rows, nHeads, headDim }) => 3 * rows * nHeads * headDim, // 6 per rotated pair
  tolerance: TIGHT,
  variants: [{
    name: "default",
    async record(gpu, { rows, nHeads, headDim, pos, layout }, { x }, buffers) {
      const maxSeqLen = pos + rows;
      const kernel = await ropeKernel(gpu, { rows, nHeads, headDim, maxSeqLen, layout });
      return kernel.bind({
        x: buffers.output(x.length, x),
        table: buffers.input(ropeTable(headDim, maxSeqLen)),
        state: createState(gpu, { pos }),
      });
    },
  }],
};

/** Shape of per-row RoPE: row `r` at `positions[r]`. */
export interface BatchRopePairShape {
  /** Each row's position. */
  positions: number[];
  /** Query heads. */
  nHeads: number;
  /** Features per head. */
  headDim: number;
  /** RoPE pairing (interleaved by default). */
  layout?: RopeLayout;
}

/** RoPE in place, each row at its own position. */
export const BATCH_ROPE_PAIR: KernelPair<BatchRopePairShape, { x: Float32Array }> = {
  family: "batchRope",
  describe: ({ positions, nHeads, headDim, layout = "interleaved" }) =>
    `${positions.length}x${nHeads}x${headDim} at ${positions.join(",")} ${layout}`,
  inputs: ({ positions, nHeads, headDim }) => ({
    x: new Rng(nHeads * headDim + positions.length).uniformArray(
      positions.length * nHeads * headDim,
    ),
  }),
  reference({ positions, nHeads, headDim, layout }, { x }) {
    const width = nHeads * headDim;
    const out = new Float32Array(x.length);
    positions.forEach((pos, r) =>
      out.set(rope(x.subarray(r * width, (r + 1) * width), pos, headDim, { layout }), r * width)
    );
    return out;
  },
  conformance: [
    { positions: [0], nHeads: 1, headDim: 2 },
    { positions: [17, 0, 63, 5], nHeads: 3, headDim: 8 },
    { positions: [1000, 3, 511], nHeads: 32, headDim: 128 },
    { positions: [1000, 3, 511], nHeads: 32, headDim: 128, layout: "half" },
  ],
  bench: {
    quick: [{ positions: [255, 3, 100, 17], nHeads: 6, headDim: 48 }],
    full: [{ positions: Array.from({ length: 16 }, (_, r) => 127 * r), nHeads: 32, headDim: 64 }],
  },
  bytes: ({ positions, nHeads, headDim }) =>
    4 * (2 * positions.length * nHeads * headDim + positions.length * headDim),
  flops: ({ positions, nHeads, headDim }) => 3 * positions.length * nHeads * headDim,
  tolerance: TIGHT,
  variants: [{
    name: "default",
    async record(gpu, { positions, nHeads, headDim, layout }, { x }, buffers) {
      const maxSeqLen = Math.max(...positions) + 1;
      const kernel = await batchRopeKernel(gpu, {
        rows: positions.length,
        nHeads,
        headDim,
        maxSeqLen,
        layout,
      });
      return kernel.bind({
        x: buffers.output(x.length, x),
        table: buffers.input(ropeTable(headDim, maxSeqLen)),
        rows: buffers.input(
          batchRowWords(positions.map((pos) => ({ pos, slot: 0, table: 0, start: 0 }))),
        ),
      });
    },
  }],
};
