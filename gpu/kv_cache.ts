/**
 * KV-cache append: writes the keys and values of `rows` tokens, `(rows, kvDim)` each, into the
 * per-layer caches `(maxSeqLen, kvDim)` at positions `state.pos + row`. Rows past `maxSeqLen`
 * are dropped (callers check the length before submitting).
 *
 * @module
 */
import type { Gpu } from "./device.ts";
import { compileElementwise, elementwiseWgsl, type Kernel } from "./kernel.ts";
import { STATE, stateBinding } from "./state.ts";
import { BATCH_ROW, batchRowsBinding } from "./batch_rows.ts";

const WGSL = elementwiseWgsl(
  `override KV_DIM: u32;
override MAX_SEQ: u32;
@group(0) @binding(0) var<storage, read> k: array<f32>;
@group(0) @binding(1) var<storage, read> v: array<f32>;
@group(0) @binding(2) var<storage, read_write> keyCache: array<f32>;
@group(0) @binding(3) var<storage, read_write> valueCache: array<f32>;
${stateBinding(4)}`,
  `let pos = state[${STATE.pos}u] + i / KV_DIM;
  if (pos >= MAX_SEQ) { return; }
  let at = pos * KV_DIM + i % KV_DIM;
  keyCache[at] = k[i];
  valueCache[at] = v[i];`,
);

/** Shape of a {@linkcode kvAppendKernel}. */
export interface KvAppendShape {
  /** Tokens written at once. */
  rows: number;
  /** `nKvHeads · headDim`. */
  kvDim: number;
  /** Positions each cache holds. */
  maxSeqLen: number;
}

/**
 * Compiles the append. Bindings: `k, v (rows·kvDim)`, `keyCache, valueCache (maxSeqLen·kvDim)`,
 * `state` (u32; reads `pos`).
 *
 * @example
 * ```ts ignore
 * const append = await kvAppendKernel(gpu, { rows: 1, kvDim: 288, maxSeqLen: 256 });
 * await gpu.submit(append.bind({ k, v, keyCache, valueCache, state }));
 * ```
 */
export function kvAppendKernel(
  gpu: Gpu,
  shape: KvAppendShape,
): Promise<Kernel<"k" | "v" | "keyCache" | "valueCache" | "state">> {
  const { rows, kvDim, maxSeqLen } = shape;
  return compileElementwise(
    gpu,
    `kvAppend ${rows}x${kvDim}`,
    WGSL,
    rows * kvDim,
    ["k", "v", "keyCache", "valueCache", "state"],
    { KV_DIM: kvDim, MAX_SEQ: maxSeqLen },
  );
}

const SCATTER_WGSL = elementwiseWgsl(
  `override KV_DIM: u32;
@group(0) @binding(0) var<storage, read> k: array<f32>;
@group(0) @binding(1) var<storage, read> v: array<f32>;
@group(0) @binding(2) var<storage, read_write> keyPool: array<f32>;
@group(0) @binding(3) var<storage, read_write> valuePool: array<f32>;
${batchRowsBinding(4)}`,
  `let at = batchRows[i / KV_DIM][${BATCH_ROW.slot}] * KV_DIM + i % KV_DIM;
  keyPool[at] = k[i];
  valuePool[at] = v[i];`,
);

/**
 * The KV write of batched decoding: each row's key and value, `(rows, kvDim)` each, go to the
 * pool row its entry in the step's row buffer names (`batch_rows.ts`), wherever its sequence's
 * layout put it. Bindings: `k, v`, `keyPool, valuePool (poolRows·kvDim)`, `rows`.
 *
 * @example
 * ```ts ignore
 * const write = await kvScatterKernel(gpu, { rows: 4, kvDim: 128 });
 * await gpu.submit(write.bind({ k, v, keyPool, valuePool, rows }));
 * ```
 */
export function kvScatterKernel(
  gpu: Gpu,
  shape: Omit<KvAppendShape, "maxSeqLen">,
): Promise<Kernel<"k" | "v" | "keyPool" | "valuePool" | "rows">> {
  const { rows, kvDim } = shape;
  return compileElementwise(
    gpu,
    `kvScatter ${rows}x${kvDim}`,
    SCATTER_WGSL,
    rows * kvDim,
    ["k", "v", "keyPool", "valuePool", "rows"],
    { KV_DIM: kvDim },
  );
}
