/**
 * The KV cache of many sequences under one of three layouts, as both batched decoders hold it:
 * - `contiguous`: `maxSeqLen` positions reserved per sequence;
 * - `paged`: a shared pool of blocks, taken as sequences grow and freed when they end;
 * - `sliding`: a ring per sequence, for models with a sliding window.
 *
 * Every layout is one pool of blocks per layer with a block table per sequence
 * ({@linkcode KvPool}, shared by the CPU and WebGPU decoders): contiguous is one block of
 * `maxSeqLen` positions a sequence, sliding one ring-shaped block. Every layout gives the same
 * attention: what a token sees is the model's (its sliding window, if any), never the layout's.
 *
 * @module
 */
import type { AttentionShape } from "../../reference/attention.ts";
import { windowStart } from "../../reference/attention.ts";
import { kvCacheBytesPerToken } from "../../reference/kv_cache.ts";
import { BlockAllocator, pagedAttention } from "../../reference/paged_kv_cache.ts";
import { slidingWindowAttention } from "../../reference/sliding_kv_cache.ts";
import { checkLength } from "../../reference/checks.ts";
import { headDim, type LlamaConfig } from "../config.ts";

/** How keys and values of many sequences are laid out in memory. */
export type KvLayout = "contiguous" | "paged" | "sliding";

/** The layouts, for flags and benchmarks. */
export const KV_LAYOUTS: readonly KvLayout[] = ["contiguous", "paged", "sliding"];

/** Options of a batched decoder's KV cache. */
export interface KvStoreOptions {
  /** The layout (default `"contiguous"`). */
  layout?: KvLayout;
  /** Sequences live at once: contiguous and sliding reserve this many (default 8). */
  maxSequences?: number;
  /** Positions per block of the paged layout (default 16). */
  blockSize?: number;
  /**
   * Blocks in the paged pool (default: `maxSequences` sequences of `maxSeqLen`, the contiguous
   * layout's memory; give fewer to cap memory).
   */
  numBlocks?: number;
  /**
   * Rows one step may hold (default 64). A ring holds `window + maxRows − 1` positions, so that
   * a step writing several positions of one sequence never overwrites one a row still reads.
   */
  maxRows?: number;
}

/** A resolved layout: the pool's blocks and how positions map to rows. */
export interface KvPoolShape {
  /** The layout. */
  layout: KvLayout;
  /** Positions per block (contiguous: `maxSeqLen`; sliding: the ring's length). */
  blockSize: number;
  /** Blocks in each layer's pool. */
  numBlocks: number;
  /** Whether each sequence's block is a ring (position `p` at row `p % blockSize`). */
  ring: boolean;
  /** Positions a token sees (the model's sliding window; `Infinity` without one). */
  window: number;
  /** Rows one step may hold. */
  maxRows: number;
}

/**
 * The pool shape of a layout for `config`, with its defaults; throws naming the option that
 * cannot work.
 *
 * @example
 * ```ts
 * import { makeConfig } from "../config.ts";
 * import { kvPoolShape } from "./kv_store.ts";
 * const config = makeConfig({ dim: 8, hiddenDim: 16, nLayers: 1, nHeads: 2, nKvHeads: 1, vocabSize: 4, maxSeqLen: 256, slidingWindow: 32 });
 * const ring = kvPoolShape(config, { layout: "sliding", maxRows: 8 });
 * if (ring.blockSize !== 39 || !ring.ring) throw new Error("wrong");
 * ```
 */
export function kvPoolShape(config: LlamaConfig, options: KvStoreOptions = {}): KvPoolShape {
  const layout = options.layout ?? "contiguous";
  const maxSequences = options.maxSequences ?? 8;
  const maxRows = options.maxRows ?? 64;
  for (const [field, value] of Object.entries({ maxSequences, maxRows })) {
    if (!Number.isInteger(value) || value < 1) {
      throw new RangeError(`KV cache ${field}: expected an integer >= 1, got ${value}`);
    }
  }
  const window = config.slidingWindow ?? Infinity;
  const { maxSeqLen } = config;
  switch (layout) {
    case "contiguous":
      return {
        layout,
        blockSize: maxSeqLen,
        numBlocks: maxSequences,
        ring: false,
        window,
        maxRows,
      };
    case "paged": {
      const blockSize = options.blockSize ?? 16;
      const numBlocks = options.numBlocks ?? maxSequences * Math.ceil(maxSeqLen / blockSize);
      return { layout, blockSize, numBlocks, ring: false, window, maxRows };
    }
    case "sliding": {
      if (config.slidingWindow === undefined) {
        throw new RangeError(
          "KV layout sliding: expected a model with slidingWindow set, got none (pass a window)",
        );
      }
      const blockSize = Math.min(config.slidingWindow + maxRows - 1, maxSeqLen);
      return { layout, blockSize, numBlocks: maxSequences, ring: true, window, maxRows };
    }
    default:
      throw new RangeError(
        `KV layout: expected one of ${KV_LAYOUTS.join(", ")}, got ${String(layout)}`,
      );
  }
}

/**
 * Bytes a batched KV cache of `config` with `options` reserves (its pools, every block, used or
 * not; keys and values of every layer in f32), without building it.
 *
 * @example
 * ```ts
 * import { makeConfig } from "../config.ts";
 * import { kvPoolBytes } from "./kv_store.ts";
 * const config = makeConfig({ dim: 8, hiddenDim: 16, nLayers: 2, nHeads: 2, nKvHeads: 1, vocabSize: 4, maxSeqLen: 16 });
 * // 2 sequences × 16 positions × 2 layers × (K + V) × kvDim 4 × 4 bytes
 * if (kvPoolBytes(config, { maxSequences: 2 }) !== 2 * 16 * 2 * 2 * 4 * 4) throw new Error("wrong");
 * ```
 */
export function kvPoolBytes(config: LlamaConfig, options: KvStoreOptions = {}): number {
  const { numBlocks, blockSize } = kvPoolShape(config, options);
  return numBlocks * blockSize * kvCacheBytesPerToken({ ...config, headDim: headDim(config) });
}

/**
 * The bookkeeping of a batched decoder's KV cache, apart from its storage: which blocks each
 * sequence holds, where a position lives, what a token sees, and the memory reserved and used.
 *
 * @example
 * ```ts
 * import { makeConfig } from "../config.ts";
 * import { KvPool } from "./kv_store.ts";
 * const config = makeConfig({ dim: 8, hiddenDim: 16, nLayers: 1, nHeads: 2, nKvHeads: 1, vocabSize: 4, maxSeqLen: 64 });
 * const pool = new KvPool(config, { layout: "paged", blockSize: 16, numBlocks: 4 });
 * pool.reserve(new Map([[0, 20], [1, 5]])); // three blocks
 * if (pool.slot(0, 17) !== 1 * 16 + 1 || pool.usedBytes !== 25 * 2 * 4 * 4) throw new Error("wrong");
 * ```
 */
export class KvPool {
  /** The resolved layout. */
  readonly shape: Readonly<KvPoolShape>;
  /** Bytes one cached position takes (keys and values, every layer, f32). */
  readonly bytesPerPosition: number;
  readonly #blocks: BlockAllocator;

  /** An empty pool for `config`. */
  constructor(config: LlamaConfig, options: KvStoreOptions = {}) {
    this.shape = kvPoolShape(config, options);
    this.bytesPerPosition = kvCacheBytesPerToken({ ...config, headDim: headDim(config) });
    const { blockSize, numBlocks, layout } = this.shape;
    this.#blocks = new BlockAllocator(blockSize, numBlocks, `KV cache (${layout})`);
  }

  /** Rows of each layer's pool: `numBlocks · blockSize`. */
  get rows(): number {
    return this.shape.numBlocks * this.shape.blockSize;
  }

  /**
   * Makes positions `0..length-1` of each sequence writable, all or nothing: throws, taking
   * nothing, when the pool cannot hold them all.
   */
  reserve(lengths: ReadonlyMap<number, number>): void {
    const { ring, blockSize } = this.shape;
    // A ring never needs more than its one block.
    const rows = ring
      ? new Map([...lengths].map(([seq, length]) => [seq, Math.min(length, blockSize)]))
      : lengths;
    this.#blocks.reserveAll(rows);
  }

  /** Whether sequence `seq` holds memory. */
  has(seq: number): boolean {
    return this.#blocks.has(seq);
  }

  /** The live sequence ids. */
  get sequences(): number[] {
    return this.#blocks.sequences;
  }

  /** The pool row of position `pos` of sequence `seq`. */
  slot(seq: number, pos: number): number {
    const { ring, blockSize } = this.shape;
    if (!ring) return this.#blocks.row(seq, pos);
    this.#blocks.row(seq, 0); // names an unknown sequence
    return this.#blocks.blockTable(seq)[0] * blockSize + (pos % blockSize);
  }

  /** The block table of sequence `seq` (a ring: its one block). */
  blockTable(seq: number): Int32Array {
    return this.#blocks.blockTable(seq);
  }

  /** The first position a token at `pos` sees. */
  start(pos: number): number {
    return windowStart(pos, this.shape.window);
  }

  /** Frees sequence `seq`'s blocks. */
  release(seq: number): void {
    this.#blocks.release(seq);
  }

  /** Bytes of the pools: every block, used or not. */
  get reservedBytes(): number {
    return this.rows * this.bytesPerPosition; // = kvPoolBytes(config, options)
  }

  /** Bytes of the positions live sequences hold (a ring: at most its length). */
  get usedBytes(): number {
    return this.#blocks.reservedPositions * this.bytesPerPosition;
  }
}

/** A KV cache of many sequences on the CPU: reserve, write, attend, release. */
export interface KvStore {
  /** The layout. */
  readonly layout: KvLayout;
  /** The bookkeeping. */
  readonly pool: KvPool;
  /** Stores position `pos`'s key and value (`nKvHeads·headDim` each) of `seq` in `layer`. */
  write(layer: number, seq: number, pos: number, key: Float32Array, value: Float32Array): void;
  /** Attention of query `q` at `pos` of `seq` over the positions the model lets it see. */
  attend(layer: number, seq: number, q: Float32Array, pos: number): Float32Array;
}

/**
 * A CPU {@linkcode KvStore} for `config`: per-layer pools of `Float32Array`s addressed through
 * a {@linkcode KvPool}; attention by the references `pagedAttention` and
 * `slidingWindowAttention`.
 *
 * @example
 * ```ts
 * import { makeConfig } from "../config.ts";
 * import { createKvStore } from "./kv_store.ts";
 * const config = makeConfig({ dim: 8, hiddenDim: 16, nLayers: 1, nHeads: 2, nKvHeads: 1, vocabSize: 4, maxSeqLen: 64 });
 * const store = createKvStore(config, { layout: "paged", blockSize: 16, numBlocks: 8 });
 * store.pool.reserve(new Map([[0, 20]]));
 * if (store.pool.usedBytes !== 20 * 2 * 4 * 4) throw new Error("wrong");
 * ```
 */
export function createKvStore(config: LlamaConfig, options: KvStoreOptions = {}): KvStore {
  const pool = new KvPool(config, options);
  const shape: AttentionShape = {
    nHeads: config.nHeads,
    nKvHeads: config.nKvHeads,
    headDim: headDim(config),
  };
  const kvDim = shape.nKvHeads * shape.headDim;
  const perLayer = () =>
    Array.from({ length: config.nLayers }, () => new Float32Array(pool.rows * kvDim));
  const keys = perLayer(), values = perLayer();
  const checkLayer = (layer: number) => {
    if (!Number.isInteger(layer) || layer < 0 || layer >= config.nLayers) {
      throw new RangeError(
        `KV cache layer: expected an integer in [0, ${config.nLayers}), got ${layer}`,
      );
    }
  };
  const { blockSize, ring, window } = pool.shape;
  return {
    layout: pool.shape.layout,
    pool,
    write(layer, seq, pos, key, value) {
      checkLayer(layer);
      checkLength("KV cache key (nKvHeads*headDim)", key, kvDim);
      checkLength("KV cache value (nKvHeads*headDim)", value, kvDim);
      const row = pool.slot(seq, pos);
      keys[layer].set(key, row * kvDim);
      values[layer].set(value, row * kvDim);
    },
    attend(layer, seq, q, pos) {
      checkLayer(layer);
      pool.slot(seq, pos); // names a position past the reservation
      if (ring) {
        const first = pool.blockTable(seq)[0] * blockSize * kvDim;
        const ringOf = (pool: Float32Array) => pool.subarray(first, first + blockSize * kvDim);
        return slidingWindowAttention(
          q,
          ringOf(keys[layer]),
          ringOf(values[layer]),
          pos,
          window,
          shape,
          blockSize,
        );
      }
      const table = pool.blockTable(seq);
      return pagedAttention(
        q,
        keys[layer],
        values[layer],
        table,
        blockSize,
        pos,
        shape,
        pool.start(pos),
      );
    },
  };
}
