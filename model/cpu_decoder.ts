/**
 * The LLaMA decoder on the plain-TypeScript reference: a forward pass that reads top to bottom
 * like llama2.c's `run.c`, with a KV cache, or recomputing the whole prefix every step (the
 * baseline the KV cache is measured against).
 *
 * @module
 */
import { headDim, type LlamaConfig, ropeOptions } from "./config.ts";
import { checkPosition, checkPrefill, type Decoder, type DecoderOptions } from "./decoder.ts";
import { checkKvCacheFitsMemory, kvCacheBytes } from "./memory.ts";
import { checkWeights, type LlamaWeights } from "./weights.ts";
import {
  checkKvFormat,
  checkStoredWeights,
  checkWeightFormat,
  storedMatmul,
  storedRows,
  type StoredWeights,
  storeWeights,
  weightsBytes,
} from "./precision.ts";
import { attention, cachedAttention } from "../reference/attention.ts";
import { KvCache, type KvFormat } from "../reference/kv_cache.ts";
import { rmsNorm } from "../reference/norm.ts";
import { rope, type RopeOptions, ropeRows } from "../reference/rope.ts";
import { siluMul } from "../reference/swiglu.ts";

/**
 * LLaMA on the CPU reference.
 *
 * @example
 * ```ts
 * import { makeConfig } from "./config.ts";
 * import { randomWeights } from "./weights.ts";
 * import { CpuDecoder } from "./cpu_decoder.ts";
 * const config = makeConfig({ dim: 16, hiddenDim: 32, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 20, maxSeqLen: 8 });
 * const decoder = new CpuDecoder(config, randomWeights(config, 1));
 * const logits = await decoder.prefill([1, 5, 7]);
 * if (logits.length !== 20) throw new Error("wrong");
 * ```
 */
export class CpuDecoder implements Decoder {
  /** The model's configuration. */
  readonly config: LlamaConfig;
  /** The weights, in their storage format. */
  readonly weights: StoredWeights;
  /** Whether keys and values are cached. */
  readonly kvCache: boolean;
  /** Format of the cached keys and values. */
  readonly kvFormat: KvFormat;
  /** The KV cache; undefined when recomputing. */
  readonly cache: KvCache | undefined;
  #history: number[] = [];
  /** Sizes the forward passes use, derived once from the config. */
  readonly #dims: LlamaConfig & {
    eps: number;
    rope: RopeOptions;
    hd: number;
    qDim: number;
    kvDim: number;
  };

  /**
   * Wraps validated weights: float32 ones are stored in `options.weights` (the matrices
   * quantized; f32 without a copy), stored ones are used as they are. The KV cache holds `config.maxSeqLen` positions: build the
   * decoder from `contextConfig(config, positions)` to size it to a run.
   */
  constructor(
    config: LlamaConfig,
    weights: LlamaWeights | StoredWeights,
    options: DecoderOptions = {},
  ) {
    this.config = config;
    if ("format" in weights) {
      checkStoredWeights(config, weights);
      if (options.weights !== undefined && options.weights !== weights.format) {
        throw new RangeError(
          `weights: the stored weights are ${weights.format}, the options ask for ${options.weights}`,
        );
      }
      this.weights = weights;
    } else {
      checkWeights(config, weights);
      this.weights = storeWeights(config, weights, checkWeightFormat(options.weights ?? "f32"));
    }
    const kv = options.kvCache ?? true;
    this.kvCache = kv !== false;
    this.kvFormat = typeof kv === "string" ? checkKvFormat(kv) : "f32";
    this.cache = this.kvCache ? allocateCache(config, this.kvFormat) : undefined;
    const hd = headDim(config);
    this.#dims = {
      ...config,
      eps: config.normEps,
      rope: ropeOptions(config),
      hd,
      qDim: config.nHeads * hd,
      kvDim: config.nKvHeads * hd,
    };
  }

  /** Bytes of the weights as held (the stored format's; the classifier once when shared). */
  get weightBytes(): number {
    return weightsBytes(this.weights);
  }

  /** Bytes of the KV cache (all layers, `maxSeqLen` positions) in its format; 0 recomputing. */
  get kvCacheBytes(): number {
    return this.cache?.bytes ?? 0;
  }

  /** Processes `token` at `pos` and returns the next-token logits `(vocabSize)`. */
  // deno-lint-ignore require-await
  async forward(token: number, pos: number): Promise<Float32Array> {
    return this.forwardSync(token, pos);
  }

  /** {@linkcode CpuDecoder.forward}, synchronously. */
  forwardSync(token: number, pos: number): Float32Array {
    // Validate before touching the history: a rejected call must leave the decoder as it was.
    checkToken(this.config, token);
    checkPosition(this.config, pos, this.#history.length);
    this.#history.length = pos;
    this.#history.push(token);
    return this.kvCache ? this.#forwardCached(token, pos) : this.#forwardSequence(this.#history);
  }

  /**
   * Processes `tokens` from `startPos` and returns the logits after the last one: token by
   * token against the cache, or, recomputing, one pass over the whole sequence.
   */
  // deno-lint-ignore require-await
  async prefill(tokens: readonly number[], startPos = 0): Promise<Float32Array> {
    if (tokens.length === 0) throw new RangeError("prefill: expected at least one token, got none");
    for (const token of tokens) checkToken(this.config, token);
    checkPrefill(this.config, startPos, tokens.length, this.#history.length);
    if (!this.kvCache) {
      this.#history.length = startPos;
      this.#history.push(...tokens);
      return this.#forwardSequence(this.#history);
    }
    let logits!: Float32Array;
    for (let i = 0; i < tokens.length; i++) logits = this.forwardSync(tokens[i], startPos + i);
    return logits;
  }

  /** One token against the KV cache, as in llama2.c's `forward`. */
  #forwardCached(token: number, pos: number): Float32Array {
    const { nHeads, nKvHeads, eps, rope: ropeOptions, hd } = this.#dims;
    const w = this.weights;
    const cache = this.cache!;
    const x = storedRows(w.tokenEmbedding, [token]);
    w.layers.forEach((layer, l) => {
      // attention: x += wo · attention(rope(wq·xb), cache)
      let xb = rmsNorm(x, layer.attentionNorm, eps);
      const q = rope(storedMatmul(layer.wq, xb), pos, hd, ropeOptions);
      const k = rope(storedMatmul(layer.wk, xb), pos, hd, ropeOptions);
      const v = storedMatmul(layer.wv, xb);
      cache.write(l, pos, k, v);
      const att = cachedAttention(
        q,
        cache.keys[l],
        cache.values[l],
        pos,
        1,
        { nHeads, nKvHeads, headDim: hd },
        this.config.slidingWindow, // Mistral-style window; undefined is full attention
      );
      addInPlace(x, storedMatmul(layer.wo, att));
      // feed-forward: x += w2 · (silu(w1·xb) ⊙ w3·xb)
      xb = rmsNorm(x, layer.ffnNorm, eps);
      const gate = storedMatmul(layer.w1, xb);
      addInPlace(x, storedMatmul(layer.w2, siluMul(gate, storedMatmul(layer.w3, xb))));
    });
    return storedMatmul(w.classifier, rmsNorm(x, w.finalNorm, eps));
  }

  /** The whole sequence at once, no cache: `(T, dim)` activations, full causal attention. */
  #forwardSequence(tokens: readonly number[]): Float32Array {
    const { dim, nHeads, nKvHeads, eps, rope: ropeOptions, hd } = this.#dims;
    const seqLen = tokens.length;
    const w = this.weights;
    const x = storedRows(w.tokenEmbedding, tokens);
    for (const layer of w.layers) {
      let xb = rmsNorm(x, layer.attentionNorm, eps);
      const q = ropeRows(storedMatmul(layer.wq, xb, seqLen), 0, seqLen, hd, ropeOptions);
      const k = ropeRows(storedMatmul(layer.wk, xb, seqLen), 0, seqLen, hd, ropeOptions);
      const v = storedMatmul(layer.wv, xb, seqLen);
      const att = attention(
        q,
        k,
        v,
        seqLen,
        { nHeads, nKvHeads, headDim: hd },
        this.config.slidingWindow,
      );
      addInPlace(x, storedMatmul(layer.wo, att, seqLen));
      xb = rmsNorm(x, layer.ffnNorm, eps);
      const gate = storedMatmul(layer.w1, xb, seqLen);
      const up = storedMatmul(layer.w3, xb, seqLen);
      addInPlace(x, storedMatmul(layer.w2, siluMul(gate, up), seqLen));
    }
    const last = x.subarray((seqLen - 1) * dim);
    return storedMatmul(w.classifier, rmsNorm(last, w.finalNorm, eps));
  }
}

function checkToken(config: LlamaConfig, token: number): void {
  if (!Number.isInteger(token) || token < 0 || token >= config.vocabSize) {
    throw new RangeError(`token id ${token} is outside the vocabulary [0, ${config.vocabSize})`);
  }
}

/** A KV cache of `config.maxSeqLen` positions, or an error naming maxSeqLen. */
function allocateCache(config: LlamaConfig, format: KvFormat): KvCache {
  checkKvCacheFitsMemory(config, `CpuDecoder: maxSeqLen ${config.maxSeqLen}`);
  try {
    return new KvCache({ ...config, headDim: headDim(config) }, format);
  } catch (error) {
    throw new RangeError(
      `CpuDecoder: maxSeqLen ${config.maxSeqLen}: cannot allocate a KV cache of ${
        (kvCacheBytes(config) / 1e9).toFixed(1)
      } GB (${error instanceof Error ? error.message : error})`,
    );
  }
}

function addInPlace(x: Float32Array, delta: Float32Array): void {
  for (let i = 0; i < x.length; i++) x[i] += delta[i];
}
