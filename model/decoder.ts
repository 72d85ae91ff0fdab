/**
 * What every decoder backend offers (the CPU reference, WebGPU), its options, the position
 * checks both apply, and the optional capabilities a backend may add.
 *
 * @module
 */
import type { LlamaConfig } from "./config.ts";
import type { KvFormat } from "../reference/kv_cache.ts";
import type { TensorFormat } from "../reference/quantize.ts";

/**
 * A LLaMA decoder: logits for a token at a position, and prefill. Optional capabilities are
 * methods a backend may have; callers test for the method, never for the class.
 */
export interface Decoder {
  /** The model's configuration. */
  readonly config: LlamaConfig;
  /** Whether keys and values are cached (false: the prefix is recomputed every step). */
  readonly kvCache: boolean;
  /**
   * True where each new sequence length costs a compile (WebGPU recomputing the prefix): a
   * benchmark warms such a decoder up with the whole run, not a short one.
   */
  readonly compilesPerLength?: boolean;
  /** Processes `token` at `pos` (after positions `0..pos-1`) and returns the next-token logits. */
  forward(token: number, pos: number): Promise<Float32Array>;
  /** Processes `tokens` at positions `startPos...` and returns the logits after the last. */
  prefill(tokens: readonly number[], startPos?: number): Promise<Float32Array>;
  /**
   * Optional: {@linkcode Decoder.forward} without a promise, where the backend computes on the
   * calling thread (the CPU reference): what a benchmark times without the microtask.
   */
  forwardSync?(token: number, pos: number): Float32Array;
  /**
   * Optional: greedy or Gumbel-max generation with each token chosen on the device and fed to
   * the next step without a read-back.
   */
  generate?(
    prompt: readonly number[],
    steps: number,
    options?: ResidentOptions,
  ): Promise<ResidentGeneration>;
  /** Optional: frees what the decoder holds outside the JavaScript heap (GPU buffers). */
  destroy?(): void;
}

/** Options of every decoder. */
export interface DecoderOptions {
  /**
   * Keep a KV cache (default; `true` is `"f32"`), stored as f32, f16 or Q8_0, or recompute the
   * whole prefix at every step (`false`).
   */
  kvCache?: boolean | KvFormat;
  /** Format the weight matrices are held in (default: f32, or the stored weights' own). */
  weights?: TensorFormat;
}

/** Options of {@linkcode Decoder.generate}. */
export interface ResidentOptions {
  /** 0 (default) is greedy; above 0 is a Gumbel-max draw at that temperature. */
  temperature?: number;
  /** Seed of the sampling noise. */
  seed?: number;
  /** Called with each batch of new token ids as it is read back. */
  onTokens?: (tokens: number[]) => void;
  /** Tokens per submit and read-back (default: all in one, the fastest; lower streams sooner). */
  streamEvery?: number;
  /**
   * Position of the prompt's first token (default 0): positions before it must have been
   * processed, e.g. to decode again from a cached context.
   */
  startPos?: number;
}

/** {@linkcode Decoder.generate}'s result. */
export interface ResidentGeneration {
  /** The generated token ids (not including the prompt). */
  tokens: number[];
  /** Milliseconds from submitting the prompt to its first generated token being ready. */
  prefillMs: number;
  /** Milliseconds for the remaining tokens. */
  decodeMs: number;
}

/**
 * Throws unless `pos` is a valid next position: at most `processed`, below `maxSeqLen`.
 *
 * @example
 * ```ts
 * import { makeConfig } from "./config.ts";
 * import { checkPosition } from "./decoder.ts";
 * const config = makeConfig({ dim: 8, hiddenDim: 16, nLayers: 1, nHeads: 2, nKvHeads: 1, vocabSize: 10, maxSeqLen: 4 });
 * checkPosition(config, 2, 2); // the next position: fine
 * try { checkPosition(config, 3, 2); throw new Error("accepted"); } catch (e) { if (!(e instanceof RangeError)) throw e; }
 * ```
 */
export function checkPosition(config: LlamaConfig, pos: number, processed: number): void {
  if (!Number.isInteger(pos) || pos < 0 || pos >= config.maxSeqLen) {
    throw new RangeError(
      `position: expected an integer in [0, maxSeqLen ${config.maxSeqLen}), got ${pos}`,
    );
  }
  if (pos > processed) {
    throw new RangeError(
      `position ${pos} skips ahead: ${
        processed === 0
          ? "no position has been processed yet"
          : `only positions 0..${processed - 1} have been processed`
      }`,
    );
  }
}

/**
 * Throws unless `count` tokens from `startPos` can be processed next: `startPos` valid for
 * {@linkcode checkPosition} and the last position below `maxSeqLen`.
 *
 * @example
 * ```ts
 * import { makeConfig } from "./config.ts";
 * import { checkPrefill } from "./decoder.ts";
 * const config = makeConfig({ dim: 8, hiddenDim: 16, nLayers: 1, nHeads: 2, nKvHeads: 1, vocabSize: 10, maxSeqLen: 4 });
 * checkPrefill(config, 0, 4, 0);
 * try { checkPrefill(config, 0, 5, 0); throw new Error("accepted"); } catch (e) { if (!(e instanceof RangeError)) throw e; }
 * ```
 */
export function checkPrefill(
  config: LlamaConfig,
  startPos: number,
  count: number,
  processed: number,
): void {
  checkPosition(config, startPos, processed);
  if (startPos + count > config.maxSeqLen) {
    throw new RangeError(
      `prefill: positions ${startPos}..${
        startPos + count - 1
      } exceed maxSeqLen ${config.maxSeqLen}`,
    );
  }
}
