/**
 * A paged KV cache, as in vLLM's PagedAttention: one pool of fixed-size blocks per layer shared
 * by every sequence, a block table per sequence mapping its logical blocks to pool blocks, and
 * blocks taken as sequences grow and returned when they end. Memory follows the tokens actually
 * cached instead of `maxSeqLen` per sequence.
 *
 * @module
 */
import { checkHeads, checkInteger, checkLength } from "./checks.ts";
import { type AttentionShape, decodeAttention } from "./attention.ts";
import { kvCacheBytesPerToken } from "./kv_cache.ts";

/** Dimensions of a {@linkcode PagedKvCache}. */
export interface PagedKvCacheShape {
  /** Transformer layers, each with its own pool. */
  nLayers: number;
  /** Key/value heads per layer. */
  nKvHeads: number;
  /** Features per head. */
  headDim: number;
  /** Positions per block (16 in vLLM's default). */
  blockSize: number;
  /** Blocks in each layer's pool: the cache holds `numBlocks·blockSize` positions in all. */
  numBlocks: number;
}

/**
 * The bookkeeping of a paged cache, apart from its storage: a pool of `numBlocks` blocks of
 * `blockSize` positions, and each live sequence's block table. Blocks are taken as sequences
 * grow, lowest ids first, and returned when they end. CPU and GPU caches share it.
 *
 * @example
 * ```ts
 * import { BlockAllocator } from "./paged_kv_cache.ts";
 * const blocks = new BlockAllocator(16, 4);
 * blocks.reserve(3, 20); // two blocks
 * if (blocks.row(3, 17) !== 1 * 16 + 1 || blocks.freeBlocks !== 2) throw new Error("wrong");
 * ```
 */
export class BlockAllocator {
  /** Positions per block. */
  readonly blockSize: number;
  /** Blocks in the pool. */
  readonly numBlocks: number;
  /** Free block ids, lowest last so that `pop` hands out low ids first (deterministic). */
  #free: number[];
  /** Block ids of each live sequence, in logical order. */
  #tables = new Map<number, number[]>();
  /** Positions reserved by each live sequence. */
  #lengths = new Map<number, number>();

  /** What errors call the cache. */
  readonly #what: string;

  /** A pool with every block free; `what` names the cache in errors. */
  constructor(blockSize: number, numBlocks: number, what = "PagedKvCache") {
    checkInteger("blockSize", blockSize);
    checkInteger("numBlocks", numBlocks);
    this.blockSize = blockSize;
    this.numBlocks = numBlocks;
    this.#what = what;
    this.#free = Array.from({ length: numBlocks }, (_, i) => numBlocks - 1 - i);
  }

  /**
   * Makes positions `0..length-1` of sequence `seq` writable, taking blocks as needed. All or
   * nothing: throws, allocating nothing, when too few blocks are free.
   */
  reserve(seq: number, length: number): void {
    this.reserveAll(new Map([[seq, length]]));
  }

  /**
   * {@linkcode BlockAllocator.reserve} for several sequences at once, all or nothing: the
   * blocks every sequence needs are counted first, and none is taken unless all are free.
   */
  reserveAll(lengths: ReadonlyMap<number, number>): void {
    const short: [number, number, number][] = [];
    let needed = 0;
    for (const [seq, length] of lengths) {
      checkInteger(`${this.#what} sequence id`, seq, 0);
      checkInteger(`${this.#what} length`, length);
      const more = Math.ceil(length / this.blockSize) - (this.#tables.get(seq)?.length ?? 0);
      if (more > 0) {
        short.push([seq, length, more]);
        needed += more;
      }
    }
    if (needed > this.#free.length) {
      const seqs = short.map(([seq]) => seq).join(", ");
      const of = `${this.blockSize} positions for length ${short.map(([, l]) => l).join(", ")}`;
      throw new RangeError(
        `${this.#what}: sequence${short.length > 1 ? "s" : ""} ${seqs} need${
          short.length > 1 ? "" : "s"
        } ${needed} more blocks of ${of}, got ${this.#free.length} free of ${this.numBlocks}`,
      );
    }
    for (const [seq, length] of lengths) {
      const table = this.#tables.get(seq) ?? [];
      const more = Math.ceil(length / this.blockSize) - table.length;
      for (let i = 0; i < more; i++) table.push(this.#free.pop()!);
      this.#tables.set(seq, table);
      this.#lengths.set(seq, Math.max(length, this.#lengths.get(seq) ?? 0));
    }
  }

  /** Whether sequence `seq` holds blocks. */
  has(seq: number): boolean {
    return this.#tables.has(seq);
  }

  /** Returns every block of sequence `seq` to the pool; the sequence is forgotten. */
  release(seq: number): void {
    const table = this.#table(seq);
    this.#free.push(...table);
    this.#free.sort((a, b) => b - a);
    this.#tables.delete(seq);
    this.#lengths.delete(seq);
  }

  /** The pool block ids of sequence `seq`, in logical order (a copy, as kernels bind it). */
  blockTable(seq: number): Int32Array {
    return Int32Array.from(this.#table(seq));
  }

  /** Positions reserved by sequence `seq`. */
  length(seq: number): number {
    this.#table(seq);
    return this.#lengths.get(seq)!;
  }

  /** The live sequence ids. */
  get sequences(): number[] {
    return [...this.#tables.keys()];
  }

  /** The pool row holding position `pos` of sequence `seq`. */
  row(seq: number, pos: number): number {
    const table = this.#table(seq);
    const length = this.#lengths.get(seq)!;
    if (!Number.isInteger(pos) || pos < 0 || pos >= length) {
      throw new RangeError(
        `${this.#what} position of sequence ${seq}: expected an integer in [0, ${length}), got ${pos}`,
      );
    }
    return table[Math.floor(pos / this.blockSize)] * this.blockSize + (pos % this.blockSize);
  }

  /** Free blocks in the pool. */
  get freeBlocks(): number {
    return this.#free.length;
  }

  /** Positions reserved by all live sequences. */
  get reservedPositions(): number {
    let positions = 0;
    for (const length of this.#lengths.values()) positions += length;
    return positions;
  }

  #table(seq: number): number[] {
    const table = this.#tables.get(seq);
    if (table === undefined) {
      throw new RangeError(`${this.#what}: expected a live sequence id, got ${seq}`);
    }
    return table;
  }
}

/**
 * Per-layer key and value pools, each `(numBlocks·blockSize, nKvHeads·headDim)` row-major
 * float32, and per-sequence block tables (a {@linkcode BlockAllocator}). Position `pos` of
 * sequence `seq` lives in pool row `table[floor(pos / blockSize)]·blockSize + pos % blockSize`.
 *
 * @example
 * ```ts
 * import { PagedKvCache } from "./paged_kv_cache.ts";
 * const cache = new PagedKvCache({ nLayers: 1, nKvHeads: 1, headDim: 2, blockSize: 2, numBlocks: 4 });
 * cache.blocks.reserve(7, 3); // sequence 7 needs positions 0..2: two blocks
 * cache.write(0, 7, 2, new Float32Array([1, 2]), new Float32Array([3, 4]));
 * const before = cache.blocks.freeBlocks;
 * cache.blocks.release(7);
 * if (before !== 2 || cache.blocks.freeBlocks !== 4) throw new Error("wrong");
 * ```
 */
export class PagedKvCache {
  /** The cache's dimensions. */
  readonly shape: Readonly<PagedKvCacheShape>;
  /** Features of one position's keys (or values): `nKvHeads·headDim`. */
  readonly kvDim: number;
  /** Key pools per layer, `(numBlocks·blockSize, kvDim)`. */
  readonly keys: Float32Array[];
  /** Value pools per layer, `(numBlocks·blockSize, kvDim)`. */
  readonly values: Float32Array[];
  /** Which blocks each sequence holds. */
  readonly blocks: BlockAllocator;

  /** Allocates zeroed pools with every block free. */
  constructor(shape: PagedKvCacheShape) {
    checkInteger("nLayers", shape.nLayers);
    checkHeads(shape.nKvHeads, shape.nKvHeads, shape.headDim);
    this.blocks = new BlockAllocator(shape.blockSize, shape.numBlocks);
    this.shape = { ...shape };
    this.kvDim = shape.nKvHeads * shape.headDim;
    const size = shape.numBlocks * shape.blockSize * this.kvDim;
    this.keys = Array.from({ length: shape.nLayers }, () => new Float32Array(size));
    this.values = Array.from({ length: shape.nLayers }, () => new Float32Array(size));
  }

  /** Stores one position's key and value vectors (each `kvDim`) of sequence `seq` in `layer`. */
  write(layer: number, seq: number, pos: number, key: Float32Array, value: Float32Array): void {
    if (!Number.isInteger(layer) || layer < 0 || layer >= this.shape.nLayers) {
      throw new RangeError(
        `PagedKvCache layer: expected an integer in [0, ${this.shape.nLayers}), got ${layer}`,
      );
    }
    checkLength("PagedKvCache key (nKvHeads*headDim)", key, this.kvDim);
    checkLength("PagedKvCache value (nKvHeads*headDim)", value, this.kvDim);
    const row = this.blocks.row(seq, pos);
    this.keys[layer].set(key, row * this.kvDim);
    this.values[layer].set(value, row * this.kvDim);
  }

  /** Bytes per cached position (keys and values of all layers). */
  get bytesPerToken(): number {
    return kvCacheBytesPerToken(this.shape);
  }

  /** Bytes the pools reserve: every block, used or not. */
  get reservedBytes(): number {
    return this.bytesPerToken * this.shape.blockSize * this.shape.numBlocks;
  }

  /** Bytes of the blocks held by live sequences (the tail of each last block included). */
  get allocatedBytes(): number {
    const held = this.shape.numBlocks - this.blocks.freeBlocks;
    return this.bytesPerToken * this.shape.blockSize * held;
  }

  /** Bytes of the positions live sequences reserved: what a perfect allocator would hold. */
  get usedBytes(): number {
    return this.bytesPerToken * this.blocks.reservedPositions;
  }
}

/**
 * Attention of one new token at position `pos` against a paged cache, the contract of the paged
 * attention kernel: `q: (nHeads·headDim)`; `keyPool, valuePool: (numBlocks·blockSize,
 * nKvHeads·headDim)`; `blockTable` holds the sequence's pool block ids, covering positions
 * `0..pos`. The token sees positions `start..pos` (`start` > 0 under a sliding window).
 * Returns `(nHeads·headDim)`: {@linkcode decodeAttention} over those positions, gathered
 * through the block table.
 *
 * @example
 * ```ts
 * import { pagedAttention } from "./paged_kv_cache.ts";
 * const shape = { nHeads: 1, nKvHeads: 1, headDim: 1 };
 * // blocks of one position; the sequence's positions 0, 1 live in pool rows 2, 0
 * const keys = new Float32Array([1, 0, 1]), values = new Float32Array([7, 0, 5]);
 * const out = pagedAttention(new Float32Array([0]), keys, values, Int32Array.of(2, 0), 1, 1, shape);
 * if (out[0] !== 6) throw new Error("wrong");
 * ```
 */
export function pagedAttention(
  q: Float32Array,
  keyPool: Float32Array,
  valuePool: Float32Array,
  blockTable: Int32Array,
  blockSize: number,
  pos: number,
  shape: AttentionShape,
  start = 0,
): Float32Array {
  checkHeads(shape.nHeads, shape.nKvHeads, shape.headDim);
  checkInteger("blockSize", blockSize);
  checkInteger("pos", pos, 0);
  if (!Number.isInteger(start) || start < 0 || start > pos) {
    throw new RangeError(`pagedAttention start: expected an integer in [0, ${pos}], got ${start}`);
  }
  const kvDim = shape.nKvHeads * shape.headDim;
  const poolRows = Math.floor(keyPool.length / kvDim);
  checkLength("pagedAttention valuePool (same as keyPool)", valuePool, keyPool.length);
  const blocks = Math.floor(pos / blockSize) + 1;
  if (blockTable.length < blocks) {
    throw new RangeError(
      `pagedAttention blockTable: expected >= ${blocks} blocks to cover position ${pos}, ` +
        `got ${blockTable.length}`,
    );
  }
  const count = pos - start + 1;
  const keys = new Float32Array(count * kvDim);
  const values = new Float32Array(count * kvDim);
  for (let t = start; t <= pos; t++) {
    const block = blockTable[Math.floor(t / blockSize)];
    const row = block * blockSize + (t % blockSize);
    if (block < 0 || row >= poolRows) {
      throw new RangeError(
        `pagedAttention blockTable[${Math.floor(t / blockSize)}]: expected a block in ` +
          `[0, ${Math.floor(poolRows / blockSize)}), got ${block}`,
      );
    }
    keys.set(keyPool.subarray(row * kvDim, (row + 1) * kvDim), (t - start) * kvDim);
    values.set(valuePool.subarray(row * kvDim, (row + 1) * kvDim), (t - start) * kvDim);
  }
  return decodeAttention(q, keys, values, count - 1, shape);
}
