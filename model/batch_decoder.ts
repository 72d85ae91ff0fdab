/**
 * What a batched decoder offers, on either backend: one step advances many sequences, each row
 * one token of one sequence at its own position, against that sequence's own KV cache.
 *
 * @module
 */
import type { LlamaConfig } from "./config.ts";
import type { KvLayout } from "./kv_store.ts";
import { Rng } from "../reference/random.ts";

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
 * import { makeConfig } from "./config.ts";
 * import { randomWeights } from "./weights.ts";
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

/**
 * Throws unless `rows` is a valid step: token ids in the vocabulary, each sequence's rows
 * adjacent and at consecutive positions starting at most at `processed(seq)`, below
 * `maxSeqLen`. Returns the index of each sequence's last row, in order.
 *
 * @example
 * ```ts
 * import { makeConfig } from "./config.ts";
 * import { checkBatchRows } from "./batch_decoder.ts";
 * const config = makeConfig({ dim: 8, hiddenDim: 16, nLayers: 1, nHeads: 2, nKvHeads: 1, vocabSize: 10, maxSeqLen: 8 });
 * const rows = [{ seq: 4, token: 1, pos: 0 }, { seq: 4, token: 2, pos: 1 }, { seq: 0, token: 3, pos: 5 }];
 * const last = checkBatchRows(config, rows, (seq) => seq === 0 ? 5 : 0);
 * if (last.join() !== "1,2") throw new Error("wrong");
 * ```
 */
export function checkBatchRows(
  config: LlamaConfig,
  rows: readonly BatchRow[],
  processed: (seq: number) => number,
): number[] {
  if (rows.length === 0) throw new RangeError("step: expected at least one row, got none");
  const seen = new Set<number>();
  const lastRows: number[] = [];
  rows.forEach(({ seq, token, pos }, r) => {
    if (!Number.isInteger(seq) || seq < 0) {
      throw new RangeError(`step row ${r} seq: expected an integer >= 0, got ${seq}`);
    }
    if (!Number.isInteger(token) || token < 0 || token >= config.vocabSize) {
      throw new RangeError(
        `step row ${r} token: expected an id in [0, ${config.vocabSize}), got ${token}`,
      );
    }
    const continues = r > 0 && rows[r - 1].seq === seq;
    if (!continues && seen.has(seq)) {
      throw new RangeError(
        `step row ${r} seq: expected the rows of sequence ${seq} to be adjacent, got a second run`,
      );
    }
    seen.add(seq);
    const first = continues ? rows[r - 1].pos + 1 : 0;
    const limit = continues ? first : processed(seq);
    if (!Number.isInteger(pos) || pos < first || pos > limit || pos >= config.maxSeqLen) {
      throw new RangeError(
        `step row ${r} pos of sequence ${seq}: expected an integer in [${first}, ${
          Math.min(limit, config.maxSeqLen - 1)
        }], got ${pos}`,
      );
    }
    if (r === rows.length - 1 || rows[r + 1].seq !== seq) lastRows.push(r);
  });
  return lastRows;
}

/**
 * Seeded filler for {@linkcode BatchDecoder.prime}: `count` rows of `width` floats in [-1, 1),
 * cycling through one random block so that large caches fill at memory speed.
 *
 * @example
 * ```ts
 * import { primeRows } from "./batch_decoder.ts";
 * const rows = primeRows(3, 4, 7);
 * if (rows.length !== 12 || rows.some((v) => !(v >= -1 && v < 1))) throw new Error("wrong");
 * ```
 */
export function primeRows(count: number, width: number, seed = 0): Float32Array {
  const block = new Rng(seed).uniformArray(Math.min(count, 64) * width);
  const out = new Float32Array(count * width);
  for (let at = 0; at < out.length; at += block.length) {
    out.set(block.subarray(0, Math.min(block.length, out.length - at)), at);
  }
  return out;
}

/**
 * Throws unless `seq` can be primed with `length` positions: a new sequence id, `length` in
 * `[1, maxSeqLen]`.
 *
 * @example
 * ```ts
 * import { makeConfig } from "./config.ts";
 * import { checkPrime } from "./batch_decoder.ts";
 * const config = makeConfig({ dim: 8, hiddenDim: 16, nLayers: 1, nHeads: 2, nKvHeads: 1, vocabSize: 10, maxSeqLen: 8 });
 * checkPrime(config, 0, 8, false);
 * try { checkPrime(config, 0, 9, false); throw new Error("accepted"); } catch (e) { if (!(e instanceof RangeError)) throw e; }
 * ```
 */
export function checkPrime(config: LlamaConfig, seq: number, length: number, live: boolean): void {
  if (!Number.isInteger(seq) || seq < 0) {
    throw new RangeError(`prime seq: expected an integer >= 0, got ${seq}`);
  }
  if (live) throw new RangeError(`prime seq: expected a new sequence id, got live sequence ${seq}`);
  if (!Number.isInteger(length) || length < 1 || length > config.maxSeqLen) {
    throw new RangeError(
      `prime length: expected an integer in [1, maxSeqLen ${config.maxSeqLen}], got ${length}`,
    );
  }
}
