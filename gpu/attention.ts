/**
 * Causal attention of `rows` new tokens (positions `state.pos + row`) against the KV cache:
 * one kernel for prefill (`rows` = prompt length) and decode (`rows` = 1). One workgroup per
 * (key/value head, token, split) serves all the query heads that share that K/V head (up to 8 at a
 * time), reading each cached key and value once for all of them: grouped- and multi-query
 * attention read `nHeads / nKvHeads` times less and never copy K/V per query head.
 *
 * Keys are visited in chunks of 256 positions with an online softmax (running maximum and
 * sum per head, accumulators rescaled per chunk), so workgroup memory stays bounded at any
 * context length. Three barriers per chunk, and each invocation reduces 64 partial maxima and
 * sums rather than the whole chunk: barriers and redundant reads are what software adapters
 * pay for most.
 *
 * @module
 */
import { type Gpu, GpuError } from "./device.ts";
import {
  compileElementwise,
  compileKernel,
  elementwiseWgsl,
  type Kernel,
  WGSL_LOWEST,
} from "./kernel.ts";
import { checkInteger } from "../reference/_checks.ts";
import { STATE, stateBinding } from "./state.ts";

const WG = 64;
/** Key positions each invocation scores per chunk. */
const POSITIONS_PER_THREAD = 4;
const CHUNK = WG * POSITIONS_PER_THREAD;
/** Query heads one workgroup serves at most (all of a group's when it fits). */
const MAX_HEADS_PER_WORKGROUP = 8;
/**
 * Workgroups the default split aims for. Splitting costs a second pass and, where workgroups
 * outnumber cores, time: measured on lavapipe (2 cores), MQA decode at 1024 tokens ran 1.7x
 * faster with 2 to 4 workgroups than with 1, and MHA slower with 16 than with 8.
 */
const MIN_WORKGROUPS = 4;
/** Workgroup memory the kernel may use; WebGPU's guaranteed minimum. */
const WORKGROUP_BYTES = 16384;

/** Workgroup floats for `heads` query heads: q, chunk weights, per-invocation maxima and sums. */
function workgroupFloats(heads: number, headDim: number): number {
  return heads * (headDim + CHUNK + 2 * WG);
}

function attentionWgsl(
  headsPerGroup: number,
  headsPerWorkgroup: number,
  headDim: number,
  splits: number,
): string {
  const g = headsPerWorkgroup;
  return /* wgsl */ `
override N_HEADS: u32;
override N_KV_HEADS: u32;
override HEAD_DIM: u32;
override SCALE: f32;
const WG: u32 = ${WG}u;
const G: u32 = ${g}u;                                 // query heads per workgroup
const TILES: u32 = ${Math.ceil(headsPerGroup / g)}u; // workgroups per KV head
const PPT: u32 = ${POSITIONS_PER_THREAD}u;
const CHUNK: u32 = ${CHUNK}u;                         // key positions per step
const DPT: u32 = ${Math.ceil(headDim / WG)}u;         // output features per invocation
const SPLITS: u32 = ${splits}u;                       // workgroups sharing one head's keys
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> keyCache: array<f32>;
@group(0) @binding(2) var<storage, read> valueCache: array<f32>;
${stateBinding(3)}
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
var<workgroup> qScaled: array<f32, ${g * headDim}>;
var<workgroup> weights: array<f32, ${g * CHUNK}>;
var<workgroup> partialMax: array<f32, ${g * WG}>;
var<workgroup> partialSum: array<f32, ${g * WG}>;
var<workgroup> lastShared: u32;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let kvHead = wid.x / TILES;
  let group = N_HEADS / N_KV_HEADS;
  let firstHead = kvHead * group + (wid.x % TILES) * G;
  let heads = min(G, kvHead * group + group - firstHead);
  let split = wid.y;
  let row = wid.z;
  let kvDim = N_KV_HEADS * HEAD_DIM;
  let kvBase = kvHead * HEAD_DIM;
  let qBase = row * N_HEADS * HEAD_DIM + firstHead * HEAD_DIM;
  if (lid == 0u) { lastShared = state[${STATE.pos}u] + row; }
  for (var i = lid; i < G * HEAD_DIM; i += WG) {
    qScaled[i] = select(0.0, q[qBase + i] * SCALE, i / HEAD_DIM < heads);
  }
  let last = workgroupUniformLoad(&lastShared); // attends to positions 0..=last

  var runningMax: array<f32, G>;
  var runningSum: array<f32, G>;
  var acc: array<f32, ${g * Math.ceil(headDim / WG)}>;
  for (var h = 0u; h < G; h++) { runningMax[h] = ${WGSL_LOWEST}; }
  // Split s takes chunks s, s + SPLITS, ...: long contexts keep many workgroups busy even when
  // few K/V heads (MQA: one) leave few (head, row) pairs.
  for (var start = split * CHUNK; start <= last; start += SPLITS * CHUNK) {
    // Scores of this invocation's PPT keys, each key read once for all G query heads.
    var localMax: array<f32, G>;
    for (var h = 0u; h < G; h++) { localMax[h] = ${WGSL_LOWEST}; }
    for (var p = 0u; p < PPT; p++) {
      let j = p * WG + lid;
      let t = start + j;
      // Zeroed explicitly: some compilers hoist a loop-body var and skip its re-initialization.
      var score: array<f32, G>;
      for (var h = 0u; h < G; h++) { score[h] = 0.0; }
      if (t <= last) {
        let kBase = t * kvDim + kvBase;
        for (var d = 0u; d < HEAD_DIM; d++) {
          let k = keyCache[kBase + d];
          for (var h = 0u; h < G; h++) { score[h] += qScaled[h * HEAD_DIM + d] * k; }
        }
        for (var h = 0u; h < G; h++) { localMax[h] = max(localMax[h], score[h]); }
      }
      for (var h = 0u; h < G; h++) { weights[h * CHUNK + j] = score[h]; }
    }
    for (var h = 0u; h < G; h++) { partialMax[h * WG + lid] = localMax[h]; }
    workgroupBarrier();
    var chunkMax: array<f32, G>;
    for (var h = 0u; h < G; h++) {
      var m = runningMax[h];
      for (var i = 0u; i < WG; i++) { m = max(m, partialMax[h * WG + i]); }
      chunkMax[h] = m;
    }
    // Each invocation exponentiates its own weights, so no barrier is needed before this.
    var localSum: array<f32, G>;
    for (var h = 0u; h < G; h++) { localSum[h] = 0.0; }
    for (var p = 0u; p < PPT; p++) {
      let j = p * WG + lid;
      for (var h = 0u; h < G; h++) {
        let e = select(0.0, exp(weights[h * CHUNK + j] - chunkMax[h]), start + j <= last);
        weights[h * CHUNK + j] = e;
        localSum[h] += e;
      }
    }
    for (var h = 0u; h < G; h++) { partialSum[h * WG + lid] = localSum[h]; }
    workgroupBarrier();
    for (var h = 0u; h < G; h++) {
      let correction = exp(runningMax[h] - chunkMax[h]);
      var chunkSum = 0.0;
      for (var i = 0u; i < WG; i++) { chunkSum += partialSum[h * WG + i]; }
      runningSum[h] = runningSum[h] * correction + chunkSum;
      runningMax[h] = chunkMax[h];
      for (var k = 0u; k < DPT; k++) { acc[h * DPT + k] *= correction; }
    }
    // Weighted values: each value read once for all G query heads.
    let count = min(CHUNK, last + 1u - start);
    for (var k = 0u; k < DPT; k++) {
      let d = lid + k * WG;
      if (d < HEAD_DIM) {
        for (var j = 0u; j < count; j++) {
          let v = valueCache[(start + j) * kvDim + kvBase + d];
          for (var h = 0u; h < G; h++) { acc[h * DPT + k] += weights[h * CHUNK + j] * v; }
        }
      }
    }
    workgroupBarrier();
  }
  for (var h = 0u; h < heads; h++) {
    if (SPLITS == 1u) {
      for (var k = 0u; k < DPT; k++) {
        let d = lid + k * WG;
        if (d < HEAD_DIM) { out[qBase + h * HEAD_DIM + d] = acc[h * DPT + k] / runningSum[h]; }
      }
    } else {
      // Partial result (max, sum, unnormalized accumulator) for attentionCombine to merge.
      let base = ((row * N_HEADS + firstHead + h) * SPLITS + split) * (HEAD_DIM + 2u);
      if (lid == 0u) {
        out[base] = runningMax[h];
        out[base + 1u] = runningSum[h];
      }
      for (var k = 0u; k < DPT; k++) {
        let d = lid + k * WG;
        if (d < HEAD_DIM) { out[base + 2u + d] = acc[h * DPT + k]; }
      }
    }
  }
}`;
}

/** Merges the splits' partial results: `out = Σ acc_s·e^(m_s−M) / Σ l_s·e^(m_s−M)`. */
const COMBINE_WGSL = elementwiseWgsl(
  `override HEAD_DIM: u32;
override SPLITS: u32;
@group(0) @binding(0) var<storage, read> partials: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;`,
  `let d = i % HEAD_DIM;
  let first = (i / HEAD_DIM) * SPLITS * (HEAD_DIM + 2u);
  var m = ${WGSL_LOWEST};
  for (var s = 0u; s < SPLITS; s++) { m = max(m, partials[first + s * (HEAD_DIM + 2u)]); }
  var sum = 0.0;
  var acc = 0.0;
  for (var s = 0u; s < SPLITS; s++) {
    let at = first + s * (HEAD_DIM + 2u);
    let w = exp(partials[at] - m);
    sum += partials[at + 1u] * w;
    acc += partials[at + 2u + d] * w;
  }
  out[i] = acc / sum;`,
);

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
  /**
   * Workgroups that split each head's keys between them (a second pass merges them). By
   * default enough for 4 workgroups in all (at most 8 splits): few K/V heads (MQA) otherwise
   * leave one workgroup per layer. Raise it on GPUs with many cores.
   */
  splits?: number;
}

/** A compiled attention: one dispatch, or two when the keys are split across workgroups. */
export interface AttentionKernel extends Kernel<"q" | "keyCache" | "valueCache" | "state" | "out"> {
  /** Workgroups per head sharing its keys. */
  readonly splits: number;
}

/**
 * Compiles attention for a shape. Bindings: `q (rows·nHeads·headDim)`,
 * `keyCache, valueCache (maxSeqLen·nKvHeads·headDim)` already holding positions up to
 * `state.pos + rows − 1`, `state` (u32; reads `pos`), `out (rows·nHeads·headDim)`.
 *
 * @example
 * ```ts ignore
 * const attend = await attentionKernel(gpu, { rows: 1, nHeads: 32, nKvHeads: 4, headDim: 64 });
 * await gpu.submit(attend.bind({ q, keyCache, valueCache, state, out }));
 * ```
 */
export async function attentionKernel(
  gpu: Gpu,
  shape: AttentionKernelShape,
): Promise<AttentionKernel> {
  const { rows, nHeads, nKvHeads, headDim } = shape;
  const name = `attention ${rows}x${nHeads}/${nKvHeads}x${headDim}`;
  checkInteger(`${name}: rows`, rows);
  checkInteger(`${name}: nHeads`, nHeads);
  checkInteger(`${name}: nKvHeads`, nKvHeads);
  checkInteger(`${name}: headDim`, headDim);
  if (nHeads % nKvHeads !== 0) {
    throw new GpuError(name, `nHeads (${nHeads}) must be divisible by nKvHeads (${nKvHeads})`);
  }
  const group = nHeads / nKvHeads;
  let headsPerWorkgroup = Math.min(group, MAX_HEADS_PER_WORKGROUP);
  while (
    headsPerWorkgroup > 1 && workgroupFloats(headsPerWorkgroup, headDim) * 4 > WORKGROUP_BYTES
  ) {
    headsPerWorkgroup--;
  }
  if (workgroupFloats(1, headDim) * 4 > WORKGROUP_BYTES) {
    throw new GpuError(
      name,
      `headDim ${headDim} needs more than ${WORKGROUP_BYTES} bytes of workgroup memory`,
    );
  }
  const tiles = Math.ceil(group / headsPerWorkgroup);
  const splits = shape.splits ?? Math.min(8, Math.ceil(MIN_WORKGROUPS / (nKvHeads * tiles * rows)));
  checkInteger(`${name}: splits`, splits);
  const constants = {
    N_HEADS: nHeads,
    N_KV_HEADS: nKvHeads,
    HEAD_DIM: headDim,
    SCALE: 1 / Math.sqrt(headDim),
  };
  const names = ["q", "keyCache", "valueCache", "state", "out"] as const;
  const main = await compileKernel(
    gpu,
    `${name}${splits > 1 ? ` split ${splits}` : ""}`,
    attentionWgsl(group, headsPerWorkgroup, headDim, splits),
    constants,
    names,
    [nKvHeads * tiles, splits, rows],
  );
  if (splits === 1) return { name: main.name, splits, bind: main.bind };
  const outputs = rows * nHeads * headDim;
  const combine = await compileElementwise(
    gpu,
    `${name} combine ${splits}`,
    COMBINE_WGSL,
    outputs,
    ["partials", "out"],
    {
      HEAD_DIM: headDim,
      SPLITS: splits,
    },
  );
  return {
    name: main.name,
    splits,
    bind(buffers) {
      const partials = gpu.createBuffer(
        rows * nHeads * splits * (headDim + 2) * 4,
        `${name} partials`,
      );
      return [
        ...main.bind({ ...buffers, out: partials }),
        ...combine.bind({ partials, out: buffers.out }),
      ];
    },
  };
}
