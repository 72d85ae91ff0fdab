/**
 * Tiled causal attention for prefill: one workgroup per (query head, tile of 32 queries), one
 * invocation per query. Keys and values are staged through workgroup memory a tile at a time
 * (shared by the tile's 32 queries) and folded in with an online softmax: each key tile's
 * scores, one rescale of the running sum and accumulator, then the weighted values.
 *
 * The loops over a head's features are unrolled (four features per vec4): llvmpipe/lavapipe
 * caps one invocation at 65535 loop iterations in all (gallivm's `loop_limiter`, shared by every
 * loop of the shader) and past it leaves every loop after one pass, silently. With a loop per
 * feature that budget ran out at ~480 cached positions (headDim 64); now a key costs two
 * iterations and a key tile about 16 more, about 25,000 positions at headDim 64 (16,000 at 256).
 *
 * @module
 */
import { type BufferRange, type Dispatch, type Gpu, GpuError } from "../device.ts";
import { compileKernel } from "../kernel.ts";
import { STATE, stateBinding } from "../state.ts";
import { checkInteger } from "../../reference/checks.ts";
import type { AttentionKernel, AttentionKernelShape } from "./attention.ts";

/** Queries per workgroup (one per invocation); also the most keys staged per tile. */
const QUERY_TILE = 32;
/** Workgroup memory the kernel may declare in all; WebGPU's guaranteed minimum. */
const WORKGROUP_BYTES = 16384;

function tiledWgsl(headDim: number, keyTile: number): string {
  const hd4 = Math.ceil(headDim / 4);
  const vectors = Array.from({ length: hd4 }, (_, i) => i);
  // Four features of a head from `buffer` at `base` (its feature 0) + 4i; features past
  // headDim (a partial last vector) read zero.
  const load = (buffer: string, base: string, c: string) =>
    `vec4<f32>(${
      [0, 1, 2, 3].map((lane) =>
        headDim % 4 === 0
          ? `${buffer}[${base} + ${c} + ${lane}u]`
          : `select(0.0, ${buffer}[${base} + min(${c} + ${lane}u, HD - 1u)], ${c} + ${lane}u < HD)`
      ).join(", ")
    })`;
  // Features d = 4i + lane unrolled: no loop over headDim, see the module comment.
  const unrolled = (line: (i: number) => string) => vectors.map(line).join("\n      ");
  const writes = vectors.flatMap((i) =>
    [0, 1, 2, 3].filter((lane) => 4 * i + lane < headDim).map((lane) =>
      `out[qBase + ${4 * i + lane}u] = acc[${i}][${lane}] * inverse;`
    )
  ).join("\n    ");
  return /* wgsl */ `
override N_HEADS: u32;
override N_KV_HEADS: u32;
override ROWS: u32;
override SCALE: f32;
const HD: u32 = ${headDim}u;
const HD4: u32 = ${hd4}u;                             // vec4s per head (the last zero-padded)
const TQ: u32 = ${QUERY_TILE}u;
const TK: u32 = ${keyTile}u;
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> keyCache: array<f32>;
@group(0) @binding(2) var<storage, read> valueCache: array<f32>;
${stateBinding(3)}
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
var<workgroup> kTile: array<vec4<f32>, ${keyTile * hd4}>;
var<workgroup> vTile: array<vec4<f32>, ${keyTile * hd4}>;
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
  var qv: array<vec4<f32>, HD4>;
  var acc: array<vec4<f32>, HD4>;
  for (var i = 0u; i < HD4; i++) { qv[i] = vec4<f32>(0.0); acc[i] = vec4<f32>(0.0); }
  if (inRange) {
    for (var i = 0u; i < HD4; i++) { qv[i] = ${load("q", "qBase", "4u * i")} * SCALE; }
  }
  var runningMax = -3.402823e38;
  var runningSum = 0.0;
  for (var start = 0u; start <= tileLast; start += TK) {
    for (var e = lid; e < TK * HD4; e += TQ) {
      let p = min(start + e / HD4, tileLast);
      let at = p * kvDim + kvBase;
      let c = (e % HD4) * 4u;
      kTile[e] = ${load("keyCache", "at", "c")};
      vTile[e] = ${load("valueCache", "at", "c")};
    }
    workgroupBarrier();
    if (inRange && myLast >= start) {
      let count = min(TK, myLast + 1u - start);
      var scores: array<f32, TK>;
      var tileMax = runningMax;
      for (var j = 0u; j < count; j++) {
        let kAt = j * HD4;
        var s = 0.0;
      ${unrolled((i) => `s += dot(qv[${i}], kTile[kAt + ${i}u]);`)}
        scores[j] = s;
        tileMax = max(tileMax, s);
      }
      let correction = exp(runningMax - tileMax);
      runningSum *= correction;
      ${unrolled((i) => `acc[${i}] *= correction;`)}
      for (var j = 0u; j < count; j++) {
        let p = exp(scores[j] - tileMax);
        let vAt = j * HD4;
        runningSum += p;
      ${unrolled((i) => `acc[${i}] += p * vTile[vAt + ${i}u];`)}
      }
      runningMax = tileMax;
    }
    workgroupBarrier();
  }
  if (inRange) {
    let inverse = 1.0 / runningSum;
    ${writes}
  }
}`;
}

/**
 * Keys (and values) staged per tile for `headDim`: up to 32, within WebGPU's guaranteed 16384
 * bytes of workgroup memory and within `workgroupElementBudget` workgroup-array elements (the
 * key and value tiles hold a vec4 per 4 features each, beside one shared word); 0 when not even
 * one key fits the bytes. A budget too small for one key still gets one.
 *
 * @example
 * ```ts
 * import { tiledAttentionKeyTile } from "./tiled.ts";
 * if (tiledAttentionKeyTile(48, Infinity) !== 32) throw new Error("32 keys of headDim 48");
 * if (tiledAttentionKeyTile(64, Infinity) !== 31) throw new Error("31 keys fill 16 KiB");
 * if (tiledAttentionKeyTile(64, 256) !== 7) throw new Error("2·7·16 + 1 ≤ 256 elements");
 * ```
 */
export function tiledAttentionKeyTile(headDim: number, workgroupElementBudget: number): number {
  const vectors = Math.ceil(headDim / 4);
  // a key and a value per tile position (headDim padded to vec4s), beside lastShared's 16 bytes
  const byBytes = Math.floor((WORKGROUP_BYTES - 16) / (2 * 16 * vectors));
  if (byBytes < 1) return 0;
  const byElements = Math.floor((workgroupElementBudget - 1) / (2 * vectors));
  return Math.max(1, Math.min(QUERY_TILE, byBytes, byElements));
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
  const keyTile = tiledAttentionKeyTile(headDim, gpu.workgroupElementBudget);
  if (keyTile < 1) {
    throw new GpuError(
      name,
      `headDim ${headDim} needs more than ${WORKGROUP_BYTES} bytes of workgroup memory`,
    );
  }
  const vectorBytes = 16 * Math.ceil(headDim / 4);
  const kernel = await compileKernel(
    gpu,
    `${name} (key tile ${keyTile})`,
    tiledWgsl(headDim, keyTile),
    { N_HEADS: nHeads, N_KV_HEADS: nKvHeads, ROWS: rows, SCALE: 1 / Math.sqrt(headDim) },
    ["q", "keyCache", "valueCache", "state", "out"],
    [nHeads, Math.ceil(rows / QUERY_TILE)],
  );
  return {
    name,
    splits: 1,
    // the key and value tiles, and the shared last position (rounded up to 16 bytes)
    workgroupBytes: 2 * keyTile * vectorBytes + 16,
    destroy: () => {},
    bind: (
      buffers: Record<"q" | "keyCache" | "valueCache" | "state" | "out", BufferRange>,
    ): Dispatch[] => kernel.bind(buffers),
  };
}
