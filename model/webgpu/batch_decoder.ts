/**
 * Batched decoding on WebGPU: many sequences advance in one step, the projections one
 * `(rows, dim)` matmul per weight (each weight read once per step), attention per row against
 * its sequence's keys and values in a shared pool under any KV layout (contiguous, paged,
 * sliding ring). The CPU keeps the block tables and uploads, per step, the rows' tokens,
 * positions, write slots and table offsets; the dispatches depend only on the row count.
 *
 * @module
 */
import type { BatchDecoder, BatchRow } from "../batch/batch_decoder.ts";
import { BatchSequences, primeRows } from "../batch/sequences.ts";
import { headDim, type LlamaConfig } from "../config.ts";
import { type KvLayout, KvPool, type KvStoreOptions } from "../batch/kv_store.ts";
import { checkWeights, type LlamaWeights } from "../weights.ts";
import {
  destroyWeights,
  type GpuWeightMatrix,
  type GpuWeights,
  projectDispatches,
  uploadWeights,
} from "./_weights.ts";
import { type Activations, createActivations } from "./_run_state.ts";
import { addKernel } from "../../gpu/add.ts";
import { batchAttentionKernel } from "../../gpu/attention/batch.ts";
import { BATCH_ROW_WORDS, type BatchRowEntry, batchRowWords } from "../../gpu/batch_rows.ts";
import { kvScatterKernel } from "../../gpu/kv_cache.ts";
import { batchRopeKernel } from "../../gpu/rope.ts";
import type { Dispatch, Gpu } from "../../gpu/device.ts";
import { embeddingDispatches, embeddingKernel } from "../../gpu/embedding.ts";
import { rmsNormKernel } from "../../gpu/norm.ts";
import { siluMulKernel } from "../../gpu/swiglu.ts";
import { ropeTable } from "../../reference/rope.ts";

/** Options of {@linkcode GpuBatchDecoder.create}. */
export interface GpuBatchDecoderOptions extends KvStoreOptions {
  /** Split weight matrices into blocks of at most this many bytes (default: the device limit). */
  maxBindingBytes?: number;
}

/** What the CPU uploads each step. */
interface StepInputs {
  /** `(rows)` u32: token ids. */
  tokens: GPUBuffer;
  /** `(rows, 4)` u32: position, write slot, block-table offset, first visible position. */
  rows: GPUBuffer;
  /** u32: the block tables of the step's sequences, concatenated. */
  tables: GPUBuffer;
  /** `(sequences)` u32: the row index of each sequence's last row. */
  lastRows: GPUBuffer;
}

/**
 * LLaMA over many sequences at once on WebGPU.
 *
 * @example
 * ```ts ignore
 * const decoder = await GpuBatchDecoder.create(gpu, config, weights, { layout: "paged", maxSequences: 8 });
 * const [a, b] = await decoder.step([{ seq: 0, token: 1, pos: 0 }, { seq: 1, token: 1, pos: 0 }]);
 * ```
 */
export class GpuBatchDecoder implements BatchDecoder {
  /** The model's configuration. */
  readonly config: LlamaConfig;
  /** The device. */
  readonly gpu: Gpu;
  /** The KV cache's bookkeeping: blocks per sequence, where each position lives. */
  readonly pool: KvPool;
  readonly #sequences: BatchSequences;
  readonly #weights: GpuWeights;
  /** Per layer: keys and values of every sequence, `(pool.rows, nKvHeads·headDim)`. */
  readonly #pools: { keys: GPUBuffer; values: GPUBuffer }[];
  /** The step's activations (`_run_state.ts`), `maxRows` rows, logits of as many. */
  readonly #act: Activations;
  readonly #inputs: StepInputs;
  readonly #ropeTable: GPUBuffer;
  readonly #plans = new Map<string, Promise<Dispatch[]>>();

  private constructor(
    gpu: Gpu,
    config: LlamaConfig,
    weights: LlamaWeights,
    options: GpuBatchDecoderOptions,
  ) {
    this.gpu = gpu;
    this.config = config;
    this.pool = new KvPool(config, options);
    this.#sequences = new BatchSequences(config, this.pool);
    const { maxSeqLen, nLayers } = config;
    const kvDim = config.nKvHeads * headDim(config);
    const poolBytes = this.pool.rows * kvDim * 4;
    const limit = gpu.limits.maxStorageBufferBindingSize;
    if (poolBytes > limit) {
      throw new RangeError(
        `KV cache (${this.pool.shape.layout}): each layer's key pool is bound whole: expected <= ${limit} bytes (maxStorageBufferBindingSize), got ${poolBytes}; use fewer sequences or blocks`,
      );
    }
    // The pools first: a failed allocation leaks no uploaded weights.
    this.#pools = Array.from({ length: nLayers }, (_, l) => ({
      keys: gpu.createBuffer(poolBytes, `layers[${l}].keyPool`),
      values: gpu.createBuffer(poolBytes, `layers[${l}].valuePool`),
    }));
    const rows = this.pool.shape.maxRows;
    const floats = (n: number, label: string) => gpu.createBuffer(n * 4, label);
    this.#act = createActivations(gpu, config, rows, rows);
    const blocksPerSequence = Math.ceil(maxSeqLen / this.pool.shape.blockSize);
    this.#inputs = {
      tokens: floats(rows, "tokens"),
      rows: floats(rows * BATCH_ROW_WORDS, "rows"),
      tables: floats(rows * blocksPerSequence, "blockTables"),
      lastRows: floats(rows, "lastRows"),
    };
    this.#ropeTable = gpu.upload(
      ropeTable(headDim(config), maxSeqLen, config.ropeTheta, config.ropeScaling?.factor),
      "ropeTable",
    );
    this.#weights = uploadWeights(gpu, config, weights, options.maxBindingBytes);
  }

  /** Validates and uploads the weights, allocates the KV pools and activations. */
  static async create(
    gpu: Gpu,
    config: LlamaConfig,
    weights: LlamaWeights,
    options: GpuBatchDecoderOptions = {},
  ): Promise<GpuBatchDecoder> {
    checkWeights(config, weights);
    const decoder = new GpuBatchDecoder(gpu, config, weights, options);
    await decoder.#plan(1, 1); // compiles the one-row pipelines up front
    return decoder;
  }

  /** The KV-cache layout. */
  get layout(): KvLayout {
    return this.pool.shape.layout;
  }

  /** Rows one step may hold. */
  get maxRows(): number {
    return this.pool.shape.maxRows;
  }

  /** Sequences with cached positions. */
  get sequences(): number[] {
    return this.#sequences.ids;
  }

  /** Positions sequence `seq` has processed (0 if unknown). */
  processed(seq: number): number {
    return this.#sequences.processed(seq);
  }

  /** Bytes of the KV pools (every layer, used or not). */
  get kvReservedBytes(): number {
    return this.pool.reservedBytes;
  }

  /** Bytes of KV cache the live sequences' positions need. */
  get kvUsedBytes(): number {
    return this.pool.usedBytes;
  }

  /** Reserves cache for whole sequences, all or nothing (see {@linkcode BatchDecoder}). */
  reserve(lengths: ReadonlyMap<number, number>): void {
    this.pool.reserve(lengths);
  }

  /**
   * Runs one step and returns each sequence's next-token logits after its last row (see
   * {@linkcode BatchDecoder}); every row is checked, and the cache reserved, before anything
   * runs, and positions count as processed only once the step has succeeded.
   */
  async step(rows: readonly BatchRow[]): Promise<Float32Array[]> {
    const plan = this.#sequences.begin(rows);
    const { lastRows } = plan;
    this.#upload(rows, lastRows);
    await this.gpu.submit(await this.#plan(rows.length, lastRows.length), "batch step");
    const { vocabSize } = this.config;
    const logits = await this.gpu.readFloat32(this.#act.logits, lastRows.length * vocabSize);
    this.#sequences.commit(plan);
    return lastRows.map((_, i) => logits.slice(i * vocabSize, (i + 1) * vocabSize));
  }

  /** The step's tokens, row entries, block tables and last-row indices, to the GPU. */
  #upload(rows: readonly BatchRow[], lastRows: number[]): void {
    const entries: BatchRowEntry[] = [];
    const tables: number[] = [];
    const tableOffset = new Map<number, number>();
    for (const { seq, pos } of rows) {
      if (!tableOffset.has(seq)) {
        tableOffset.set(seq, tables.length);
        tables.push(...this.pool.blockTable(seq));
      }
      const table = tableOffset.get(seq)!;
      entries.push({ pos, slot: this.pool.slot(seq, pos), table, start: this.pool.start(pos) });
    }
    const gpu = this.gpu;
    gpu.write(this.#inputs.tokens, Uint32Array.from(rows, (r) => r.token));
    gpu.write(this.#inputs.rows, batchRowWords(entries));
    gpu.write(this.#inputs.tables, Uint32Array.from(tables));
    gpu.write(this.#inputs.lastRows, Uint32Array.from(lastRows));
  }

  /** Caches `length` positions of new sequence `seq` with seeded random keys and values. */
  prime(seq: number, length: number, seed = 0): void {
    this.#sequences.prime(seq, length);
    const { ring, blockSize } = this.pool.shape;
    const rows = ring ? Math.min(length, blockSize) : length;
    const kvDim = this.config.nKvHeads * headDim(this.config);
    const table = this.pool.blockTable(seq);
    // Position p holds filler row p, wherever the layout puts it (a ring: row p % its length).
    const arrange = (filler: Float32Array) => {
      if (!ring) return filler;
      const out = new Float32Array(rows * kvDim);
      for (let p = length - rows; p < length; p++) {
        out.set(filler.subarray(p * kvDim, (p + 1) * kvDim), (p % blockSize) * kvDim);
      }
      return out;
    };
    this.#pools.forEach((pool, l) => {
      const keys = arrange(primeRows(length, kvDim, seed + 2 * l));
      const values = arrange(primeRows(length, kvDim, seed + 2 * l + 1));
      // Block by block: each block's rows are contiguous in the pool.
      for (let first = 0; first < rows; first += blockSize) {
        const count = Math.min(blockSize, rows - first);
        const offset = table[first / blockSize] * blockSize * kvDim * 4;
        const span = [first * kvDim, (first + count) * kvDim] as const;
        this.gpu.write(pool.keys, keys.subarray(...span), offset);
        this.gpu.write(pool.values, values.subarray(...span), offset);
      }
    });
  }

  /** Ends sequence `seq`, returning its blocks to the pool. */
  release(seq: number): void {
    this.#sequences.release(seq);
  }

  #plan(rows: number, sequences: number): Promise<Dispatch[]> {
    const key = `${rows}/${sequences}`;
    let plan = this.#plans.get(key);
    if (!plan) {
      plan = this.#record(rows, sequences);
      this.#plans.set(key, plan);
      plan.catch(() => this.#plans.delete(key)); // a failed compile is retried, not cached
    }
    return plan;
  }

  /** One step over `rows` rows of `sequences` sequences, as llama2.c's forward reads. */
  async #record(rows: number, sequences: number): Promise<Dispatch[]> {
    const gpu = this.gpu;
    const { dim, hiddenDim, nHeads, nKvHeads, maxSeqLen, normEps: eps } = this.config;
    const layout = this.config.ropeLayout;
    const hd = headDim(this.config);
    const { x, xb, xb2, q, k, v, att, hb, hb2, logits } = this.#act;
    const { tokens, rows: entries, tables, lastRows } = this.#inputs;
    const table = this.#ropeTable;
    const [norm, ropeQ, ropeK, write, attend, residual, gate, gather, finalNorm] = await Promise
      .all([
        rmsNormKernel(gpu, { rows, dim, eps }),
        batchRopeKernel(gpu, { rows, nHeads, headDim: hd, maxSeqLen, layout }),
        batchRopeKernel(gpu, { rows, nHeads: nKvHeads, headDim: hd, maxSeqLen, layout }),
        kvScatterKernel(gpu, { rows, kvDim: nKvHeads * hd }),
        batchAttentionKernel(gpu, {
          rows,
          nHeads,
          nKvHeads,
          headDim: hd,
          blockSize: this.pool.shape.blockSize,
          ring: this.pool.shape.ring,
        }),
        addKernel(gpu, rows * dim),
        siluMulKernel(gpu, rows * hiddenDim),
        // Each sequence's last row, gathered for the classifier: a lookup into x by row index.
        embeddingKernel(gpu, { rows: sequences, dim, vocabSize: this.pool.shape.maxRows }),
        rmsNormKernel(gpu, { rows: sequences, dim, eps }),
      ]);
    const project = (w: GpuWeightMatrix, input: GPUBuffer, out: GPUBuffer, n = rows) =>
      projectDispatches(gpu, w, { rows: n, x: input, out });
    const steps: Dispatch[] = await embeddingDispatches(gpu, this.#weights.tokenEmbedding, {
      rows,
      tokens,
      out: x,
    });
    for (const [l, layer] of this.#weights.layers.entries()) {
      const pool = this.#pools[l];
      // attention: x += wo · attention(rope(wq·xb), the row's sequence in the pool)
      steps.push(...norm.bind({ x, weight: layer.attentionNorm, out: xb }));
      steps.push(
        ...await project(layer.wq, xb, q),
        ...await project(layer.wk, xb, k),
        ...await project(layer.wv, xb, v),
      );
      steps.push(...ropeQ.bind({ x: q, table, rows: entries }));
      steps.push(...ropeK.bind({ x: k, table, rows: entries }));
      steps.push(
        ...write.bind({ k, v, keyPool: pool.keys, valuePool: pool.values, rows: entries }),
      );
      steps.push(
        ...attend.bind({
          q,
          keyPool: pool.keys,
          valuePool: pool.values,
          out: att,
          rows: entries,
          tables,
        }),
      );
      steps.push(...await project(layer.wo, att, xb2), ...residual.bind({ x, delta: xb2 }));
      // feed-forward: x += w2 · (silu(w1·xb) ⊙ w3·xb)
      steps.push(...norm.bind({ x, weight: layer.ffnNorm, out: xb }));
      steps.push(...await project(layer.w1, xb, hb), ...await project(layer.w3, xb, hb2));
      steps.push(...gate.bind({ gate: hb, up: hb2 }));
      steps.push(...await project(layer.w2, hb, xb2), ...residual.bind({ x, delta: xb2 }));
    }
    // classifier on each sequence's last row
    steps.push(...gather.bind({ table: x, tokens: lastRows, out: xb2 }));
    steps.push(...finalNorm.bind({ x: xb2, weight: this.#weights.finalNorm, out: xb }));
    steps.push(...await project(this.#weights.classifier, xb, logits, sequences));
    return steps;
  }

  /** Frees the GPU buffers. */
  destroy(): void {
    destroyWeights(this.#weights);
    for (const pool of this.#pools) {
      pool.keys.destroy();
      pool.values.destroy();
    }
    for (
      const b of [...Object.values(this.#act), ...Object.values(this.#inputs), this.#ropeTable]
    ) {
      b.destroy();
    }
  }
}
