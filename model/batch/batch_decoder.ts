/**
 * What a batched decoder offers, on either backend: one step advances many sequences, each row
 * one token of one sequence at its own position, against that sequence's own KV cache.
 *
 * @module
 */
import type { LlamaConfig } from "../config.ts";
import type { KvLayout } from "./kv_store.ts";

/** One row of a batched step: token `token` of sequence `seq`, at position `pos`. */
export interface BatchRow {
  /** Sequence id (any integer ≥ 0; the KV cache keys its memory by it). */
  seq: number;
  /** Token id. */
  token: number;
  /** Position in its sequence: at most the positions it has processed (no gaps). */
  pos: number;
}

/**
 * A decoder of many sequences at once. A step's rows of one sequence are adjacent and in order
 * of position, so a prompt is prefilled as rows of one step, beside other sequences' decode
 * rows; the step returns the next-token logits of each sequence, after its last row (the
 * classifier runs on those rows only).
 *
 * @example
 * ```ts
 * import { makeConfig } from "../config.ts";
 * import { randomWeights } from "../weights.ts";
 * import type { BatchDecoder } from "./batch_decoder.ts";
 * import { CpuBatchDecoder } from "./cpu_batch_decoder.ts";
 * const config = makeConfig({ dim: 8, hiddenDim: 16, nLayers: 1, nHeads: 2, nKvHeads: 1, vocabSize: 10, maxSeqLen: 8 });
 * const decoder: BatchDecoder = new CpuBatchDecoder(config, randomWeights(config));
 * const [a, b] = await decoder.step([{ seq: 0, token: 1, pos: 0 }, { seq: 1, token: 2, pos: 0 }, { seq: 1, token: 3, pos: 1 }]);
 * if (a.length !== 10 || b.length !== 10) throw new Error("wrong");
 * ```
 */
export interface BatchDecoder {
  /** The model's configuration. */
  readonly config: LlamaConfig;
  /** The KV-cache layout. */
  readonly layout: KvLayout;
  /**
   * Runs `rows` and returns, for each sequence in the order it appears, the next-token logits
   * `(vocabSize)` after its last row.
   */
  step(rows: readonly BatchRow[]): Promise<Float32Array[]>;
  /** Rows one step may hold. */
  readonly maxRows: number;
  /**
   * Reserves cache for positions `0..length-1` of each sequence now, all or nothing (a step
   * reserves what it writes; a scheduler reserves a sequence's whole run when admitting it, so
   * that it can never run out mid-way). Throws, reserving nothing, when the cache is full.
   */
  reserve(lengths: ReadonlyMap<number, number>): void;
  /** Ends sequence `seq` and frees its cache. */
  release(seq: number): void;
  /**
   * For benchmarks: caches positions `0..length-1` of a new sequence `seq` with seeded random
   * keys and values, as if a prompt of `length` tokens had run, so that decode at depth can be
   * timed without paying for the prefill (a decode step's work does not depend on the values).
   */
  prime(seq: number, length: number, seed?: number): void;
  /** Bytes of KV cache held now (reserved pools, rings, per-sequence buffers). */
  readonly kvReservedBytes: number;
  /** Bytes of KV cache the live sequences' positions need. */
  readonly kvUsedBytes: number;
}
