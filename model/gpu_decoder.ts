/**
 * The LLaMA decoder on WebGPU: weights uploaded once (split where a tensor exceeds the
 * binding limit), the KV cache in GPU buffers, each forward pass recorded once per row count
 * as a list of dispatches that read the token and position from a small state buffer, so one
 * decode step, or N of them with GPU-side token choice, is one command encoder.
 *
 * @module
 */
import { headDim, type LlamaConfig } from "./config.ts";
import { checkPrefill, type Decoder, type DecoderOptions } from "./cpu_decoder.ts";
import { checkWeights, type LlamaWeights, parameterCount } from "./weights.ts";
import { addKernel } from "../gpu/add.ts";
import { advanceKernel } from "../gpu/advance.ts";
import { argmaxKernel } from "../gpu/argmax.ts";
import { attentionKernel } from "../gpu/attention.ts";
import type { Dispatch, Gpu } from "../gpu/device.ts";
import { embeddingDispatches } from "../gpu/embedding.ts";
import { STATE, STATE_WORDS } from "../gpu/kernel.ts";
import { kvAppendKernel } from "../gpu/kv_cache.ts";
import { type GpuMatrix, matmulDispatches, uploadMatrix } from "../gpu/matmul.ts";
import { rmsNormKernel } from "../gpu/rms_norm.ts";
import { ropeKernel } from "../gpu/rope.ts";
import { siluMulKernel } from "../gpu/swiglu.ts";
import { ropeTable } from "../reference/rope.ts";

/** Options of {@linkcode GpuDecoder.create}. */
export interface GpuDecoderOptions extends DecoderOptions {
  /** Prompt tokens processed per forward pass when prefilling with a KV cache (default 64). */
  maxPrefillRows?: number;
  /** Split weight matrices into blocks of at most this many bytes (default: the device limit). */
  maxBindingBytes?: number;
}

/** Options of {@linkcode GpuDecoder.generate}. */
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

/** GPU-resident generation's result. */
export interface ResidentGeneration {
  /** The generated token ids (not including the prompt). */
  tokens: number[];
  /** Milliseconds from submitting the prompt to its first generated token being ready. */
  prefillMs: number;
  /** Milliseconds for the remaining tokens, one submit and one read-back. */
  decodeMs: number;
}

interface GpuLayer {
  attentionNorm: GPUBuffer;
  wq: GpuMatrix;
  wk: GpuMatrix;
  wv: GpuMatrix;
  wo: GpuMatrix;
  ffnNorm: GPUBuffer;
  w1: GpuMatrix;
  w2: GpuMatrix;
  w3: GpuMatrix;
  keyCache: GPUBuffer;
  valueCache: GPUBuffer;
}

/**
 * LLaMA on WebGPU.
 *
 * @example
 * ```ts ignore
 * const gpu = await requestGpu();
 * const decoder = await GpuDecoder.create(gpu, config, weights);
 * const logits = await decoder.prefill(tokenizer.encode("Once upon a time"));
 * ```
 */
export class GpuDecoder implements Decoder {
  /** The model's configuration. */
  readonly config: LlamaConfig;
  /** Whether keys and values are cached (false: the prefix is recomputed every step). */
  readonly kvCache: boolean;
  /** The device. */
  readonly gpu: Gpu;
  /** Bytes of weights resident on the GPU. */
  readonly weightBytes: number;
  readonly #maxRows: number;
  readonly #layers: GpuLayer[];
  readonly #embedding: GpuMatrix;
  readonly #finalNorm: GPUBuffer;
  readonly #classifier: GpuMatrix;
  readonly #ropeTable: GPUBuffer;
  readonly #state: GPUBuffer;
  /** Token ids by position: the prompt (recompute mode) and every token chosen on the GPU. */
  readonly #history: GPUBuffer;
  /** Token ids of one prefill chunk (KV-cache mode). */
  readonly #chunkTokens: GPUBuffer;
  readonly #act: Record<
    "x" | "xb" | "xb2" | "q" | "k" | "v" | "att" | "hb" | "hb2" | "logits",
    GPUBuffer
  >;
  readonly #plans = new Map<number, Promise<Dispatch[]>>();
  #processed = 0;
  #tokens: number[] = [];

  private constructor(
    gpu: Gpu,
    config: LlamaConfig,
    weights: LlamaWeights,
    options: GpuDecoderOptions,
  ) {
    this.gpu = gpu;
    this.config = config;
    this.kvCache = options.kvCache ?? true;
    const { dim, hiddenDim, vocabSize, maxSeqLen } = config;
    const hd = headDim(config);
    const qDim = config.nHeads * hd;
    const kvDim = config.nKvHeads * hd;
    this.#maxRows = this.kvCache ? Math.min(options.maxPrefillRows ?? 64, maxSeqLen) : maxSeqLen;
    const split = { maxBindingBytes: options.maxBindingBytes };
    const matrix = (w: Float32Array, outDim: number, inDim: number, label: string) =>
      uploadMatrix(gpu, w, outDim, inDim, { ...split, label });
    this.#embedding = matrix(weights.tokenEmbedding, vocabSize, dim, "tokenEmbedding");
    this.#classifier = config.sharedClassifier
      ? this.#embedding
      : matrix(weights.classifier, vocabSize, dim, "classifier");
    this.#finalNorm = gpu.upload(weights.finalNorm, "finalNorm");
    this.#layers = weights.layers.map((layer, l) => ({
      attentionNorm: gpu.upload(layer.attentionNorm, `layers[${l}].attentionNorm`),
      wq: matrix(layer.wq, qDim, dim, `layers[${l}].wq`),
      wk: matrix(layer.wk, kvDim, dim, `layers[${l}].wk`),
      wv: matrix(layer.wv, kvDim, dim, `layers[${l}].wv`),
      wo: matrix(layer.wo, dim, qDim, `layers[${l}].wo`),
      ffnNorm: gpu.upload(layer.ffnNorm, `layers[${l}].ffnNorm`),
      w1: matrix(layer.w1, hiddenDim, dim, `layers[${l}].w1`),
      w2: matrix(layer.w2, dim, hiddenDim, `layers[${l}].w2`),
      w3: matrix(layer.w3, hiddenDim, dim, `layers[${l}].w3`),
      keyCache: gpu.createBuffer(maxSeqLen * kvDim * 4, `layers[${l}].keyCache`),
      valueCache: gpu.createBuffer(maxSeqLen * kvDim * 4, `layers[${l}].valueCache`),
    }));
    this.weightBytes = parameterCount(config) * 4;
    this.#ropeTable = gpu.upload(ropeTable(hd, maxSeqLen, config.ropeTheta), "ropeTable");
    this.#state = gpu.createBuffer(STATE_WORDS * 4, "state");
    this.#history = gpu.createBuffer(maxSeqLen * 4, "history");
    this.#chunkTokens = gpu.createBuffer(this.#maxRows * 4, "chunkTokens");
    const rows = this.#maxRows;
    const buffer = (floats: number, label: string) => gpu.createBuffer(floats * 4, label);
    this.#act = {
      x: buffer(rows * dim, "x"),
      xb: buffer(rows * dim, "xb"),
      xb2: buffer(rows * dim, "xb2"),
      q: buffer(rows * qDim, "q"),
      k: buffer(rows * kvDim, "k"),
      v: buffer(rows * kvDim, "v"),
      att: buffer(rows * qDim, "att"),
      hb: buffer(rows * hiddenDim, "hb"),
      hb2: buffer(rows * hiddenDim, "hb2"),
      logits: buffer(vocabSize, "logits"),
    };
  }

  /** Validates and uploads the weights, allocates the KV cache and activations. */
  static async create(
    gpu: Gpu,
    config: LlamaConfig,
    weights: LlamaWeights,
    options: GpuDecoderOptions = {},
  ): Promise<GpuDecoder> {
    checkWeights(config, weights);
    const decoder = new GpuDecoder(gpu, config, weights, options);
    await decoder.#plan(1); // compiles the decode pipelines up front
    return decoder;
  }

  /** Bytes of the KV cache (all layers, `maxSeqLen` positions). */
  get kvCacheBytes(): number {
    return this.#layers.length * 2 * this.#layers[0].keyCache.size;
  }

  /**
   * The dispatches of one forward pass over `rows` tokens starting at `state.pos`, through
   * the classifier of the last row; recorded once per row count.
   */
  #plan(rows: number): Promise<Dispatch[]> {
    let plan = this.#plans.get(rows);
    if (!plan) {
      plan = this.#record(rows);
      this.#plans.set(rows, plan);
    }
    return plan;
  }

  async #record(rows: number): Promise<Dispatch[]> {
    const gpu = this.gpu;
    const { dim, hiddenDim, nHeads, nKvHeads, maxSeqLen, normEps: eps, ropeLayout: layout } =
      this.config;
    const hd = headDim(this.config);
    const { x, xb, xb2, q, k, v, att, hb, hb2, logits } = this.#act;
    const state = this.#state;
    const table = this.#ropeTable;
    // Decoding one token with a cache reads it from the state, where argmax leaves it.
    const tokens = !this.kvCache ? this.#history : rows === 1 ? state : this.#chunkTokens;
    const [norm, ropeQ, ropeK, append, attend, residual, gate] = await Promise.all([
      rmsNormKernel(gpu, { rows, dim, eps }),
      ropeKernel(gpu, { rows, nHeads, headDim: hd, maxSeqLen, layout }),
      ropeKernel(gpu, { rows, nHeads: nKvHeads, headDim: hd, maxSeqLen, layout }),
      kvAppendKernel(gpu, { rows, kvDim: nKvHeads * hd, maxSeqLen }),
      attentionKernel(gpu, { rows, nHeads, nKvHeads, headDim: hd }),
      addKernel(gpu, rows * dim),
      siluMulKernel(gpu, rows * hiddenDim),
    ]);
    const project = (w: GpuMatrix, input: GPUBuffer, out: GPUBuffer) =>
      matmulDispatches(gpu, w, { rows, x: input, out });
    const steps: Dispatch[] = await embeddingDispatches(gpu, this.#embedding, {
      rows,
      tokens,
      out: x,
    });
    for (const layer of this.#layers) {
      const { keyCache, valueCache } = layer;
      steps.push(norm.bind({ x, weight: layer.attentionNorm, out: xb }));
      steps.push(
        ...await project(layer.wq, xb, q),
        ...await project(layer.wk, xb, k),
        ...await project(layer.wv, xb, v),
      );
      steps.push(ropeQ.bind({ x: q, table, state }), ropeK.bind({ x: k, table, state }));
      steps.push(append.bind({ k, v, keyCache, valueCache, state }));
      steps.push(...attend.bind({ q, keyCache, valueCache, state, out: att }));
      steps.push(...await project(layer.wo, att, xb2), residual.bind({ x, delta: xb2 }));
      steps.push(norm.bind({ x, weight: layer.ffnNorm, out: xb }));
      steps.push(...await project(layer.w1, xb, hb), ...await project(layer.w3, xb, hb2));
      steps.push(gate.bind({ gate: hb, up: hb2 }));
      steps.push(...await project(layer.w2, hb, xb2), residual.bind({ x, delta: xb2 }));
    }
    steps.push(norm.bind({ x, weight: this.#finalNorm, out: xb }));
    const lastRow = { rows: 1, x: xb, out: logits, xOffset: (rows - 1) * dim };
    steps.push(...await matmulDispatches(gpu, this.#classifier, lastRow));
    return steps;
  }

  /** Argmax (or a Gumbel-max draw) into the state, then the history/position bookkeeping. */
  async #choose(temperature: number, seed: number): Promise<Dispatch[]> {
    const pick = await argmaxKernel(this.gpu, this.config.vocabSize, { temperature, seed });
    const advance = await advanceKernel(this.gpu, { movePos: this.kvCache });
    return [
      pick.bind({ logits: this.#act.logits, state: this.#state }),
      advance.bind({ state: this.#state, history: this.#history }),
    ];
  }

  #writeState(token: number, pos: number, next: number): void {
    const words = new Uint32Array(STATE_WORDS);
    words[STATE.token] = token;
    words[STATE.pos] = pos;
    words[STATE.next] = next;
    this.gpu.write(this.#state, words);
  }

  #checkTokens(tokens: readonly number[]): void {
    for (const token of tokens) {
      if (!Number.isInteger(token) || token < 0 || token >= this.config.vocabSize) {
        throw new RangeError(
          `token id ${token} is outside the vocabulary [0, ${this.config.vocabSize})`,
        );
      }
    }
  }

  /** Processes `token` at `pos` and returns the next-token logits `(vocabSize)`. */
  forward(token: number, pos: number): Promise<Float32Array> {
    return this.prefill([token], pos);
  }

  /** Processes `tokens` from `startPos` (in chunks) and returns the logits after the last. */
  async prefill(tokens: readonly number[], startPos = 0): Promise<Float32Array> {
    await this.#submitPrompt(tokens, startPos);
    return await this.gpu.readFloat32(this.#act.logits, this.config.vocabSize);
  }

  /**
   * Submits the forward passes over `tokens` at `startPos...`; `tail` is recorded after the
   * last one, in the same submit. Returns that submit's promise.
   */
  async #submitPrompt(
    tokens: readonly number[],
    startPos: number,
    tail: Dispatch[] = [],
  ): Promise<void> {
    if (tokens.length === 0) throw new RangeError("prefill: expected at least one token, got none");
    this.#checkTokens(tokens);
    checkPrefill(this.config, startPos, tokens.length, this.#processed);
    const end = startPos + tokens.length;
    this.#tokens.length = startPos;
    this.#tokens.push(...tokens);
    this.#processed = end;
    if (!this.kvCache) {
      // Recompute: the whole sequence from position 0, every time.
      this.gpu.write(this.#history, Uint32Array.from(this.#tokens));
      this.#writeState(tokens[0], 0, end);
      return this.gpu.submit([...await this.#plan(end), ...tail], "forward (recompute)");
    }
    let submitted = Promise.resolve();
    for (let chunk = 0; chunk < tokens.length; chunk += this.#maxRows) {
      const ids = tokens.slice(chunk, chunk + this.#maxRows);
      const pos = startPos + chunk;
      this.gpu.write(this.#chunkTokens, Uint32Array.from(ids));
      this.#writeState(ids[0], pos, pos + ids.length);
      const last = chunk + this.#maxRows >= tokens.length;
      submitted = this.gpu.submit(
        [...await this.#plan(ids.length), ...(last ? tail : [])],
        "forward",
      );
      if (!last) await submitted;
    }
    return submitted;
  }

  /**
   * Greedy (temperature 0) or Gumbel-max sampled generation with the token chosen on the GPU
   * and fed to the next step without a read-back: the prompt is one submit, the remaining
   * `steps − 1` tokens another, and their ids one read-back.
   */
  async generate(
    prompt: readonly number[],
    steps: number,
    options: ResidentOptions = {},
  ): Promise<ResidentGeneration> {
    const { temperature = 0, seed = 0, onTokens, streamEvery = steps, startPos = 0 } = options;
    if (!Number.isInteger(steps) || steps < 1) {
      throw new RangeError(`steps: expected an integer >= 1, got ${steps}`);
    }
    if (!Number.isInteger(streamEvery) || streamEvery < 1) {
      throw new RangeError(`streamEvery: expected an integer >= 1, got ${streamEvery}`);
    }
    if (startPos + prompt.length + steps > this.config.maxSeqLen) {
      throw new RangeError(
        `start (${startPos}) + prompt (${prompt.length}) + steps (${steps}) exceed maxSeqLen ${this.config.maxSeqLen}`,
      );
    }
    const choose = await this.#choose(temperature, seed);
    const start = performance.now();
    await this.#submitPrompt(prompt, startPos, choose);
    await this.gpu.finish();
    const prefillMs = performance.now() - start;
    const decodeStart = performance.now();
    const tokens: number[] = [];
    // Token k lands in history[end + k]; each chunk is one submit and one read-back.
    const end = startPos + prompt.length;
    for (let done = 1; tokens.length < steps; done = Math.min(steps, done + streamEvery)) {
      const decode: Dispatch[] = [];
      for (let i = done; i < Math.min(steps, done + streamEvery); i++) {
        // With a cache each step is the same one-row pass; recomputing, the prefix grows.
        decode.push(...await this.#plan(this.kvCache ? 1 : end + i), ...choose);
      }
      if (decode.length > 0) await this.gpu.submit(decode, "generate");
      const ready = Math.min(steps, done + streamEvery);
      const ids = await this.gpu.readUint32(
        this.#history,
        ready - tokens.length,
        end + tokens.length,
      );
      tokens.push(...ids);
      onTokens?.(Array.from(ids));
    }
    const decodeMs = performance.now() - decodeStart;
    this.#tokens.push(...tokens);
    this.#processed = end + steps - 1; // the last token is chosen, not yet processed
    return { tokens, prefillMs, decodeMs };
  }

  /** Frees the GPU buffers. */
  destroy(): void {
    const matrices = [
      this.#embedding,
      this.#classifier,
      ...this.#layers.flatMap((l) => [l.wq, l.wk, l.wv, l.wo, l.w1, l.w2, l.w3]),
    ];
    for (const m of matrices) for (const chunk of m.chunks) chunk.buffer.destroy();
    for (const l of this.#layers) {
      for (const b of [l.attentionNorm, l.ffnNorm, l.keyCache, l.valueCache]) {
        b.destroy();
      }
    }
    for (
      const b of [
        this.#finalNorm,
        this.#ropeTable,
        this.#state,
        this.#history,
        this.#chunkTokens,
        ...Object.values(this.#act),
      ]
    ) {
      b.destroy();
    }
  }
}
