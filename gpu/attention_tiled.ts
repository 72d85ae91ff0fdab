/**
 * Tiled causal attention for prefill: one workgroup per (query head, tile of 32 queries), one
 * invocation per query. Keys and values are staged through workgroup memory a tile at a time
 * (shared by the tile's 32 queries) and folded in with an online softmax: each key tile's
 * scores, one rescale of the running sum and accumulator, then the weighted values.
 *
 * @module
 */
import { type BufferRange, type Dispatch, type Gpu, GpuError } from "./device.ts";
import { compileKernel } from "./kernel.ts";
import { STATE, stateBinding } from "./state.ts";
import { checkInteger } from "../reference/_checks.ts";
import type { AttentionKernel, AttentionKernelShape } from "./attention.ts";

const QUERY_TILE = 32;
/** Workgroup memory the key and value tiles may use; WebGPU's guaranteed minimum. */
const WORKGROUP_BYTES = 16384;

function tiledWgsl(headDim: number, keyTile: number): string {
  return /* wgsl */ `
override N_HEADS: u32;
override N_KV_HEADS: u32;
override ROWS: u32;
override SCALE: f32;
const HD: u32 = ${headDim}u;
const TQ: u32 = ${QUERY_TILE}u;
const TK: u32 = ${keyTile}u;
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> keyCache: array<f32>;
@group(0) @binding(2) var<storage, read> valueCache: array<f32>;
${stateBinding(3)}
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
var<workgroup> kTile: array<f32, ${keyTile * headDim}>;
var<workgroup> vTile: array<f32, ${keyTile * headDim}>;
var<workgroup> lastShared: u32;

@compute @workgroup_size(${QUERY_TILE})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let head = wid.x;
  let kvBase = (head / (N_HEADS / N_KV_HEADS)) * HD;
  let kvDim = N_KV_HEADS * HD;
  let t = wid.y * TQ + lid;
  let inRange = t < ROWS;
  if (lid == 0u) { lastShared = state[${STATE.pos}u] + min(ROWS, (wid.y + 1u) * TQ) - 1u; }
  let tileLast = workgroupUniformLoad(&lastShared); // the tile's last query attends to 0..=tileLast
  let myLast = state[${STATE.pos}u] + t;
  let qBase = (t * N_HEADS + head) * HD;
  var qv: array<f32, HD>;
  var acc: array<f32, HD>;
  if (inRange) {
    for (var d = 0u; d < HD; d++) { qv[d] = q[qBase + d] * SCALE; }
  }
  var runningMax = -3.402823e38;
  var runningSum = 0.0;
  for (var start = 0u; start <= tileLast; start += TK) {
    for (var e = lid; e < TK * HD; e += TQ) {
      let p = min(start + e / HD, tileLast);
      let at = p * kvDim + kvBase + e % HD;
      kTile[e] = keyCache[at];
      vTile[e] = valueCache[at];
    }
    workgroupBarrier();
    if (inRange && myLast >= start) {
      let count = min(TK, myLast + 1u - start);
      var scores: array<f32, TK>;
      var tileMax = runningMax;
      for (var j = 0u; j < count; j++) {
        var s = 0.0;
        for (var d = 0u; d < HD; d++) { s += qv[d] * kTile[j * HD + d]; }
        scores[j] = s;
        tileMax = max(tileMax, s);
      }
      let correction = exp(runningMax - tileMax);
      runningSum *= correction;
      for (var d = 0u; d < HD; d++) { acc[d] *= correction; }
      for (var j = 0u; j < count; j++) {
        let p = exp(scores[j] - tileMax);
        runningSum += p;
        for (var d = 0u; d < HD; d++) { acc[d] += p * vTile[j * HD + d]; }
      }
      runningMax = tileMax;
    }
    workgroupBarrier();
  }
  if (inRange) {
    for (var d = 0u; d < HD; d++) { out[qBase + d] = acc[d] / runningSum; }
  }
}`;
}

/**
 * Compiles the tiled prefill attention; the same bindings and result as `attentionKernel`:
 * `q (rows·nHeads·headDim)`, `keyCache, valueCache (maxSeqLen·nKvHeads·headDim)` holding
 * positions up to `state.pos + rows − 1`, `state`, `out (rows·nHeads·headDim)`.
 *
 * @example
 * ```ts ignore
 * const attend = await tiledAttentionKernel(gpu, { rows: 64, nHeads: 6, nKvHeads: 6, headDim: 48 });
 * await gpu.submit(attend.bind({ q, keyCache, valueCache, state, out }));
 * ```
 */
export async function tiledAttentionKernel(
  gpu: Gpu,
  shape: Omit<AttentionKernelShape, "splits">,
): Promise<AttentionKernel> {
  const { rows, nHeads, nKvHeads, headDim } = shape;
  const name = `attention tiled ${rows}x${nHeads}/${nKvHeads}x${headDim}`;
  checkInteger(`${name}: rows`, rows);
  checkInteger(`${name}: nHeads`, nHeads);
  checkInteger(`${name}: nKvHeads`, nKvHeads);
  checkInteger(`${name}: headDim`, headDim);
  if (nHeads % nKvHeads !== 0) {
    throw new GpuError(name, `nHeads (${nHeads}) must be divisible by nKvHeads (${nKvHeads})`);
  }
  const keyTile = Math.min(32, Math.floor(WORKGROUP_BYTES / (2 * 4 * headDim)));
  if (keyTile < 1) {
    throw new GpuError(
      name,
      `headDim ${headDim} needs more than ${WORKGROUP_BYTES} bytes of workgroup memory`,
    );
  }
  const kernel = await compileKernel(
    gpu,
    name,
    tiledWgsl(headDim, keyTile),
    { N_HEADS: nHeads, N_KV_HEADS: nKvHeads, ROWS: rows, SCALE: 1 / Math.sqrt(headDim) },
    ["q", "keyCache", "valueCache", "state", "out"],
    [nHeads, Math.ceil(rows / QUERY_TILE)],
  );
  return {
    name,
    splits: 1,
    // the key and value tiles, and the shared last position (rounded up to 16 bytes)
    workgroupBytes: 2 * keyTile * headDim * 4 + 16,
    destroy: () => {},
    bind: (
      buffers: Record<"q" | "keyCache" | "valueCache" | "state" | "out", BufferRange>,
    ): Dispatch[] => kernel.bind(buffers),
  };
}
