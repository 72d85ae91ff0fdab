/**
 * Batched decoding on WebGPU: many sequences advance in one step, the projections one
 * `(rows, dim)` matmul per weight (each weight read once per step), attention per row against
 * its sequence's keys and values in a shared pool under any KV layout (contiguous, paged,
 * sliding ring). The CPU keeps the block tables and uploads, per step, the rows' tokens,
 * positions, write slots and table offsets; the dispatches depend only on the row count.
 *
 * @module
 */
import {
  type BatchDecoder,
  type BatchRow,
  checkBatchRows,
  checkPrime,
  primeRows,
} from "./batch_decoder.ts";
import { headDim, type LlamaConfig } from "./config.ts";
import type { KvLayout, KvStoreOptions } from "./kv_store.ts";
import { checkWeights, type LlamaWeights } from "./weights.ts";
import { destroyWeights, type GpuWeights, uploadWeights } from "./_gpu_weights.ts";
import { type Activations, createActivations } from "./_gpu_run_state.ts";
import { addKernel } from "../gpu/add.ts";
import { batchAttentionKernel } from "../gpu/batch_attention.ts";
import { BATCH_ROW_WORDS, type BatchRowEntry, batchRowWords } from "../gpu/batch_rows.ts";
import { kvScatterKernel } from "../gpu/kv_cache.ts";
import { batchRopeKernel } from "../gpu/rope.ts";
import type { Dispatch, Gpu } from "../gpu/device.ts";
import { embeddingDispatches, embeddingKernel } from "../gpu/embedding.ts";
import { type GpuMatrix, matmulDispatches } from "../gpu/matmul.ts";
import { rmsNormKernel } from "../gpu/norm.ts";
import { siluMulKernel } from "../gpu/swiglu.ts";
import { kvCacheBytesPerToken } from "../reference/kv_cache.ts";
import { BlockAllocator } from "../reference/paged_kv_cache.ts";
import { ropeTable } from "../reference/rope.ts";
import { windowStart } from "../reference/sliding_kv_cache.ts";

/** Options of {@linkcode GpuBatchDecoder.create}. */
export interface GpuBatchDecoderOptions extends KvStoreOptions {
  /** Rows one step may hold: decode rows plus prompt rows (default 64). */
  maxRows?: number;
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
  /** The KV-cache layout. */
  readonly layout: KvLayout;
  /** Rows one step may hold. */
  readonly maxRows: number;
  readonly #weights: GpuWeights;
  /** Which pool blocks each sequence holds (contiguous and ring: one block a sequence). */
  readonly #blocks: BlockAllocator;
  readonly #ring: boolean;
  readonly #window: number;
  /** Per layer: keys and values of every sequence, `(poolRows, nKvHeads·headDim)`. */
  readonly #pools: { keys: GPUBuffer; values: GPUBuffer }[];
  /** The step's activations (`_gpu_run_state.ts`), `maxRows` rows, logits of as many. */
  readonly #act: Activations;
  readonly #inputs: StepInputs;
  readonly #ropeTable: GPUBuffer;
  readonly #plans = new Map<string, Promise<Dispatch[]>>();
  readonly #processed = new Map<number, number>();

  private constructor(
    gpu: Gpu,
    config: LlamaConfig,
    weights: LlamaWeights,
    options: GpuBatchDecoderOptions,
  ) {
    this.gpu = gpu;
    this.config = config;
    this.layout = options.layout ?? "contiguous";
    const { maxSeqLen, nLayers } = config;
    const hd = headDim(config);
    const kvDim = config.nKvHeads * hd;
    const maxSequences = options.maxSequences ?? 1;
    this.#window = config.slidingWindow ?? Infinity;
    this.#ring = this.layout === "sliding";
    if (this.layout === "sliding") {
      if (config.slidingWindow === undefined) {
        throw new RangeError(
          "KV layout sliding: expected a model with slidingWindow set, got none (pass a window)",
        );
      }
      this.#blocks = new BlockAllocator(Math.min(config.slidingWindow, maxSeqLen), maxSequences);
    } else if (this.layout === "paged") {
      const blockSize = options.blockSize ?? 16;
      const numBlocks = options.numBlocks ?? maxSequences * Math.ceil(maxSeqLen / blockSize);
      this.#blocks = new BlockAllocator(blockSize, numBlocks);
    } else if (this.layout === "contiguous") {
      this.#blocks = new BlockAllocator(maxSeqLen, maxSequences);
    } else {
      throw new RangeError(
        `KV layout: expected one of contiguous, paged, sliding, got ${String(this.layout)}`,
      );
    }
    this.maxRows = options.maxRows ?? 64;
    if (!Number.isInteger(this.maxRows) || this.maxRows < 1) {
      throw new RangeError(`maxRows: expected an integer >= 1, got ${this.maxRows}`);
    }
    const rows = this.maxRows;
    this.#weights = uploadWeights(gpu, config, weights, options.maxBindingBytes);
    const poolFloats = this.#blocks.numBlocks * this.#blocks.blockSize * kvDim;
    this.#pools = Array.from({ length: nLayers }, (_, l) => ({
      keys: gpu.createBuffer(poolFloats * 4, `layers[${l}].keyPool`),
      values: gpu.createBuffer(poolFloats * 4, `layers[${l}].valuePool`),
    }));
    const floats = (n: number, label: string) => gpu.createBuffer(n * 4, label);
    this.#act = createActivations(gpu, config, rows, rows);
    const blocksPerSequence = Math.ceil(maxSeqLen / this.#blocks.blockSize);
    this.#inputs = {
      tokens: floats(rows, "tokens"),
      rows: floats(rows * BATCH_ROW_WORDS, "rows"),
      tables: floats(rows * blocksPerSequence, "blockTables"),
      lastRows: floats(rows, "lastRows"),
    };
    this.#ropeTable = gpu.upload(ropeTable(hd, maxSeqLen, config.ropeTheta), "ropeTable");
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

  /** Sequences with cached positions. */
  get sequences(): number[] {
    return [...this.#processed.keys()];
  }

  /** Positions sequence `seq` has processed (0 if unknown). */
  processed(seq: number): number {
    return this.#processed.get(seq) ?? 0;
  }

  /** Bytes of the KV pools (every layer, used or not). */
  get kvReservedBytes(): number {
    const positions = this.#blocks.numBlocks * this.#blocks.blockSize;
    return positions * this.#bytesPerPosition;
  }

  /** Bytes of KV cache the live sequences' positions need. */
  get kvUsedBytes(): number {
    let positions = 0;
    for (const seq of this.#blocks.sequences) positions += this.#blocks.length(seq);
    return positions * this.#bytesPerPosition;
  }

  get #bytesPerPosition(): number {
    return kvCacheBytesPerToken({ ...this.config, headDim: headDim(this.config) });
  }

  /**
   * Runs one step and returns each sequence's next-token logits after its last row (see
   * {@linkcode BatchDecoder}); every row is checked, and every block reserved, before anything
   * runs.
   */
  async step(rows: readonly BatchRow[]): Promise<Float32Array[]> {
    const lastRows = checkBatchRows(this.config, rows, (seq) => this.processed(seq));
    if (rows.length > this.maxRows) {
      throw new RangeError(
        `step: expected at most maxRows ${this.maxRows} rows, got ${rows.length}`,
      );
    }
    // Reserve each sequence's new length (a ring never needs more than its window).
    const lengths = new Map<number, number>();
    for (const { seq, pos } of rows) lengths.set(seq, pos + 1);
    for (const [seq, length] of lengths) {
      this.#blocks.reserve(seq, this.#ring ? Math.min(length, this.#blocks.blockSize) : length);
    }
    for (const [seq, length] of lengths) this.#processed.set(seq, length);
    this.#upload(rows, lastRows);
    await this.gpu.submit(await this.#plan(rows.length, lastRows.length), "batch step");
    const { vocabSize } = this.config;
    const logits = await this.gpu.readFloat32(this.#act.logits, lastRows.length * vocabSize);
    return lastRows.map((_, i) => logits.slice(i * vocabSize, (i + 1) * vocabSize));
  }

  /** The step's tokens, row entries, block tables and last-row indices, to the GPU. */
  #upload(rows: readonly BatchRow[], lastRows: number[]): void {
    const entries: BatchRowEntry[] = [];
    const tables: number[] = [];
    const tableOffset = new Map<number, number>();
    rows.forEach(({ seq, pos }) => {
      if (!tableOffset.has(seq)) {
        tableOffset.set(seq, tables.length);
        tables.push(...this.#blocks.blockTable(seq));
      }
      const slot = this.#ring
        ? this.#blocks.blockTable(seq)[0] * this.#blocks.blockSize + pos % this.#blocks.blockSize
        : this.#blocks.row(seq, pos);
      entries.push({
        pos,
        slot,
        table: tableOffset.get(seq)!,
        start: windowStart(pos, this.#window),
      });
    });
    const gpu = this.gpu;
    gpu.write(this.#inputs.tokens, Uint32Array.from(rows, (r) => r.token));
    gpu.write(this.#inputs.rows, batchRowWords(entries));
    gpu.write(this.#inputs.tables, Uint32Array.from(tables));
    gpu.write(this.#inputs.lastRows, Uint32Array.from(lastRows));
  }

  /** Caches `length` positions of new sequence `seq` with seeded random keys and values. */
  prime(seq: number, length: number, seed = 0): void {
    checkPrime(this.config, seq, length, this.#processed.has(seq));
    const { blockSize } = this.#blocks;
    const rows = this.#ring ? Math.min(length, blockSize) : length;
    this.#blocks.reserve(seq, rows);
    const kvDim = this.config.nKvHeads * headDim(this.config);
    const table = this.#blocks.blockTable(seq);
    // Position p holds filler row p, wherever the layout puts it (a ring: row p % window).
    const arrange = (filler: Float32Array) => {
      if (!this.#ring) return filler;
      const ring = new Float32Array(rows * kvDim);
      for (let p = length - rows; p < length; p++) {
        ring.set(filler.subarray(p * kvDim, (p + 1) * kvDim), (p % blockSize) * kvDim);
      }
      return ring;
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
    this.#processed.set(seq, length);
  }

  /** Ends sequence `seq`, returning its blocks to the pool. */
  release(seq: number): void {
    if (!this.#processed.has(seq)) {
      throw new RangeError(`release: expected a live sequence id, got ${seq}`);
    }
    this.#blocks.release(seq);
    this.#processed.delete(seq);
  }

  #plan(rows: number, sequences: number): Promise<Dispatch[]> {
    const key = `${rows}/${sequences}`;
    let plan = this.#plans.get(key);
    if (!plan) {
      plan = this.#record(rows, sequences);
      this.#plans.set(key, plan);
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
          blockSize: this.#blocks.blockSize,
          ring: this.#ring,
        }),
        addKernel(gpu, rows * dim),
        siluMulKernel(gpu, rows * hiddenDim),
        // Each sequence's last row, gathered for the classifier: a lookup into x by row index.
        embeddingKernel(gpu, { rows: sequences, dim, vocabSize: this.maxRows }),
        rmsNormKernel(gpu, { rows: sequences, dim, eps }),
      ]);
    const project = (w: GpuMatrix, input: GPUBuffer, out: GPUBuffer, n = rows) =>
      matmulDispatches(gpu, w, { rows: n, x: input, out });
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
