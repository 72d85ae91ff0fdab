/**
 * Projections (`W · x` per token) in several layouts, each a registry entry of
 * {@linkcode PROJECTION_VARIANTS}, with an optional RMSNorm prologue and a choice of epilogue:
 *
 * - layouts: one output row per invocation (`row`, the original kernel); a workgroup, or a
 *   slice of one, per row with coalesced loads and a reduction in workgroup memory
 *   (`cooperative`, `multirow`: several short rows per workgroup, split along K; `subgroup`:
 *   reduced with `subgroupAdd`, where the `subgroups` feature is present); W and X tiles
 *   in workgroup memory with several outputs per invocation (`tiled`, for prefill: each W tile is
 *   read once per 32 tokens);
 * - epilogues: `store`, `add` (the residual connection), `siluMul` (W1 and W3 interleaved, the
 *   SwiGLU gate applied), `qkvRope` (Q, K and V interleaved in rotation pairs, RoPE applied, K
 *   and V appended to an f32 cache at `state.pos`, or staged for a KV-append kernel that stores
 *   a quantized cache's format).
 *
 * Weights are rows of `inDim` floats; an epilogue consumes `pair` consecutive rows per *unit*
 * (1 for store/add, 2 otherwise). With the RMSNorm prologue the norm weight is folded into W's
 * columns beforehand (see `fused_weights.ts`), so the kernel only scales each dot product by
 * `1 / rms(x)`.
 *
 * @module
 */
import { type BufferRange, type Dispatch, type Gpu, GpuError } from "../device.ts";
import { compileKernel, WGSL_NAN } from "../kernel.ts";
import { STATE, stateBinding } from "../state.ts";
import { checkInteger } from "../../reference/checks.ts";
import type { RopeLayout } from "../../reference/rope.ts";
import { DEFAULT_NORM_EPS } from "../../reference/norm.ts";

/** How a projection's dot products are spread over invocations. */
export type ProjectionLayout = "row" | "cooperative" | "multirow" | "subgroup" | "tiled";

/** One registered way to compute a projection. */
export interface ProjectionVariant {
  /** Name, as tuning files and reports spell it. */
  readonly name: string;
  /** How the work is spread. */
  readonly layout: ProjectionLayout;
  /** Invocations per workgroup. */
  readonly workgroupSize: number;
  /** Invocations sharing one unit's dot products (cooperative and multirow layouts). */
  readonly lanes: number;
  /** Optional WebGPU features the variant needs (`subgroups` for the subgroup layout). */
  readonly features: readonly GPUFeatureName[];
  /** Whether the variant suits a shape (and the device's limits and workgroup budget). */
  applies(shape: ProjectionShape, device?: ProjectionDevice): boolean;
}

/** What a variant's fit depends on besides the shape (a {@linkcode Gpu} is one). */
export interface ProjectionDevice {
  /** The device's limits. */
  readonly limits: GPUSupportedLimits;
  /** Workgroup-array elements a kernel should declare at most (see `Gpu`); unlimited if absent. */
  readonly workgroupElementBudget?: number;
}

/** Shape of a projection. */
export interface ProjectionShape {
  /** Tokens. */
  rows: number;
  /** Output units in this weight block (rows of W / `pair`). */
  units: number;
  /** Features in. */
  inDim: number;
}

const UNITS_PER_INVOCATION = 2;
const TOKENS_PER_INVOCATION = 4;
const TILE_UNITS = 8 * UNITS_PER_INVOCATION;
const TILE_TOKENS = 8 * TOKENS_PER_INVOCATION;
/** Workgroup-array elements a tiled projection declares at most (GL compile time). */
const MAX_WORKGROUP_ELEMENTS = 256;

function gridFits(groups: number, device?: ProjectionDevice): boolean {
  return groups <= (device?.limits.maxComputeWorkgroupsPerDimension ?? 65535);
}

function sharedVariant(
  name: string,
  layout: "cooperative" | "multirow",
  workgroupSize: number,
  lanes: number,
): ProjectionVariant {
  return {
    name,
    layout,
    workgroupSize,
    lanes,
    features: [],
    applies: (shape, device) =>
      workgroupSize <= (device?.limits.maxComputeInvocationsPerWorkgroup ?? 256) &&
      // a float per invocation for each of a pair's rows and for the norm: over the GL
      // backend's budget (compile time) for every shared layout
      3 * workgroupSize <= (device?.workgroupElementBudget ?? Infinity) &&
      gridFits(Math.ceil(shape.units / (workgroupSize / lanes)), device) &&
      // a whole workgroup on a row shorter than its lanes would leave most of them idle
      (layout === "multirow" || shape.inDim >= lanes),
  };
}

/**
 * Every projection variant. `row` is the original kernel (best on software adapters, where an
 * invocation is a CPU loop); `coop64`/`coop256` give each row a workgroup; `multirow8`/
 * `multirow16` give each row a slice of 8 or 16 invocations, for short rows (dim 64-512) where
 * a workgroup per row leaves most lanes idle; `tiled` is for prefill (2 or more tokens).
 *
 * @example
 * ```ts
 * import { PROJECTION_VARIANTS } from "./projection.ts";
 * const names = PROJECTION_VARIANTS.map((v) => v.name);
 * if (!names.includes("coop256")) throw new Error("missing");
 * ```
 */
export const PROJECTION_VARIANTS: readonly ProjectionVariant[] = [
  {
    name: "row",
    layout: "row",
    workgroupSize: 64,
    lanes: 1,
    features: [],
    applies: (shape, device) => gridFits(Math.ceil(shape.units / 64), device),
  },
  sharedVariant("coop64", "cooperative", 64, 64),
  sharedVariant("coop256", "cooperative", 256, 256),
  sharedVariant("multirow8", "multirow", 64, 8),
  sharedVariant("multirow16", "multirow", 64, 16),
  {
    name: "subgroup64",
    layout: "subgroup",
    workgroupSize: 64,
    lanes: 64,
    features: ["subgroups" as GPUFeatureName],
    applies: (shape, device) => gridFits(shape.units, device) && shape.inDim >= 64,
  },
  {
    name: "tiled",
    layout: "tiled",
    workgroupSize: 64,
    lanes: 1,
    features: [],
    applies: (shape, device) =>
      shape.rows >= 2 && gridFits(Math.ceil(shape.units / TILE_UNITS), device) &&
      gridFits(Math.ceil(shape.rows / TILE_TOKENS), device),
  },
];

/**
 * The variant named `name`; throws naming the known ones otherwise.
 *
 * @example
 * ```ts
 * import { projectionVariant } from "./projection.ts";
 * if (projectionVariant("row").layout !== "row") throw new Error("wrong");
 * ```
 */
export function projectionVariant(name: string): ProjectionVariant {
  const variant = PROJECTION_VARIANTS.find((v) => v.name === name);
  if (!variant) {
    throw new GpuError(
      "projection",
      `variant: expected one of ${PROJECTION_VARIANTS.map((v) => v.name).join(", ")}, got ${name}`,
    );
  }
  return variant;
}

/** What a projection does with its dot products. */
export type ProjectionEpilogue =
  | { kind: "store" }
  | { kind: "add" }
  | { kind: "siluMul" }
  | {
    kind: "qkvRope";
    /** Query heads. */
    nHeads: number;
    /** Key/value heads. */
    nKvHeads: number;
    /** Features per head (even). */
    headDim: number;
    /** Positions in the cache and the RoPE table. */
    maxSeqLen: number;
    /** RoPE pairing; `"interleaved"` by default. */
    layout?: RopeLayout;
    /**
     * K and V go to row `t` of `keyCache`/`valueCache`, then scratch `(rows, kvDim)` f32 that a
     * KV-append kernel stores in the cache's format (f16, Q8_0), instead of to the cache at
     * the position. False by default.
     */
    staged?: boolean;
  };

/** Buffers each epilogue binds besides `w` and `x`. */
export interface ProjectionBindings {
  /** `out (rows·outStride)`, written. */
  store: "out";
  /** `out (rows·outStride)`, incremented. */
  add: "out";
  /** `out (rows·units)`, written with silu(W1·x)·(W3·x). */
  siluMul: "out";
  /**
   * `q (rows·nHeads·headDim)`, the caches `(maxSeqLen·kvDim)` (staged: scratch
   * `(rows·kvDim)`), the RoPE table, the state.
   */
  qkvRope: "q" | "keyCache" | "valueCache" | "table" | "state";
}

/** Options of {@linkcode projectionKernel}. */
export interface ProjectionOptions {
  /** Scale each token's dot products by `1/rms(x)` (W holds the norm weight folded in). */
  norm?: boolean;
  /** RMSNorm epsilon; 1e-5 by default. */
  eps?: number;
  /** Floats to skip at the start of `x`. */
  xOffset?: number;
  /** Units before this weight block (its outputs' offset); 0 by default. */
  unitOffset?: number;
  /** Floats between consecutive tokens of `out` (store and add); the total units by default. */
  outStride?: number;
}

/** A compiled projection. */
export interface ProjectionKernel<E extends ProjectionEpilogue["kind"]> {
  /** Name with shape and variant. */
  readonly name: string;
  /** The variant it runs. */
  readonly variant: ProjectionVariant;
  /** Binds `w`, `x` and the epilogue's buffers. */
  bind(buffers: Record<"w" | "x" | ProjectionBindings[E], BufferRange>): Dispatch[];
}

/** Rows of W each output unit of an epilogue consumes. */
export const PAIR: Record<ProjectionEpilogue["kind"], number> = {
  store: 1,
  add: 1,
  siluMul: 2,
  qkvRope: 2,
};

/**
 * The names an epilogue's kernel binds, in binding order (`w`, `x`, then the epilogue's).
 *
 * @example
 * ```ts
 * import { bindingNames } from "./projection.ts";
 * if (bindingNames("add").join() !== "w,x,out") throw new Error("wrong");
 * ```
 */
export function bindingNames(kind: ProjectionEpilogue["kind"]): string[] {
  return kind === "qkvRope"
    ? ["w", "x", "q", "keyCache", "valueCache", "table", "state"]
    : ["w", "x", "out"];
}

/**
 * WGSL of an epilogue: its bindings from 2 and `fn emit(t, u, a0[, a1])` for local unit `u`
 * (needs the overrides `UNIT_OFFSET` and, for store/add/siluMul, `OUT_STRIDE`). Shared with
 * the packed-weight projections (`packed_projection.ts`).
 *
 * @example
 * ```ts
 * import { epilogueWgsl } from "./projection.ts";
 * if (!epilogueWgsl({ kind: "add" }).includes("+=")) throw new Error("wrong");
 * ```
 */
export function epilogueWgsl(epilogue: ProjectionEpilogue): string {
  switch (epilogue.kind) {
    case "store":
    case "add":
      return /* wgsl */ `
override OUT_STRIDE: u32;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
fn emit(t: u32, u: u32, a0: f32) {
  out[t * OUT_STRIDE + UNIT_OFFSET + u] ${epilogue.kind === "add" ? "+=" : "="} a0;
}`;
    case "siluMul":
      return /* wgsl */ `
override OUT_STRIDE: u32;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
fn emit(t: u32, u: u32, gate: f32, up: f32) {
  out[t * OUT_STRIDE + UNIT_OFFSET + u] = gate / (1.0 + exp(-gate)) * up;
}`;
    case "qkvRope":
      return /* wgsl */ `
override HEAD_DIM: u32;
override Q_DIM: u32;
override KV_DIM: u32;
override MAX_SEQ: u32;
override HALF_LAYOUT: bool;
override STAGED: bool;
@group(0) @binding(2) var<storage, read_write> q: array<f32>;
@group(0) @binding(3) var<storage, read_write> keyCache: array<f32>;
@group(0) @binding(4) var<storage, read_write> valueCache: array<f32>;
@group(0) @binding(5) var<storage, read> table: array<vec2<f32>>;
${stateBinding(6)}
// Unit g is a rotation pair of Q (g < Q_DIM/2), of K (next KV_DIM/2), or two features of V.
fn emit(t: u32, u: u32, a: f32, b: f32) {
  let g = UNIT_OFFSET + u;
  let pos = state[${STATE.pos}u] + t;
  // K/V's row: the cache's position, or the token's row of the scratch (staged)
  let kvRow = select(pos, t, STAGED);
  let half = HEAD_DIM / 2u;
  let qUnits = Q_DIM / 2u;
  let kvUnits = KV_DIM / 2u;
  if (g >= qUnits + kvUnits) {
    if (pos < MAX_SEQ) {
      let at = kvRow * KV_DIM + 2u * (g - qUnits - kvUnits);
      valueCache[at] = a;
      valueCache[at + 1u] = b;
    }
    return;
  }
  let isKey = g >= qUnits;
  let j = select(g, g - qUnits, isKey);
  let i = j % half;
  let start = (j / half) * HEAD_DIM;
  let ia = select(start + 2u * i, start + i, HALF_LAYOUT);
  let ib = select(ia + 1u, ia + half, HALF_LAYOUT);
  // Past the table there is no angle: poison the output rather than reuse a wrong one.
  let cs = select(vec2<f32>(${WGSL_NAN}), table[min(pos, MAX_SEQ - 1u) * half + i], pos < MAX_SEQ);
  let ra = a * cs.x - b * cs.y;
  let rb = a * cs.y + b * cs.x;
  if (isKey) {
    if (pos < MAX_SEQ) {
      keyCache[kvRow * KV_DIM + ia] = ra;
      keyCache[kvRow * KV_DIM + ib] = rb;
    }
  } else {
    q[t * Q_DIM + ia] = ra;
    q[t * Q_DIM + ib] = rb;
  }
}`;
  }
}

/** WGSL shared by all layouts: W and x, the dot-product helpers, the per-token norm scale. */
function commonWgsl(vec4: boolean, pair: number, norm: boolean): string {
  const type = vec4 ? "vec4<f32>" : "f32";
  return /* wgsl */ `
override IN_DIM: u32;   // floats per row
override UNITS: u32;    // units in this weight block
override ROWS: u32;     // tokens
override X_OFFSET: u32; // in elements of x
override UNIT_OFFSET: u32;
override EPS: f32;
const V: u32 = ${vec4 ? 4 : 1}u;
const P: u32 = ${pair}u;
const NORM: bool = ${norm};
alias T = ${type};
@group(0) @binding(0) var<storage, read> w: array<T>;
@group(0) @binding(1) var<storage, read> x: array<T>;
fn hsum(v: T) -> f32 { return ${vec4 ? "v.x + v.y + v.z + v.w" : "v"}; }
fn xBase(t: u32) -> u32 { return X_OFFSET + t * (IN_DIM / V); }
fn wRow(u: u32, p: u32) -> u32 { return (u * P + p) * (IN_DIM / V); }
fn scaleOf(sumSquares: f32) -> f32 {
  return select(1.0, 1.0 / sqrt(sumSquares / f32(IN_DIM) + EPS), NORM);
}`;
}

const workgroupNorm = (workgroupSize: number) => /* wgsl */ `
var<workgroup> normPartial: array<f32, ${workgroupSize}>;
// 1/rms of token t's x, computed by the whole workgroup (call from uniform control flow).
fn workgroupScale(t: u32, lid: u32) -> f32 {
  if (!NORM) { return 1.0; }
  var sum = 0.0;
  for (var c = lid; c < IN_DIM / V; c += WG) {
    let v = x[xBase(t) + c];
    sum += hsum(v * v);
  }
  normPartial[lid] = sum;
  workgroupBarrier();
  for (var half = WG / 2u; half > 0u; half /= 2u) {
    if (lid < half) { normPartial[lid] += normPartial[lid + half]; }
    workgroupBarrier();
  }
  let s = scaleOf(normPartial[0]);
  workgroupBarrier();
  return s;
}`;

function emitCall(pair: number, values: (p: number) => string): string {
  return `emit(t, u, ${Array.from({ length: pair }, (_, p) => values(p)).join(", ")});`;
}

function rowWgsl(pair: number, workgroupSize: number): string {
  const ps = [...Array(pair).keys()];
  return /* wgsl */ `
const WG: u32 = ${workgroupSize}u;
${workgroupNorm(workgroupSize)}
@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let u = gid.x;
  let t = gid.y;
  let s = workgroupScale(t, lid);
  if (u >= UNITS) { return; }
  let n = IN_DIM / V;
  let xb = xBase(t);
  ${ps.map((p) => `var acc${p} = T(0.0);\n  let w${p} = wRow(u, ${p}u);`).join("\n  ")}
  for (var c = 0u; c < n; c++) {
    let xv = x[xb + c];
    ${ps.map((p) => `acc${p} += w[w${p} + c] * xv;`).join("\n    ")}
  }
  ${emitCall(pair, (p) => `hsum(acc${p}) * s`)}
}`;
}

function sharedWgsl(pair: number, workgroupSize: number, lanes: number): string {
  const ps = [...Array(pair).keys()];
  return /* wgsl */ `
const WG: u32 = ${workgroupSize}u;
const LANES: u32 = ${lanes}u; // invocations per unit, a power of two
${workgroupNorm(workgroupSize)}
var<workgroup> red: array<f32, ${pair * workgroupSize}>;
@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let t = wid.y;
  let lane = lid % LANES;
  let u = wid.x * (WG / LANES) + lid / LANES;
  let s = workgroupScale(t, lid);
  ${ps.map((p) => `var acc${p} = T(0.0);`).join("\n  ")}
  if (u < UNITS) {
    let n = IN_DIM / V;
    let xb = xBase(t);
    ${ps.map((p) => `let w${p} = wRow(u, ${p}u);`).join("\n    ")}
    // neighbouring lanes read neighbouring vectors: the loads coalesce
    for (var c = lane; c < n; c += LANES) {
      let xv = x[xb + c];
      ${ps.map((p) => `acc${p} += w[w${p} + c] * xv;`).join("\n      ")}
    }
  }
  ${ps.map((p) => `red[${p}u * WG + lid] = hsum(acc${p});`).join("\n  ")}
  workgroupBarrier();
  for (var half = LANES / 2u; half > 0u; half /= 2u) {
    if (lane < half) {
      ${ps.map((p) => `red[${p}u * WG + lid] += red[${p}u * WG + lid + half];`).join("\n      ")}
    }
    workgroupBarrier();
  }
  if (lane == 0u && u < UNITS) {
    ${emitCall(pair, (p) => `red[${p}u * WG + lid] * s`)}
  }
}`;
}

/**
 * A workgroup per unit like `coop64`, reduced with `subgroupAdd` and one barrier instead of a
 * six-step tree. Subgroups need not be contiguous in `local_invocation_index`, so each
 * subgroup's first lane writes its sum at its own index and the others write 0.
 */
function subgroupWgsl(pair: number, workgroupSize: number): string {
  const ps = [...Array(pair).keys()];
  return /* wgsl */ `
const WG: u32 = ${workgroupSize}u;
${workgroupNorm(workgroupSize)}
var<workgroup> red: array<f32, ${pair * workgroupSize}>;
@compute @workgroup_size(WG)
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
  @builtin(subgroup_invocation_id) subgroupLane: u32,
) {
  let t = wid.y;
  let u = wid.x;
  let s = workgroupScale(t, lid);
  ${ps.map((p) => `var acc${p} = T(0.0);`).join("\n  ")}
  if (u < UNITS) {
    let n = IN_DIM / V;
    let xb = xBase(t);
    ${ps.map((p) => `let w${p} = wRow(u, ${p}u);`).join("\n    ")}
    for (var c = lid; c < n; c += WG) {
      let xv = x[xb + c];
      ${ps.map((p) => `acc${p} += w[w${p} + c] * xv;`).join("\n      ")}
    }
  }
  ${ps.map((p) => `let sum${p} = subgroupAdd(hsum(acc${p}));`).join("\n  ")}
  ${ps.map((p) => `red[${p}u * WG + lid] = select(0.0, sum${p}, subgroupLane == 0u);`).join("\n  ")}
  workgroupBarrier();
  if (lid == 0u && u < UNITS) {
    ${ps.map((p) => `var total${p} = 0.0;`).join("\n    ")}
    for (var i = 0u; i < WG; i++) {
      ${ps.map((p) => `total${p} += red[${p}u * WG + i];`).join("\n      ")}
    }
    ${emitCall(pair, (p) => `total${p} * s`)}
  }
}`;
}

function tiledWgsl(pair: number, workgroupElementBudget: number): string {
  // 64 invocations as 8 (units) x 8 (tokens); each computes UNITS_PER_INVOCATION units x
  // TOKENS_PER_INVOCATION tokens (x pair rows) in registers, unrolled here so that no private
  // array is indexed at run time.
  const us = [...Array(UNITS_PER_INVOCATION).keys()];
  const ts = [...Array(TOKENS_PER_INVOCATION).keys()];
  const ps = [...Array(pair).keys()];
  // as many vectors of K per step as keep the workgroup arrays within 256 elements: the GL
  // backend's shader compiler takes superlinear time in them (see tests/gl_compile_test.ts)
  // (and within the device's budget, at least one vector)
  const elements = Math.min(MAX_WORKGROUP_ELEMENTS, workgroupElementBudget);
  const tk = Math.max(
    1,
    Math.floor((elements - TILE_TOKENS) / (TILE_UNITS * pair + TILE_TOKENS)),
  );
  const each = (f: (i: number, j: number, p: number) => string, sep = "\n    ") =>
    us.flatMap((i) => ts.flatMap((j) => ps.map((p) => f(i, j, p)))).join(sep);
  return /* wgsl */ `
const WG: u32 = 64u;
const TU: u32 = ${TILE_UNITS}u;   // units per tile
const TT: u32 = ${TILE_TOKENS}u;  // tokens per tile
const TK: u32 = ${tk}u;   // vectors of K per step
var<workgroup> wTile: array<T, ${TILE_UNITS * pair * tk}>;
var<workgroup> xTile: array<T, ${TILE_TOKENS * tk}>;
var<workgroup> scales: array<f32, ${TILE_TOKENS}>;
fn dotT(a: T, b: T) -> f32 { return hsum(a * b); }
@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let n = IN_DIM / V;
  let firstUnit = wid.x * TU;
  let firstToken = wid.y * TT;
  // 1/rms of the tile's tokens, one invocation per token (no workgroup array for partial sums)
  if (NORM) {
    let tok = firstToken + lid;
    if (lid < TT) {
      var sum = 0.0;
      if (tok < ROWS) {
        for (var c = 0u; c < n; c++) { let v = x[xBase(tok) + c]; sum += hsum(v * v); }
      }
      scales[lid] = scaleOf(sum);
    }
    workgroupBarrier();
  }
  let tu = lid % 8u;
  let tt = lid / 8u;
  ${each((i, j, p) => `var acc${i}_${j}_${p} = 0.0;`, "\n  ")}
  for (var k0 = 0u; k0 < n; k0 += TK) {
    for (var e = lid; e < TU * P * TK; e += WG) {
      let r = e / TK;           // tile row: unit r / P, row r % P
      let k = k0 + e % TK;
      let unit = firstUnit + r / P;
      wTile[e] = select(T(0.0), w[wRow(min(unit, UNITS - 1u), r % P) + min(k, n - 1u)], unit < UNITS && k < n);
    }
    for (var e = lid; e < TT * TK; e += WG) {
      let tok = firstToken + e / TK;
      let k = k0 + e % TK;
      xTile[e] = select(T(0.0), x[xBase(min(tok, ROWS - 1u)) + min(k, n - 1u)], tok < ROWS && k < n);
    }
    workgroupBarrier();
    for (var k = 0u; k < TK; k++) {
      ${ts.map((j) => `let x${j} = xTile[(tt + ${j * 8}u) * TK + k];`).join("\n      ")}
      ${
    us.flatMap((i) =>
      ps.map((p) => `let w${i}_${p} = wTile[((tu + ${i * 8}u) * P + ${p}u) * TK + k];`)
    )
      .join("\n      ")
  }
      ${each((i, j, p) => `acc${i}_${j}_${p} += dotT(w${i}_${p}, x${j});`, "\n      ")}
    }
    workgroupBarrier();
  }
  ${
    us.flatMap((i) =>
      ts.map((j) =>
        `{
    let u = firstUnit + tu + ${i * 8}u;
    let t = firstToken + tt + ${j * 8}u;
    if (u < UNITS && t < ROWS) {
      let s = select(1.0, scales[tt + ${j * 8}u], NORM);
      ${emitCall(pair, (p) => `acc${i}_${j}_${p} * s`)}
    }
  }`
      )
    ).join("\n  ")
  }
}`;
}

/**
 * The override constants every projection layout shares: the shape, the epilogue's (RoPE's head
 * layout for `qkvRope`, the output stride otherwise). Throws, naming `name`, on an odd head.
 *
 * @example
 * ```ts
 * import { projectionConstants } from "./projection.ts";
 * const c = projectionConstants("p", { kind: "store" }, { inDim: 8, units: 4, rows: 1, xOffset: 0, unitOffset: 0, eps: 1e-5 });
 * if (c.OUT_STRIDE !== 4) throw new Error("wrong");
 * ```
 */
export function projectionConstants(
  name: string,
  epilogue: ProjectionEpilogue,
  shape: {
    inDim: number;
    units: number;
    rows: number;
    xOffset: number;
    unitOffset: number;
    eps: number;
    outStride?: number;
  },
): Record<string, number> {
  const { inDim, units, rows, xOffset, unitOffset, eps } = shape;
  const constants: Record<string, number> = {
    IN_DIM: inDim,
    UNITS: units,
    ROWS: rows,
    X_OFFSET: xOffset,
    UNIT_OFFSET: unitOffset,
    EPS: eps,
  };
  if (epilogue.kind === "qkvRope") {
    const { nHeads, nKvHeads, headDim, maxSeqLen, layout = "interleaved", staged } = epilogue;
    if (headDim % 2 !== 0) {
      throw new GpuError(name, `headDim: expected an even number, got ${headDim}`);
    }
    Object.assign(constants, {
      HEAD_DIM: headDim,
      Q_DIM: nHeads * headDim,
      KV_DIM: nKvHeads * headDim,
      MAX_SEQ: maxSeqLen,
      HALF_LAYOUT: layout === "half" ? 1 : 0,
      STAGED: staged ? 1 : 0,
    });
  } else {
    constants.OUT_STRIDE = shape.outStride ?? unitOffset + units;
  }
  return constants;
}

/**
 * Compiles a projection of `shape` with `variant`'s layout and `epilogue`. `w` holds
 * `units · pair` rows of `inDim` floats (`pair` is 2 for `siluMul` and `qkvRope`).
 *
 * @example
 * ```ts ignore
 * const variant = projectionVariant("coop64");
 * const wo = await projectionKernel(gpu, { rows: 1, units: 288, inDim: 288 }, { kind: "add" }, variant);
 * await gpu.submit([wo.bind({ w, x: att, out: residual })]);
 * ```
 */
export async function projectionKernel<E extends ProjectionEpilogue>(
  gpu: Gpu,
  shape: ProjectionShape,
  epilogue: E,
  variant: ProjectionVariant,
  options: ProjectionOptions = {},
): Promise<ProjectionKernel<E["kind"]>> {
  const { rows, units, inDim } = shape;
  const { norm = false, eps = DEFAULT_NORM_EPS, xOffset = 0, unitOffset = 0 } = options;
  const name = `${epilogue.kind}${norm ? "+norm" : ""} ${rows}x${units}x${inDim} ${variant.name}`;
  checkInteger(`${name}: rows`, rows);
  checkInteger(`${name}: units`, units);
  checkInteger(`${name}: inDim`, inDim);
  if (!variant.applies(shape, gpu)) {
    throw new GpuError(name, `variant ${variant.name} does not apply to this shape`);
  }
  for (const feature of variant.features) {
    if (!gpu.device.features.has(feature)) {
      throw new GpuError(name, `variant ${variant.name} needs the ${feature} feature`);
    }
  }
  const vec4 = inDim % 4 === 0;
  if (vec4 && xOffset % 4 !== 0) {
    throw new GpuError(name, `xOffset: expected a multiple of 4, got ${xOffset}`);
  }
  const pair = PAIR[epilogue.kind];
  const constants = projectionConstants(name, epilogue, {
    inDim,
    units,
    rows,
    xOffset: vec4 ? xOffset / 4 : xOffset,
    unitOffset,
    eps,
    outStride: options.outStride,
  });
  let body: string;
  let grid: [number, number];
  switch (variant.layout) {
    case "row":
      body = rowWgsl(pair, variant.workgroupSize);
      grid = [Math.ceil(units / variant.workgroupSize), rows];
      break;
    case "cooperative":
    case "multirow":
      body = sharedWgsl(pair, variant.workgroupSize, variant.lanes);
      grid = [Math.ceil(units / (variant.workgroupSize / variant.lanes)), rows];
      break;
    case "subgroup":
      body = subgroupWgsl(pair, variant.workgroupSize);
      grid = [units, rows];
      break;
    case "tiled":
      body = tiledWgsl(pair, gpu.workgroupElementBudget);
      grid = [Math.ceil(units / TILE_UNITS), Math.ceil(rows / TILE_TOKENS)];
      break;
  }
  const enable = variant.features.includes("subgroups" as GPUFeatureName)
    ? "enable subgroups;\n"
    : "";
  const code = `${enable}${commonWgsl(vec4, pair, norm)}\n${epilogueWgsl(epilogue)}\n${body}`;
  const kernel = await compileKernel(gpu, name, code, constants, bindingNames(epilogue.kind), grid);
  return {
    name,
    variant,
    bind: (buffers) => kernel.bind(buffers as Record<string, BufferRange>),
  };
}
