/**
 * The LLaMA decoder on WebGPU, read like llama2.c's `run.c`: the forward pass first, recorded
 * once per row count as a list of dispatches that read the token and position from the state
 * buffer (`gpu/state.ts`), so one decode step, or N of them with the token chosen on the GPU, is
 * one submit. Weights upload in `_weights.ts`; activations and the KV cache are
 * `_run_state.ts`'s `GpuRunState`.
 *
 * @module
 */
import { headDim, type LlamaConfig } from "../config.ts";
import { checkPrefill, type Decoder, type DecoderOptions } from "../decoder.ts";
import type { ResidentGeneration, ResidentOptions } from "../decoder.ts";
import {
  destroyWeights,
  type GpuWeightMatrix,
  type GpuWeights,
  projectDispatches,
  uploadWeights,
} from "./_weights.ts";
import {
  checkKvFormat,
  checkStoredWeights,
  checkWeightFormat,
  dequantizeWeights,
  type StoredWeights,
  storeWeights,
} from "../precision.ts";
import { createRunState, destroyRunState, type GpuRunState } from "./_run_state.ts";
import { nonFiniteLogitsError } from "../logits.ts";
import { checkKvCacheFitsMemory } from "../memory.ts";
import { checkWeights, type LlamaWeights } from "../weights.ts";
import type { Dispatch, Gpu } from "../../gpu/device.ts";
import { addKernel } from "../../gpu/add.ts";
import { advanceKernel } from "../../gpu/advance.ts";
import { type AttentionKernel, attentionKernel } from "../../gpu/attention/attention.ts";
import { embeddingDispatches } from "../../gpu/embedding.ts";
import { finiteCheckKernel, NO_FAULT } from "../../gpu/finite_check.ts";
import { kvAppendKernel } from "../../gpu/kv_cache.ts";
import { rmsNormKernel } from "../../gpu/norm.ts";
import { ropeKernel } from "../../gpu/rope.ts";
import { argmaxKernel } from "../../gpu/sampling.ts";
import { stateWords } from "../../gpu/state.ts";
import { siluMulKernel } from "../../gpu/swiglu.ts";
import { parseTuning, type Tuning, TuningTable } from "../../gpu/tuning.ts";
import { ropeTable } from "../../reference/rope.ts";
import type { KvFormat } from "../../reference/kv_cache.ts";
import {
  destroyFusedLayer,
  type FusedLayer,
  projectionDispatches,
  recordFusedLayers,
  tunedAttention,
  uploadFusedLayer,
  uploadFusedPackedLayer,
} from "./_fused_step.ts";

/**
 * LLaMA on WebGPU.
 *
 * @example
 * ```ts ignore
 * const decoder = await GpuDecoder.create(await requestGpu(), config, weights);
 * const logits = await decoder.prefill(tokenizer.encode("Once upon a time"));
 * ```
 */
export class GpuDecoder implements Decoder {
  /**
   * The forward pass over `rows` tokens from `state.pos`, through the classifier of the last
   * row, as run.c's `forward()`. Recorded once per row count (see {@linkcode GpuDecoder.#plan}).
   */
  async #record(rows: number): Promise<Dispatch[]> {
    const { gpu, config } = this;
    const [w, run] = [this.#weights, this.#run];
    const { dim, hiddenDim, nHeads, nKvHeads, maxSeqLen, normEps: eps, ropeLayout: layout } =
      config;
    const hd = headDim(config);
    const { x, xb, xb2, q, k, v, att, hb, hb2, logits } = run.act;
    const { state } = run;
    const table = this.#ropeTable;
    const norm = await rmsNormKernel(gpu, { rows, dim, eps });
    const attend = this.#fused
      ? await tunedAttention(gpu, this.tuning, config, rows, this.kvFormat)
      : await attentionKernel(gpu, {
        rows,
        nHeads,
        nKvHeads,
        headDim: hd,
        kvFormat: this.kvFormat,
        maxSeqLen,
      });
    this.#attentionKernels.push(attend); // it owns a buffer when split
    const tokens = this.#tokenSource(rows);
    const steps = await embeddingDispatches(gpu, w.tokenEmbedding, { rows, tokens, out: x });
    if (this.#fused) {
      // five dispatches per layer (six when attention splits), see _fused_step.ts
      steps.push(
        ...await recordFusedLayers(gpu, this.tuning, config, rows, this.#fused, {
          x,
          q,
          att,
          hb,
          state,
          ropeTable: table,
          keyCache: run.keyCache,
          valueCache: run.valueCache,
          k,
          v,
          kvFormat: this.kvFormat,
        }, attend),
      );
      steps.push(...norm.bind({ x, weight: w.finalNorm, out: xb }));
      steps.push(
        ...await projectionDispatches(gpu, this.tuning, w.classifier, {
          kind: "store",
        }, {
          rows: 1,
          x: xb,
          xOffset: (rows - 1) * dim,
          buffers: { out: logits },
        }),
      );
      return steps;
    }
    const [ropeQ, ropeK, append, residual, gate] = await Promise.all([
      ropeKernel(gpu, { rows, nHeads, headDim: hd, maxSeqLen, layout }),
      ropeKernel(gpu, { rows, nHeads: nKvHeads, headDim: hd, maxSeqLen, layout }),
      kvAppendKernel(gpu, { rows, kvDim: nKvHeads * hd, maxSeqLen, format: this.kvFormat }),
      addKernel(gpu, rows * dim),
      siluMulKernel(gpu, rows * hiddenDim),
    ]);
    const project = (m: GpuWeightMatrix, input: GPUBuffer, out: GPUBuffer) =>
      projectDispatches(gpu, m, { rows, x: input, out });
    for (const [l, layer] of w.layers.entries()) {
      const [keyCache, valueCache] = [run.keyCache[l], run.valueCache[l]];
      // attention: x += wo · attention(rope(wq·xb), cache + rope(wk·xb), wv·xb)
      steps.push(...norm.bind({ x, weight: layer.attentionNorm, out: xb }));
      steps.push(...await project(layer.wq, xb, q), ...await project(layer.wk, xb, k));
      steps.push(...await project(layer.wv, xb, v));
      steps.push(...ropeQ.bind({ x: q, table, state }), ...ropeK.bind({ x: k, table, state }));
      steps.push(...append.bind({ k, v, keyCache, valueCache, state }));
      steps.push(...attend.bind({ q, keyCache, valueCache, state, out: att }));
      steps.push(...await project(layer.wo, att, xb2), ...residual.bind({ x, delta: xb2 }));
      // feed-forward: x += w2 · (silu(w1·xb) ⊙ w3·xb)
      steps.push(...norm.bind({ x, weight: layer.ffnNorm, out: xb }));
      steps.push(...await project(layer.w1, xb, hb), ...await project(layer.w3, xb, hb2));
      steps.push(...gate.bind({ gate: hb, up: hb2 }));
      steps.push(...await project(layer.w2, hb, xb2), ...residual.bind({ x, delta: xb2 }));
    }
    steps.push(...norm.bind({ x, weight: w.finalNorm, out: xb }));
    const lastRow = { rows: 1, x: xb, out: logits, xOffset: (rows - 1) * dim };
    steps.push(...await projectDispatches(gpu, w.classifier, lastRow));
    return steps;
  }

  /** Where a forward pass over `rows` tokens reads their ids. */
  #tokenSource(rows: number): GPUBuffer {
    // Recomputing: the whole sequence from position 0, kept in the history.
    if (!this.kvCache) return this.#run.history;
    // Decoding one token: argmax left it in the state buffer, so the GPU feeds itself.
    if (rows === 1) return this.#run.state;
    // Prefilling a chunk with a cache: the chunk's ids, written by the CPU.
    return this.#run.chunkTokens;
  }

  /** The model's configuration. */
  readonly config: LlamaConfig;
  /** Whether keys and values are cached (false: the prefix is recomputed every step). */
  readonly kvCache: boolean;
  /** Format of the cached keys and values. */
  readonly kvFormat: KvFormat;
  /** The device. */
  readonly gpu: Gpu;
  /** Bytes of weights resident on the GPU. */
  readonly weightBytes: number;
  /** The kernel variants this decoder runs. */
  readonly tuning: TuningTable;
  /** The weights on the GPU (without the layers when fused). */
  readonly #weights: GpuWeights;
  /** The layers in the fused layouts, when the tuning runs the fused forward pass. */
  readonly #fused: FusedLayer[] | undefined;
  /** Activations, KV cache, token and position bookkeeping. */
  readonly #run: GpuRunState;
  readonly #ropeTable: GPUBuffer;
  /** The first position whose logits were not finite during GPU-resident generation. */
  readonly #fault: GPUBuffer;
  /** Tokens one forward pass processes at most. */
  readonly #maxRows: number;
  readonly #plans = new Map<number, Promise<Dispatch[]>>();
  readonly #attentionKernels: AttentionKernel[] = [];
  #processed = 0;
  #tokens: number[] = [];

  private constructor(
    gpu: Gpu,
    config: LlamaConfig,
    weights: LlamaWeights | StoredWeights,
    options: GpuDecoderOptions,
  ) {
    this.gpu = gpu;
    this.config = config;
    this.kvCache = options.kvCache !== false;
    this.kvFormat = typeof options.kvCache === "string" ? checkKvFormat(options.kvCache) : "f32";
    const { maxSeqLen } = config;
    this.#maxRows = this.kvCache ? Math.min(options.maxPrefillRows ?? 64, maxSeqLen) : maxSeqLen;
    const tuning = typeof options.tuning === "string"
      ? parseTuning(options.tuning)
      : options.tuning && parseTuning(options.tuning);
    this.tuning = new TuningTable(gpu.adapter, tuning);
    // The fused step reads f32 weights or packed f16/Q8_0/Q4_0 ones (a layer with a matrix
    // that fell back to f32 among packed ones takes the plain path), and any KV-cache format.
    let fused: FusedLayer[] | undefined;
    if (this.tuning.fused) {
      if (!("format" in weights) || weights.format === "f32") {
        const plain = "format" in weights ? dequantizeWeights(weights) : weights;
        fused = plain.layers.map((layer, l) =>
          uploadFusedLayer(gpu, config, layer, l, options.maxBindingBytes)
        );
      } else {
        const layers = weights.layers.map((layer, l) =>
          uploadFusedPackedLayer(gpu, config, layer, l, options.maxBindingBytes)
        );
        if (layers.every((layer) => layer !== undefined)) fused = layers as FusedLayer[];
        else for (const layer of layers) if (layer) destroyFusedLayer(layer);
      }
    }
    this.#weights = uploadWeights(
      gpu,
      config,
      fused ? { ...weights, layers: [] } as typeof weights : weights,
      options.maxBindingBytes,
    );
    this.#fused = fused;
    this.weightBytes = this.#weights.bytes;
    this.#run = createRunState(gpu, config, this.#maxRows, this.kvFormat);
    this.#ropeTable = gpu.upload(
      ropeTable(headDim(config), maxSeqLen, config.ropeTheta, config.ropeScaling?.factor),
      "ropeTable",
    );
    this.#fault = gpu.createBuffer(4, "fault");
  }

  /** Validates and uploads the weights, allocates the KV cache and activations. */
  static async create(
    gpu: Gpu,
    config: LlamaConfig,
    weights: LlamaWeights | StoredWeights,
    options: GpuDecoderOptions = {},
  ): Promise<GpuDecoder> {
    if ("format" in weights) {
      checkStoredWeights(config, weights);
      if (options.weights !== undefined && options.weights !== weights.format) {
        throw new RangeError(
          `weights: the stored weights are ${weights.format}, the options ask for ${options.weights}`,
        );
      }
    } else {
      checkWeights(config, weights);
      const format = checkWeightFormat(options.weights ?? "f32");
      if (format !== "f32") weights = storeWeights(config, weights, format);
    }
    if (config.slidingWindow !== undefined) {
      throw new RangeError(
        `GpuDecoder: slidingWindow: expected none (GpuBatchDecoder runs sliding-window models), got ${config.slidingWindow}`,
      );
    }
    // Host memory stands in for the adapter's, which WebGPU does not report.
    checkKvCacheFitsMemory(config, `GpuDecoder: maxSeqLen ${config.maxSeqLen}`);
    const decoder = new GpuDecoder(gpu, config, weights, options);
    await decoder.#plan(1); // compiles the decode pipelines up front
    return decoder;
  }

  /** Recomputing compiles one plan per sequence length. */
  get compilesPerLength(): boolean {
    return !this.kvCache;
  }

  /** Bytes of the KV cache (all layers, `maxSeqLen` positions). */
  get kvCacheBytes(): number {
    return 2 * this.#run.keyCache.reduce((sum, b) => sum + b.size, 0);
  }

  /** The dispatches of {@linkcode GpuDecoder.#record}, recorded once per row count. */
  #plan(rows: number): Promise<Dispatch[]> {
    let plan = this.#plans.get(rows);
    if (!plan) {
      plan = this.#record(rows);
      this.#plans.set(rows, plan);
    }
    return plan;
  }

  /**
   * The finite check, argmax (or a Gumbel-max draw) into the state, then the history/position
   * bookkeeping.
   */
  async #choose(temperature: number, seed: number): Promise<Dispatch[]> {
    const { vocabSize } = this.config;
    const check = await finiteCheckKernel(this.gpu, vocabSize);
    const pick = await argmaxKernel(this.gpu, vocabSize, { temperature, seed });
    const advance = await advanceKernel(this.gpu, { movePos: this.kvCache });
    return [
      ...check.bind({ logits: this.#run.act.logits, state: this.#run.state, fault: this.#fault }),
      ...pick.bind({ logits: this.#run.act.logits, state: this.#run.state }),
      ...advance.bind({ state: this.#run.state, history: this.#run.history }),
    ];
  }

  #writeState(token: number, pos: number, next: number): void {
    this.gpu.write(this.#run.state, stateWords({ token, pos, next }));
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
    return await this.gpu.readFloat32(this.#run.act.logits, this.config.vocabSize);
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
      this.gpu.write(this.#run.history, Uint32Array.from(this.#tokens));
      this.#writeState(tokens[0], 0, end);
      return this.gpu.submit([...await this.#plan(end), ...tail], "forward (recompute)");
    }
    let submitted = Promise.resolve();
    for (let chunk = 0; chunk < tokens.length; chunk += this.#maxRows) {
      const ids = tokens.slice(chunk, chunk + this.#maxRows);
      const pos = startPos + chunk;
      this.gpu.write(this.#run.chunkTokens, Uint32Array.from(ids));
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
    // The last token is chosen, not processed: start + prompt + steps - 1 positions.
    if (startPos + prompt.length + steps - 1 > this.config.maxSeqLen) {
      throw new RangeError(
        `start (${startPos}) + prompt (${prompt.length}) + steps (${steps}) - 1 exceed maxSeqLen ${this.config.maxSeqLen}`,
      );
    }
    const choose = await this.#choose(temperature, seed);
    this.gpu.write(this.#fault, Uint32Array.of(NO_FAULT));
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
        this.#run.history,
        ready - tokens.length,
        end + tokens.length,
      );
      const [fault] = await this.gpu.readUint32(this.#fault, 1);
      if (fault !== NO_FAULT) {
        // Tokens chosen after the fault came from garbage: keep those before it.
        const good = Math.max(0, fault + 1 - end - tokens.length);
        if (good > 0) onTokens?.(Array.from(ids.subarray(0, good)));
        throw nonFiniteLogitsError(fault);
      }
      tokens.push(...ids);
      onTokens?.(Array.from(ids));
    }
    const decodeMs = performance.now() - decodeStart;
    this.#tokens.push(...tokens);
    this.#processed = end + steps - 1; // the last token is chosen, not yet processed
    return { tokens, prefillMs, decodeMs };
  }

  /**
   * Dispatches one decoded token records: the forward pass over one row and the token choice
   * (finite check, argmax, position bookkeeping).
   */
  async dispatchesPerToken(): Promise<number> {
    return (await this.#plan(1)).length + (await this.#choose(0, 0)).length;
  }

  /** Frees the GPU buffers. */
  destroy(): void {
    destroyWeights(this.#weights);
    for (const layer of this.#fused ?? []) destroyFusedLayer(layer);
    destroyRunState(this.#run);
    this.#ropeTable.destroy();
    this.#fault.destroy();
    for (const kernel of this.#attentionKernels) kernel.destroy();
  }
}

/** Options of {@linkcode GpuDecoder.create}. */
export interface GpuDecoderOptions extends DecoderOptions {
  /**
   * Which kernel variants to run: a tuning from `deno task tune` (its object or the file's
   * text). Without one, the defaults of the adapter's class (see `gpu/tuning.ts`).
   */
  tuning?: Tuning | string;
  /** Prompt tokens processed per forward pass when prefilling with a KV cache (default 64). */
  maxPrefillRows?: number;
  /** Split weight matrices into blocks of at most this many bytes (default: the device limit). */
  maxBindingBytes?: number;
}
