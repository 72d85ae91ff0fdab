/**
 * Causal attention of `rows` new tokens (positions `state.pos + row`) against the KV cache:
 * one kernel for prefill (`rows` = prompt length) and decode (`rows` = 1). One workgroup per
 * (key/value head, token, split) serves all the query heads that share that K/V head (up to 8 at a
 * time), reading each cached key and value once for all of them: grouped- and multi-query
 * attention read `nHeads / nKvHeads` times less and never copy K/V per query head.
 *
 * Keys are visited in chunks (64 to 192 positions, by heads per workgroup) with an online
 * softmax (running maximum and sum per head, accumulators rescaled per chunk), so workgroup
 * memory stays bounded at any context length. Three barriers per chunk; each invocation reduces
 * 64 partial maxima rather than the whole chunk, and sums the weights while it weighs the values:
 * barriers and redundant reads are what software adapters pay for most. Heads are packed four
 * to a vec4 and the workgroup arrays kept to 256 elements, which keeps GL compiles short (see
 * `WORKGROUP_ELEMENTS`); within a smaller device budget (Deno's GL backend: 128), 128 elements
 * and up to 4 heads per workgroup.
 *
 * @module
 */
import { type Gpu, GpuError } from "../device.ts";
import {
  compileElementwise,
  compileKernel,
  elementwiseWgsl,
  type Kernel,
  WGSL_LOWEST,
} from "../kernel.ts";
import { checkInteger } from "../../reference/checks.ts";
import type { KvFormat } from "../../reference/kv_cache.ts";
import { STATE, stateBinding } from "../state.ts";

const WG = 64;
/** Query heads one workgroup serves at most (all of a group's when it fits): two vec4s. */
const MAX_HEADS_PER_WORKGROUP = 8;
/**
 * Elements the workgroup arrays may hold in all. wgpu's GL backend zero-initializes workgroup
 * memory with one store per array element, and Mesa's GLSL compiler takes superlinear time in
 * them: on llvmpipe, 256 elements compiled in 0.5 s, 1024 in 3-6 s, 4096 in 58 s. A vec4
 * element costs about as much as an f32 one, so the arrays hold four query heads per element.
 */
const WORKGROUP_ELEMENTS = 256;
/**
 * Workgroups the default split aims for. Splitting costs a second pass and, where workgroups
 * outnumber cores, time: measured on lavapipe (2 cores), MQA decode at 1024 tokens ran 1.7x
 * faster with 2 to 4 workgroups than with 1, and MHA slower with 16 than with 8.
 */
const MIN_WORKGROUPS = 4;

/** How one workgroup lays out its query heads and key positions. */
interface AttentionLayout {
  /** Query heads per workgroup. */
  heads: number;
  /** Heads per vector: 1, 2 or 4 (f32, vec2 or vec4 lanes). */
  width: 1 | 2 | 4;
  /** Vectors holding the heads (`ceil(heads / width)`). */
  vectors: number;
  /** Key positions each invocation scores per chunk. */
  positionsPerThread: number;
  /** Key positions per chunk (`WG * positionsPerThread`). */
  chunk: number;
}

/**
 * The layout for a group of `group` query heads within `budget` workgroup-array elements (the
 * device's, see `Gpu.workgroupElementBudget`): 256 elements and up to 8 heads per workgroup,
 * or, under a smaller budget, 128 elements and up to 4 heads (one vec4).
 */
function attentionLayout(group: number, budget: number): AttentionLayout {
  const halved = budget < WORKGROUP_ELEMENTS;
  const elements = halved ? WORKGROUP_ELEMENTS / 2 : WORKGROUP_ELEMENTS;
  const headsPerWorkgroup = Math.min(
    group,
    halved ? MAX_HEADS_PER_WORKGROUP / 2 : MAX_HEADS_PER_WORKGROUP,
  );
  const width = headsPerWorkgroup === 1 ? 1 : headsPerWorkgroup === 2 ? 2 : 4;
  const vectors = Math.ceil(headsPerWorkgroup / width);
  // weights (vectors x chunk) and partialMax (vectors x WG) share the element budget.
  const positionsPerThread = Math.floor(elements / (vectors * WG)) - 1;
  return {
    heads: headsPerWorkgroup,
    width,
    vectors,
    positionsPerThread,
    chunk: WG * positionsPerThread,
  };
}

/**
 * Bytes of workgroup memory the main pass declares, as WebGPU counts them: each variable's size
 * rounded up to 16 bytes (`weights`, `partialMax`, `lastShared`).
 */
function workgroupBytes(layout: AttentionLayout): number {
  const vectorBytes = layout.width * 4;
  const roundUp = (bytes: number) => Math.ceil(bytes / 16) * 16;
  return roundUp(layout.vectors * layout.chunk * vectorBytes) +
    roundUp(layout.vectors * WG * vectorBytes) + roundUp(4);
}

/** WGSL reading value `i` of a cache stored in `format` (see `kvCacheWords` in kv_cache.ts). */
function cacheLoad(name: string, format: KvFormat): string {
  if (format === "f32") return `fn load_${name}(i: u32) -> f32 { return ${name}[i]; }`;
  if (format === "f16") {
    return `fn load_${name}(i: u32) -> f32 {
  let pair = unpack2x16float(${name}[i >> 1u]);
  return select(pair.x, pair.y, (i & 1u) == 1u);
}`;
  }
  return `fn load_${name}(i: u32) -> f32 {
  let q = extractBits(i32(${name}[i >> 2u]), (i & 3u) * 8u, 8u);
  return f32(q) * bitcast<f32>(${name}[KV_SCALES + (i >> 5u)]);
}`;
}

function attentionWgsl(
  headsPerGroup: number,
  layout: AttentionLayout,
  headDim: number,
  splits: number,
  format: KvFormat = "f32",
): string {
  const cacheType = format === "f32" ? "f32" : "u32";
  const { heads: g, width, vectors, positionsPerThread, chunk } = layout;
  const heads = width === 1 ? "f32" : `vec${width}<f32>`;
  // The query vector of heads `v * width ..` at feature d. Heads past `heads` (padding, or a
  // partial last tile) read zero; the checks are left out where neither can occur.
  const guarded = headsPerGroup % g !== 0 || vectors * width > g;
  const lanes = Array.from({ length: width }, (_, c) => {
    const h = `v * ${width}u + ${c}u`;
    return guarded
      ? `select(0.0, q[qBase + min(${h}, heads - 1u) * HEAD_DIM + d], ${h} < heads)`
      : `q[qBase + (${h}) * HEAD_DIM + d]`;
  });
  return /* wgsl */ `${format === "q8_0" ? "override KV_SCALES: u32;" : ""}
${cacheLoad("keyCache", format)}
${cacheLoad("valueCache", format)}
override N_HEADS: u32;
override N_KV_HEADS: u32;
override HEAD_DIM: u32;
override SCALE: f32;
alias Heads = ${heads};                              // one value per query head
const WG: u32 = ${WG}u;
const G: u32 = ${g}u;                                 // query heads per workgroup
const VECS: u32 = ${vectors}u;                        // Heads vectors holding them
const TILES: u32 = ${Math.ceil(headsPerGroup / g)}u; // workgroups per KV head
const PPT: u32 = ${positionsPerThread}u;
const CHUNK: u32 = ${chunk}u;                         // key positions per step
const DPT: u32 = ${Math.ceil(headDim / WG)}u;         // output features per invocation
const SPLITS: u32 = ${splits}u;                       // workgroups sharing one head's keys
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> keyCache: array<${cacheType}>;
@group(0) @binding(2) var<storage, read> valueCache: array<${cacheType}>;
${stateBinding(3)}
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
var<workgroup> weights: array<Heads, ${vectors * chunk}>;
var<workgroup> partialMax: array<Heads, ${vectors * WG}>;
var<workgroup> lastShared: u32;

fn headOf(x: Heads, i: u32) -> f32 { return ${width === 1 ? "x" : "x[i]"}; }

fn query(qBase: u32, v: u32, d: u32, heads: u32) -> Heads {
  return Heads(${lanes.join(", ")});
}

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
  let last = workgroupUniformLoad(&lastShared); // attends to positions 0..=last

  var runningMax: array<Heads, VECS>;
  var runningSum: array<Heads, VECS>;
  var acc: array<Heads, VECS * DPT>;
  for (var v = 0u; v < VECS; v++) {
    runningMax[v] = Heads(${WGSL_LOWEST});
    runningSum[v] = Heads(0.0);
    for (var k = 0u; k < DPT; k++) { acc[v * DPT + k] = Heads(0.0); }
  }
  // Split s takes chunks s, s + SPLITS, ...: long contexts keep many workgroups busy even when
  // few K/V heads (MQA: one) leave few (head, row) pairs.
  for (var start = split * CHUNK; start <= last; start += SPLITS * CHUNK) {
    // Scores of this invocation's PPT keys, each key read once for all G query heads.
    var localMax: array<Heads, VECS>;
    for (var v = 0u; v < VECS; v++) { localMax[v] = Heads(${WGSL_LOWEST}); }
    for (var p = 0u; p < PPT; p++) {
      let j = p * WG + lid;
      let t = start + j;
      // Zeroed explicitly: some compilers hoist a loop-body var and skip its re-initialization.
      var score: array<Heads, VECS>;
      for (var v = 0u; v < VECS; v++) { score[v] = Heads(0.0); }
      if (t <= last) {
        let kBase = t * kvDim + kvBase;
        for (var d = 0u; d < HEAD_DIM; d++) {
          let k = load_keyCache(kBase + d);
          for (var v = 0u; v < VECS; v++) { score[v] += query(qBase, v, d, heads) * k; }
        }
        for (var v = 0u; v < VECS; v++) {
          score[v] *= SCALE;
          localMax[v] = max(localMax[v], score[v]);
        }
      }
      for (var v = 0u; v < VECS; v++) { weights[v * CHUNK + j] = score[v]; }
    }
    for (var v = 0u; v < VECS; v++) { partialMax[v * WG + lid] = localMax[v]; }
    workgroupBarrier();
    var chunkMax: array<Heads, VECS>;
    for (var v = 0u; v < VECS; v++) {
      var m = runningMax[v];
      for (var i = 0u; i < WG; i++) { m = max(m, partialMax[v * WG + i]); }
      chunkMax[v] = m;
      let correction = exp(runningMax[v] - m);
      runningSum[v] *= correction;
      runningMax[v] = m;
      for (var k = 0u; k < DPT; k++) { acc[v * DPT + k] *= correction; }
    }
    // Each invocation exponentiates its own weights; every one then sums them all below.
    for (var p = 0u; p < PPT; p++) {
      let j = p * WG + lid;
      for (var v = 0u; v < VECS; v++) {
        let e = exp(weights[v * CHUNK + j] - chunkMax[v]);
        weights[v * CHUNK + j] = select(Heads(0.0), e, start + j <= last);
      }
    }
    workgroupBarrier();
    // Weighted values, each read once for all G query heads. Feature lid's pass also sums the
    // weights: every invocation that writes an output has lid < HEAD_DIM.
    let count = min(CHUNK, last + 1u - start);
    if (lid < HEAD_DIM) {
      for (var j = 0u; j < count; j++) {
        let value = load_valueCache((start + j) * kvDim + kvBase + lid);
        for (var v = 0u; v < VECS; v++) {
          let w = weights[v * CHUNK + j];
          runningSum[v] += w;
          acc[v * DPT] += w * value;
        }
      }
    }
    for (var k = 1u; k < DPT; k++) {
      let d = lid + k * WG;
      if (d < HEAD_DIM) {
        for (var j = 0u; j < count; j++) {
          let value = load_valueCache((start + j) * kvDim + kvBase + d);
          for (var v = 0u; v < VECS; v++) { acc[v * DPT + k] += weights[v * CHUNK + j] * value; }
        }
      }
    }
    workgroupBarrier();
  }
  for (var h = 0u; h < heads; h++) {
    let v = h / ${width}u;
    let lane = h % ${width}u;
    if (SPLITS == 1u) {
      for (var k = 0u; k < DPT; k++) {
        let d = lid + k * WG;
        if (d < HEAD_DIM) {
          out[qBase + h * HEAD_DIM + d] = headOf(acc[v * DPT + k], lane) / headOf(runningSum[v], lane);
        }
      }
    } else {
      // Partial result (max, sum, unnormalized accumulator) for attentionCombine to merge.
      let base = ((row * N_HEADS + firstHead + h) * SPLITS + split) * (HEAD_DIM + 2u);
      if (lid == 0u) {
        out[base] = headOf(runningMax[v], lane);
        out[base + 1u] = headOf(runningSum[v], lane);
      }
      for (var k = 0u; k < DPT; k++) {
        let d = lid + k * WG;
        if (d < HEAD_DIM) { out[base + 2u + d] = headOf(acc[v * DPT + k], lane); }
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
  /** How the caches store keys and values (f32 by default; `kvCacheWords` in kv_cache.ts). */
  kvFormat?: KvFormat;
  /** Positions each cache holds: needed for Q8_0, whose scales follow the quants. */
  maxSeqLen?: number;
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
  /**
   * Workgroup memory of the main pass as WebGPU counts it (each variable rounded up to 16
   * bytes); at most 4112 bytes, within every adapter's 16384-byte minimum.
   */
  readonly workgroupBytes: number;
  /** Frees the partial-results buffer, if any; binding again allocates a new one. */
  destroy(): void;
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
  const layout = attentionLayout(group, gpu.workgroupElementBudget);
  const headsPerWorkgroup = layout.heads;
  const bytes = workgroupBytes(layout);
  const limit = gpu.limits.maxComputeWorkgroupStorageSize;
  if (bytes > limit) {
    throw new GpuError(
      name,
      `needs ${bytes} bytes of workgroup memory, over the device's ` +
        `maxComputeWorkgroupStorageSize (${limit})`,
    );
  }
  const tiles = Math.ceil(group / headsPerWorkgroup);
  const splits = shape.splits ?? Math.min(8, Math.ceil(MIN_WORKGROUPS / (nKvHeads * tiles * rows)));
  checkInteger(`${name}: splits`, splits);
  const kvFormat = shape.kvFormat ?? "f32";
  const constants: Record<string, number> = {
    N_HEADS: nHeads,
    N_KV_HEADS: nKvHeads,
    HEAD_DIM: headDim,
    SCALE: 1 / Math.sqrt(headDim),
  };
  if (kvFormat === "q8_0") {
    if (shape.maxSeqLen === undefined) {
      throw new GpuError(
        name,
        "maxSeqLen: needed for a q8_0 KV cache (its scales follow the quants)",
      );
    }
    constants.KV_SCALES = shape.maxSeqLen * nKvHeads * headDim / 4;
  }
  const names = ["q", "keyCache", "valueCache", "state", "out"] as const;
  const main = await compileKernel(
    gpu,
    `${name}${kvFormat === "f32" ? "" : ` ${kvFormat} cache`}${
      splits > 1 ? ` split ${splits}` : ""
    }`,
    attentionWgsl(group, layout, headDim, splits, kvFormat),
    constants,
    names,
    [nKvHeads * tiles, splits, rows],
  );
  const common = { name: main.name, splits, workgroupBytes: bytes };
  if (splits === 1) {
    return { ...common, bind: main.bind, destroy: () => {} };
  }
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
  // One partial-results buffer serves every binding: dispatches of a pass run in order, so
  // each combine reads its own main pass's partials before the next main pass overwrites them.
  let partials: GPUBuffer | undefined;
  return {
    ...common,
    bind(buffers) {
      partials ??= gpu.createBuffer(
        rows * nHeads * splits * (headDim + 2) * 4,
        `${name} partials`,
      );
      return [
        ...main.bind({ ...buffers, out: partials }),
        ...combine.bind({ partials, out: buffers.out }),
      ];
    },
    destroy() {
      partials?.destroy();
      partials = undefined;
    },
  };
}
