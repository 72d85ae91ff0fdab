// What a WebGPU forward pass works in, as llama2.c's `RunState`: the activations of up to
// `rows` tokens, the KV cache, and the token and position bookkeeping.
import { kvCacheWords } from "../../gpu/kv_cache.ts";
import type { KvFormat } from "../../reference/kv_cache.ts";
import { headDim, type LlamaConfig } from "../config.ts";
import type { Gpu } from "../../gpu/device.ts";
import { STATE_BYTES } from "../../gpu/state.ts";

/**
 * The activation buffers of a forward pass over `rows` tokens (f32, row-major, one row per
 * token; `qDim = nHeads·headDim`, `kvDim = nKvHeads·headDim`).
 */
export interface Activations {
  /** The residual stream, `(rows, dim)`: embedding in, every block adds to it. */
  x: GPUBuffer;
  /** `x` normalized (RMSNorm) for the next block's input, `(rows, dim)`. */
  xb: GPUBuffer;
  /** A block's output before it is added to `x` (attention's `wo`, the FFN's `w2`), `(rows, dim)`. */
  xb2: GPUBuffer;
  /** Queries, `(rows, qDim)`, rotated in place by RoPE. */
  q: GPUBuffer;
  /** Keys of the new tokens, `(rows, kvDim)`, rotated, then appended to the cache. */
  k: GPUBuffer;
  /** Values of the new tokens, `(rows, kvDim)`, appended to the cache. */
  v: GPUBuffer;
  /** Attention's output, all heads side by side, `(rows, qDim)`. */
  att: GPUBuffer;
  /** FFN gate `w1·xb`, then `silu(gate) ⊙ up` in place, `(rows, hiddenDim)`. */
  hb: GPUBuffer;
  /** FFN up projection `w3·xb`, `(rows, hiddenDim)`. */
  hb2: GPUBuffer;
  /** Next-token logits of the last row (batched: of each sequence's last row), `(vocabSize)`. */
  logits: GPUBuffer;
}

/** Everything a forward pass reads and writes besides the weights. */
export interface GpuRunState {
  /** The activations, sized for `rows` tokens. */
  act: Activations;
  /** Per layer, cached keys, `(maxSeqLen, kvDim)`. */
  keyCache: GPUBuffer[];
  /** Per layer, cached values, `(maxSeqLen, kvDim)`. */
  valueCache: GPUBuffer[];
  /** The decoder state (`gpu/state.ts`): current token, position, next position. */
  state: GPUBuffer;
  /** Token ids by position, `(maxSeqLen + 1)` u32: the prompt and every token chosen on the GPU. */
  history: GPUBuffer;
  /** Token ids of one prefill chunk, `(rows)` u32. */
  chunkTokens: GPUBuffer;
}

/** Allocates activations for `rows` tokens, with logits for `logitRows` of them. */
export function createActivations(
  gpu: Gpu,
  config: LlamaConfig,
  rows: number,
  logitRows = 1,
): Activations {
  const { dim, hiddenDim, vocabSize } = config;
  const qDim = config.nHeads * headDim(config);
  const kvDim = config.nKvHeads * headDim(config);
  const floats = (n: number, label: string) => gpu.createBuffer(n * 4, label);
  return {
    x: floats(rows * dim, "x"),
    xb: floats(rows * dim, "xb"),
    xb2: floats(rows * dim, "xb2"),
    q: floats(rows * qDim, "q"),
    k: floats(rows * kvDim, "k"),
    v: floats(rows * kvDim, "v"),
    att: floats(rows * qDim, "att"),
    hb: floats(rows * hiddenDim, "hb"),
    hb2: floats(rows * hiddenDim, "hb2"),
    logits: floats(logitRows * vocabSize, "logits"),
  };
}

/** Allocates the run state for forward passes of up to `rows` tokens, the KV cache in `kvFormat`. */
export function createRunState(
  gpu: Gpu,
  config: LlamaConfig,
  rows: number,
  kvFormat: KvFormat = "f32",
): GpuRunState {
  const { maxSeqLen, nLayers } = config;
  const kvDim = config.nKvHeads * headDim(config);
  const words = kvCacheWords(kvFormat, maxSeqLen, kvDim);
  const perLayer = (label: string) =>
    Array.from(
      { length: nLayers },
      (_, l) => gpu.createBuffer(words * 4, `layers[${l}].${label}`),
    );
  return {
    act: createActivations(gpu, config, rows),
    keyCache: perLayer("keyCache"),
    valueCache: perLayer("valueCache"),
    state: gpu.createBuffer(STATE_BYTES, "state"),
    // One slot more than positions: the last generated token is recorded, never processed.
    history: gpu.createBuffer((maxSeqLen + 1) * 4, "history"),
    chunkTokens: gpu.createBuffer(rows * 4, "chunkTokens"),
  };
}

/** Frees every buffer of `run`. */
export function destroyRunState(run: GpuRunState): void {
  const buffers = [
    ...Object.values(run.act),
    ...run.keyCache,
    ...run.valueCache,
    run.state,
    run.history,
    run.chunkTokens,
  ];
  for (const buffer of buffers) buffer.destroy();
}
