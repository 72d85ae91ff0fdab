/**
 * The CPU decoder's KV cache for many sequences under one of three layouts: contiguous
 * (`maxSeqLen` positions reserved per sequence), paged (a shared pool of blocks) and sliding
 * (a ring of `window` positions per sequence). Every layout gives the same attention: what a
 * token sees is the model's (its sliding window, if it has one), never the layout's.
 *
 * @module
 */
import { type AttentionShape, decodeAttention } from "../reference/attention.ts";
import { KvCache, kvCacheBytesPerToken } from "../reference/kv_cache.ts";
import { pagedAttention, PagedKvCache } from "../reference/paged_kv_cache.ts";
import {
  SlidingKvCache,
  slidingWindowAttention,
  windowStart,
} from "../reference/sliding_kv_cache.ts";
import { headDim, type LlamaConfig } from "./config.ts";

/** How keys and values of many sequences are laid out in memory. */
export type KvLayout = "contiguous" | "paged" | "sliding";

/** The layouts, for flags and benchmarks. */
export const KV_LAYOUTS: readonly KvLayout[] = ["contiguous", "paged", "sliding"];

/** Options of {@linkcode createKvStore}. */
export interface KvStoreOptions {
  /** The layout (default `"contiguous"`). */
  layout?: KvLayout;
  /** Positions per block of the paged layout (default 16). */
  blockSize?: number;
  /**
   * Blocks in the paged pool (default: enough for `maxSequences` sequences of `maxSeqLen`,
   * the contiguous layout's reservation; give fewer to cap memory).
   */
  numBlocks?: number;
  /** Sequences the contiguous and paged defaults size for (default 1). */
  maxSequences?: number;
}

/** A KV cache of many sequences: reserve, write, attend, release. */
export interface KvStore {
  /** The layout. */
  readonly layout: KvLayout;
  /** Makes positions `0..length-1` of sequence `seq` writable (allocating as the layout needs). */
  reserve(seq: number, length: number): void;
  /** Stores position `pos`'s key and value (`nKvHeads·headDim` each) of `seq` in `layer`. */
  write(layer: number, seq: number, pos: number, key: Float32Array, value: Float32Array): void;
  /** Attention of query `q` at `pos` of `seq` over the positions the model lets it see. */
  attend(layer: number, seq: number, q: Float32Array, pos: number): Float32Array;
  /** Frees sequence `seq`'s memory. */
  release(seq: number): void;
  /** Bytes this store holds now (reserved pools, rings and per-sequence buffers). */
  readonly reservedBytes: number;
  /** Bytes of the positions live sequences have reserved. */
  readonly usedBytes: number;
}

/**
 * A {@linkcode KvStore} for `config` (its `slidingWindow`, if set, limits what every layout's
 * attention sees; the sliding layout needs it).
 *
 * @example
 * ```ts
 * import { makeConfig } from "./config.ts";
 * import { createKvStore } from "./kv_store.ts";
 * const config = makeConfig({ dim: 8, hiddenDim: 16, nLayers: 1, nHeads: 2, nKvHeads: 1, vocabSize: 4, maxSeqLen: 64 });
 * const store = createKvStore(config, { layout: "paged", blockSize: 16, numBlocks: 8 });
 * store.reserve(0, 20);
 * if (store.usedBytes !== 20 * 2 * 4 * 4) throw new Error("wrong");
 * ```
 */
export function createKvStore(config: LlamaConfig, options: KvStoreOptions = {}): KvStore {
  const layout = options.layout ?? "contiguous";
  switch (layout) {
    case "contiguous":
      return new ContiguousStore(config);
    case "paged":
      return new PagedStore(config, options);
    case "sliding":
      return new SlidingStore(config);
    default:
      throw new RangeError(
        `KV layout: expected one of ${KV_LAYOUTS.join(", ")}, got ${String(layout)}`,
      );
  }
}

function attentionShape(config: LlamaConfig): AttentionShape {
  return { nHeads: config.nHeads, nKvHeads: config.nKvHeads, headDim: headDim(config) };
}

function checkReserve(config: LlamaConfig, seq: number, length: number): void {
  if (!Number.isInteger(seq) || seq < 0) {
    throw new RangeError(`KV store sequence id: expected an integer >= 0, got ${seq}`);
  }
  if (!Number.isInteger(length) || length < 1 || length > config.maxSeqLen) {
    throw new RangeError(
      `KV store length of sequence ${seq}: expected an integer in [1, maxSeqLen ${config.maxSeqLen}], got ${length}`,
    );
  }
}

/** One `maxSeqLen` cache per sequence; a window, if any, masks the older positions. */
class ContiguousStore implements KvStore {
  readonly layout = "contiguous" as const;
  #caches = new Map<number, { cache: KvCache; length: number }>();
  #config: LlamaConfig;
  #shape: AttentionShape;

  constructor(config: LlamaConfig) {
    this.#config = config;
    this.#shape = attentionShape(config);
  }

  reserve(seq: number, length: number): void {
    checkReserve(this.#config, seq, length);
    const entry = this.#caches.get(seq) ??
      { cache: new KvCache({ ...this.#config, headDim: this.#shape.headDim }), length: 0 };
    entry.length = Math.max(entry.length, length);
    this.#caches.set(seq, entry);
  }

  write(layer: number, seq: number, pos: number, key: Float32Array, value: Float32Array): void {
    const entry = this.#entry(seq);
    checkWithin(seq, pos, entry.length);
    entry.cache.write(layer, pos, key, value);
  }

  attend(layer: number, seq: number, q: Float32Array, pos: number): Float32Array {
    const { cache, length } = this.#entry(seq);
    checkWithin(seq, pos, length);
    const kvDim = cache.kvDim;
    const start = windowStart(pos, this.#config.slidingWindow ?? Infinity);
    return decodeAttention(
      q,
      cache.keys[layer].subarray(start * kvDim),
      cache.values[layer].subarray(start * kvDim),
      pos - start,
      this.#shape,
    );
  }

  release(seq: number): void {
    this.#entry(seq);
    this.#caches.delete(seq);
  }

  get reservedBytes(): number {
    let bytes = 0;
    for (const { cache } of this.#caches.values()) bytes += cache.bytes;
    return bytes;
  }

  get usedBytes(): number {
    let positions = 0;
    for (const { length } of this.#caches.values()) positions += length;
    return positions * kvCacheBytesPerToken({ ...this.#config, headDim: this.#shape.headDim });
  }

  #entry(seq: number): { cache: KvCache; length: number } {
    const entry = this.#caches.get(seq);
    if (entry === undefined) {
      throw new RangeError(`KV store: expected a live sequence id, got ${seq}`);
    }
    return entry;
  }
}

/** A shared block pool; blocks are taken as sequences grow and returned when they end. */
class PagedStore implements KvStore {
  readonly layout = "paged" as const;
  readonly cache: PagedKvCache;
  #config: LlamaConfig;
  #shape: AttentionShape;

  constructor(config: LlamaConfig, options: KvStoreOptions) {
    this.#config = config;
    this.#shape = attentionShape(config);
    const blockSize = options.blockSize ?? 16;
    const numBlocks = options.numBlocks ??
      (options.maxSequences ?? 1) * Math.ceil(config.maxSeqLen / blockSize);
    this.cache = new PagedKvCache({
      ...config,
      headDim: this.#shape.headDim,
      blockSize,
      numBlocks,
    });
  }

  reserve(seq: number, length: number): void {
    checkReserve(this.#config, seq, length);
    this.cache.blocks.reserve(seq, length);
  }

  write(layer: number, seq: number, pos: number, key: Float32Array, value: Float32Array): void {
    this.cache.write(layer, seq, pos, key, value);
  }

  attend(layer: number, seq: number, q: Float32Array, pos: number): Float32Array {
    this.cache.blocks.row(seq, pos); // names a position past the reservation
    return pagedAttention(
      q,
      this.cache.keys[layer],
      this.cache.values[layer],
      this.cache.blocks.blockTable(seq),
      this.cache.shape.blockSize,
      pos,
      this.#shape,
      windowStart(pos, this.#config.slidingWindow ?? Infinity),
    );
  }

  release(seq: number): void {
    this.cache.blocks.release(seq);
  }

  get reservedBytes(): number {
    return this.cache.reservedBytes;
  }

  get usedBytes(): number {
    return this.cache.usedBytes;
  }
}

/** A ring of `window` positions per sequence: memory bounded however long sequences grow. */
class SlidingStore implements KvStore {
  readonly layout = "sliding" as const;
  #rings = new Map<number, { ring: SlidingKvCache; length: number }>();
  #config: LlamaConfig;
  #shape: AttentionShape;
  #window: number;

  constructor(config: LlamaConfig) {
    if (config.slidingWindow === undefined) {
      throw new RangeError(
        "KV layout sliding: expected a model with slidingWindow set, got none (pass a window)",
      );
    }
    this.#config = config;
    this.#shape = attentionShape(config);
    this.#window = Math.min(config.slidingWindow, config.maxSeqLen);
  }

  reserve(seq: number, length: number): void {
    checkReserve(this.#config, seq, length);
    const entry = this.#rings.get(seq) ?? {
      ring: new SlidingKvCache({ ...this.#config, ...this.#shape, window: this.#window }),
      length: 0,
    };
    entry.length = Math.max(entry.length, length);
    this.#rings.set(seq, entry);
  }

  write(layer: number, seq: number, pos: number, key: Float32Array, value: Float32Array): void {
    const entry = this.#entry(seq);
    checkWithin(seq, pos, entry.length);
    entry.ring.write(layer, pos, key, value);
  }

  attend(layer: number, seq: number, q: Float32Array, pos: number): Float32Array {
    const { ring, length } = this.#entry(seq);
    checkWithin(seq, pos, length);
    return slidingWindowAttention(
      q,
      ring.keys[layer],
      ring.values[layer],
      pos,
      this.#window,
      this.#shape,
    );
  }

  release(seq: number): void {
    this.#entry(seq);
    this.#rings.delete(seq);
  }

  get reservedBytes(): number {
    let bytes = 0;
    for (const { ring } of this.#rings.values()) bytes += ring.bytes;
    return bytes;
  }

  get usedBytes(): number {
    let positions = 0;
    for (const { length } of this.#rings.values()) positions += Math.min(length, this.#window);
    return positions * kvCacheBytesPerToken({ ...this.#config, headDim: this.#shape.headDim });
  }

  #entry(seq: number): { ring: SlidingKvCache; length: number } {
    const entry = this.#rings.get(seq);
    if (entry === undefined) {
      throw new RangeError(`KV store: expected a live sequence id, got ${seq}`);
    }
    return entry;
  }
}

function checkWithin(seq: number, pos: number, length: number): void {
  if (!Number.isInteger(pos) || pos < 0 || pos >= length) {
    throw new RangeError(
      `KV store position of sequence ${seq}: expected an integer in [0, ${length}), got ${pos}`,
    );
  }
}
