/**
 * Causal attention of `rows` new tokens (positions `state.pos + row`) against the KV cache:
 * one kernel for prefill (`rows` = prompt length) and decode (`rows` = 1). One workgroup per
 * (query head, token); it reads its key/value head `head / (nHeads / nKvHeads)` straight from
 * the cache, so grouped- and multi-query attention never copy K/V per query head.
 *
 * The keys are visited in chunks of `WG` positions with an online softmax (running maximum and
 * sum, accumulator rescaled per chunk), so workgroup memory stays `WG` floats at any context
 * length.
 *
 * @module
 */
import type { Gpu } from "./device.ts";
import { GpuError } from "./device.ts";
import { checkDimension, compileKernel, type Kernel, STATE, stateBinding } from "./kernel.ts";

const WG = 64;

function attentionWgsl(dimsPerThread: number): string {
  return /* wgsl */ `
override WG: u32 = 64u;
override N_HEADS: u32;
override N_KV_HEADS: u32;
override HEAD_DIM: u32;
override SCALE: f32;
const DIMS_PER_THREAD: u32 = ${dimsPerThread}u; // ceil(HEAD_DIM / WG): output features per invocation
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> keyCache: array<f32>;
@group(0) @binding(2) var<storage, read> valueCache: array<f32>;
${stateBinding(3)}
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
var<workgroup> qScaled: array<f32, HEAD_DIM>;
var<workgroup> weights: array<f32, WG>;
var<workgroup> lastShared: u32;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let head = wid.x;
  let row = wid.y;
  let kvBase = (head / (N_HEADS / N_KV_HEADS)) * HEAD_DIM;
  let kvDim = N_KV_HEADS * HEAD_DIM;
  let qBase = row * N_HEADS * HEAD_DIM + head * HEAD_DIM;
  if (lid == 0u) { lastShared = state[${STATE.pos}u] + row; }
  for (var d = lid; d < HEAD_DIM; d += WG) { qScaled[d] = q[qBase + d] * SCALE; }
  let last = workgroupUniformLoad(&lastShared); // attends to positions 0..=last

  var runningMax = -3.402823e38;
  var runningSum = 0.0;
  var acc: array<f32, DIMS_PER_THREAD>;
  for (var start = 0u; start <= last; start += WG) {
    let t = start + lid;
    var score = -3.402823e38;
    if (t <= last) {
      score = 0.0;
      let kBase = t * kvDim + kvBase;
      for (var d = 0u; d < HEAD_DIM; d++) { score += qScaled[d] * keyCache[kBase + d]; }
    }
    weights[lid] = score;
    workgroupBarrier();
    let count = min(WG, last + 1u - start);
    var chunkMax = runningMax;
    for (var j = 0u; j < count; j++) { chunkMax = max(chunkMax, weights[j]); }
    workgroupBarrier();
    weights[lid] = select(0.0, exp(score - chunkMax), t <= last);
    workgroupBarrier();
    let correction = exp(runningMax - chunkMax);
    var chunkSum = 0.0;
    for (var j = 0u; j < count; j++) { chunkSum += weights[j]; }
    runningSum = runningSum * correction + chunkSum;
    runningMax = chunkMax;
    for (var k = 0u; k < DIMS_PER_THREAD; k++) {
      let d = lid + k * WG;
      if (d < HEAD_DIM) {
        var a = acc[k] * correction;
        for (var j = 0u; j < count; j++) { a += weights[j] * valueCache[(start + j) * kvDim + kvBase + d]; }
        acc[k] = a;
      }
    }
    workgroupBarrier();
  }
  for (var k = 0u; k < DIMS_PER_THREAD; k++) {
    let d = lid + k * WG;
    if (d < HEAD_DIM) { out[qBase + d] = acc[k] / runningSum; }
  }
}`;
}

/** Shape of an {@linkcode attentionKernel}. */
export interface AttentionKernelShape {
  /** New tokens (queries); 1 when decoding. */
  rows: number;
  /** Query heads. */
  nHeads: number;
  /** Key/value heads; divides `nHeads`. */
  nKvHeads: number;
  /** Features per head. */
  headDim: number;
}

/**
 * Compiles attention for a shape. Bindings: `q (rows·nHeads·headDim)`,
 * `keyCache, valueCache (maxSeqLen·nKvHeads·headDim)` already holding positions up to
 * `state.pos + rows − 1`, `state` (u32; reads `pos`), `out (rows·nHeads·headDim)`.
 *
 * @example
 * ```ts ignore
 * const attend = await attentionKernel(gpu, { rows: 1, nHeads: 32, nKvHeads: 4, headDim: 64 });
 * await gpu.submit([attend.bind({ q, keyCache, valueCache, state, out })]);
 * ```
 */
export function attentionKernel(
  gpu: Gpu,
  shape: AttentionKernelShape,
): Promise<Kernel<"q" | "keyCache" | "valueCache" | "state" | "out">> {
  const { rows, nHeads, nKvHeads, headDim } = shape;
  const name = `attention ${rows}x${nHeads}/${nKvHeads}x${headDim}`;
  checkDimension(name, "rows", rows);
  checkDimension(name, "nHeads", nHeads);
  checkDimension(name, "nKvHeads", nKvHeads);
  checkDimension(name, "headDim", headDim);
  if (nHeads % nKvHeads !== 0) {
    throw new GpuError(name, `nHeads (${nHeads}) must be divisible by nKvHeads (${nKvHeads})`);
  }
  return compileKernel(
    gpu,
    name,
    attentionWgsl(Math.ceil(headDim / WG)),
    { WG, N_HEADS: nHeads, N_KV_HEADS: nKvHeads, HEAD_DIM: headDim, SCALE: 1 / Math.sqrt(headDim) },
    ["q", "keyCache", "valueCache", "state", "out"],
    [nHeads, rows],
  );
}
