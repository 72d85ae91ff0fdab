/**
 * Attention for batched decoding: each row of a step is one token of its own sequence, at its
 * own position, attending to that sequence's keys and values in a shared pool through a block
 * table. One kernel serves every KV-cache layout:
 * - paged: position `t` lives in pool row `table[t / BLOCK]·BLOCK + t % BLOCK`;
 * - contiguous: paged with one block of `maxSeqLen` positions per sequence;
 * - sliding (ring): the sequence's ring is block `table[0]`, of `BLOCK = window` rows, and
 *   position `t` lives in its row `t % window`.
 *
 * The rows' positions, write slots and table offsets come from the step's row buffer
 * (`batch_rows.ts`), so a step's dispatches depend only on the number of rows.
 *
 * @module
 */
import type { Gpu } from "../device.ts";
import { GpuError } from "../device.ts";
import { compileKernel, type Kernel, WGSL_LOWEST } from "../kernel.ts";
import { checkInteger } from "../../reference/checks.ts";
import { BATCH_ROW, batchRowsBinding } from "../batch_rows.ts";

/** WGSL of the row buffer and block tables, and `poolRow(table, t)`. */
function poolAddressing(rowsBinding: number, tableBinding: number): string {
  return /* wgsl */ `
${batchRowsBinding(rowsBinding)}
@group(0) @binding(${tableBinding}) var<storage, read> blockTables: array<u32>;
override BLOCK: u32;
override RING: bool;
// Pool row of position t of the sequence whose table starts at blockTables[table].
fn poolRow(table: u32, t: u32) -> u32 {
  let block = blockTables[table + select(t / BLOCK, 0u, RING)];
  return block * BLOCK + t % BLOCK;
}`;
}

/** Workgroup size of the batched attention kernel: positions scored at once. */
export const BATCH_ATTENTION_WG = 64;

/** Features of a head each invocation accumulates at most (headDim ≤ 8·64 = 512). */
const MAX_FEATURES = 8;

const WGSL = /* wgsl */ `
override WG: u32 = 64u;
override HEAD_DIM: u32;
override N_HEADS: u32;
override GROUP: u32;          // query heads per key/value head
override KV_DIM: u32;         // key/value heads * HEAD_DIM
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> keyPool: array<f32>;
@group(0) @binding(2) var<storage, read> valuePool: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
${poolAddressing(4, 5)}

// One chunk of WG positions at a time: scores, then values, with a running max and sum
// (online softmax), so any context length runs in fixed workgroup memory.
var<workgroup> weights: array<f32, WG>;
var<workgroup> rowsOf: array<u32, WG>;
var<workgroup> reduce: array<f32, WG>;
// Features each invocation accumulates (d = lid + k·WG), in registers: workgroup arrays stay
// small, which the GL backend compiles in time superlinear in their elements.
override FEATURES: u32;
const MAX_FEATURES = ${MAX_FEATURES}u;

fn reduceMax(lid: u32) -> f32 {
  for (var s = WG / 2u; s > 0u; s = s / 2u) {
    workgroupBarrier();
    if (lid < s) { reduce[lid] = max(reduce[lid], reduce[lid + s]); }
  }
  return workgroupUniformLoad(&reduce[0]);
}

fn reduceSum(lid: u32) -> f32 {
  for (var s = WG / 2u; s > 0u; s = s / 2u) {
    workgroupBarrier();
    if (lid < s) { reduce[lid] = reduce[lid] + reduce[lid + s]; }
  }
  return workgroupUniformLoad(&reduce[0]);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = wid.y;
  let head = wid.x;
  let entry = batchRows[row];
  let pos = entry[${BATCH_ROW.pos}];
  let table = entry[${BATCH_ROW.table}];
  let first = entry[${BATCH_ROW.start}];
  let qBase = (row * N_HEADS + head) * HEAD_DIM;
  let kvBase = (head / GROUP) * HEAD_DIM;
  let scale = inverseSqrt(f32(HEAD_DIM));
  var acc: array<f32, MAX_FEATURES>;
  for (var f = 0u; f < FEATURES; f++) { acc[f] = 0.0; }
  var runningMax = ${WGSL_LOWEST};
  var runningSum = 0.0;
  for (var chunk = first; chunk <= pos; chunk += WG) {
    let t = chunk + lid;
    var score = ${WGSL_LOWEST};
    if (t <= pos) {
      let r = poolRow(table, t);
      rowsOf[lid] = r;
      var dot = 0.0;
      for (var d = 0u; d < HEAD_DIM; d++) { dot += q[qBase + d] * keyPool[r * KV_DIM + kvBase + d]; }
      score = dot * scale;
    }
    reduce[lid] = score;
    let newMax = max(runningMax, reduceMax(lid));
    let rescale = exp(runningMax - newMax);
    let weight = select(0.0, exp(score - newMax), t <= pos);
    weights[lid] = weight;
    workgroupBarrier();
    reduce[lid] = weight;
    runningSum = runningSum * rescale + reduceSum(lid);
    runningMax = newMax;
    let count = min(WG, pos - chunk + 1u);
    for (var f = 0u; f < FEATURES; f++) {
      let d = lid + f * WG;
      if (d < HEAD_DIM) {
        var a = acc[f] * rescale;
        for (var j = 0u; j < count; j++) { a += weights[j] * valuePool[rowsOf[j] * KV_DIM + kvBase + d]; }
        acc[f] = a;
      }
    }
    workgroupBarrier();
  }
  for (var f = 0u; f < FEATURES; f++) {
    let d = lid + f * WG;
    if (d < HEAD_DIM) { out[qBase + d] = acc[f] / runningSum; }
  }
}`;

/** Shape of a {@linkcode batchAttentionKernel}. */
export interface BatchAttentionShape {
  /** Rows in the step (one token of one sequence each). */
  rows: number;
  /** Query heads. */
  nHeads: number;
  /** Key/value heads; divides `nHeads`. */
  nKvHeads: number;
  /** Features per head. */
  headDim: number;
  /** Positions per block (contiguous: `maxSeqLen`; sliding: the window). */
  blockSize: number;
  /** Whether each sequence's cache is a ring of `blockSize` rows (sliding window). */
  ring: boolean;
}

/**
 * Compiles batched attention. Bindings: `q, out (rows·nHeads·headDim)`, `keyPool, valuePool
 * (poolRows·nKvHeads·headDim)`, `rows` (the step's row buffer), `tables` (u32 block
 * ids). One workgroup per (query head, row).
 *
 * @example
 * ```ts ignore
 * const kernel = await batchAttentionKernel(gpu, { rows: 4, nHeads: 8, nKvHeads: 2, headDim: 64, blockSize: 16, ring: false });
 * await gpu.submit([kernel.bind({ q, keyPool, valuePool, out, rows, tables })]);
 * ```
 */
export function batchAttentionKernel(
  gpu: Gpu,
  shape: BatchAttentionShape,
): Promise<Kernel<"q" | "keyPool" | "valuePool" | "out" | "rows" | "tables">> {
  const { rows, nHeads, nKvHeads, headDim, blockSize, ring } = shape;
  const name = `batchAttention ${rows}x${nHeads}/${nKvHeads}x${headDim} ${
    ring ? "ring" : "block"
  }${blockSize}`;
  for (const [field, n] of Object.entries({ rows, nHeads, nKvHeads, headDim, blockSize })) {
    checkInteger(`${name}: ${field}`, n);
  }
  if (nHeads % nKvHeads !== 0) {
    throw new GpuError(name, `nHeads: expected a multiple of nKvHeads ${nKvHeads}, got ${nHeads}`);
  }
  const features = Math.ceil(headDim / BATCH_ATTENTION_WG);
  if (features > MAX_FEATURES) {
    throw new GpuError(
      name,
      `headDim: expected <= ${MAX_FEATURES * BATCH_ATTENTION_WG}, got ${headDim}`,
    );
  }
  return compileKernel(
    gpu,
    name,
    WGSL,
    {
      WG: BATCH_ATTENTION_WG,
      HEAD_DIM: headDim,
      N_HEADS: nHeads,
      GROUP: nHeads / nKvHeads,
      KV_DIM: nKvHeads * headDim,
      BLOCK: blockSize,
      RING: ring ? 1 : 0,
      FEATURES: features,
    },
    ["q", "keyPool", "valuePool", "out", "rows", "tables"],
    [nHeads, rows],
  );
}
