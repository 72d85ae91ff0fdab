// The sequence bookkeeping both batched decoders share: which positions each sequence has
// processed, the checks every step passes before anything is cached, and reservation and
// release through the KV pool. A step is begun (checked, cache reserved) and then committed
// once its work has succeeded, so a failed step leaves no position counted that was not written.
import type { BatchRow } from "./batch_decoder.ts";
import type { LlamaConfig } from "../config.ts";
import { checkPosition } from "../decoder.ts";
import type { KvPool } from "./kv_store.ts";
import { Rng } from "../../reference/random.ts";

/** A checked step: each sequence's last row, and the lengths it brings them to. */
export interface StepPlan {
  /** Index of each sequence's last row, in order of appearance. */
  lastRows: number[];
  /** Each sequence's length after the step. */
  lengths: Map<number, number>;
}

/** Positions processed per sequence, over a {@linkcode KvPool}. */
export class BatchSequences {
  readonly #config: LlamaConfig;
  readonly #pool: KvPool;
  readonly #processed = new Map<number, number>();

  constructor(config: LlamaConfig, pool: KvPool) {
    this.#config = config;
    this.#pool = pool;
  }

  /** Live sequence ids. */
  get ids(): number[] {
    return [...this.#processed.keys()];
  }

  /** Positions `seq` has processed (0 if unknown). */
  processed(seq: number): number {
    return this.#processed.get(seq) ?? 0;
  }

  /**
   * Checks `rows` (token ids, adjacency, positions, the row limit, a ring's no-rewind rule) and
   * reserves the cache they write, all or nothing. Nothing is marked processed until
   * {@linkcode BatchSequences.commit}.
   */
  begin(rows: readonly BatchRow[]): StepPlan {
    const { maxRows, ring } = this.#pool.shape;
    if (rows.length === 0) throw new RangeError("step: expected at least one row, got none");
    if (rows.length > maxRows) {
      throw new RangeError(`step: expected at most maxRows ${maxRows} rows, got ${rows.length}`);
    }
    const seen = new Set<number>();
    const lastRows: number[] = [];
    const lengths = new Map<number, number>();
    rows.forEach(({ seq, token, pos }, r) => {
      if (!Number.isInteger(seq) || seq < 0) {
        throw new RangeError(`step row ${r} seq: expected an integer >= 0, got ${seq}`);
      }
      if (!Number.isInteger(token) || token < 0 || token >= this.#config.vocabSize) {
        throw new RangeError(
          `step row ${r} token: expected an id in [0, ${this.#config.vocabSize}), got ${token}`,
        );
      }
      const continues = r > 0 && rows[r - 1].seq === seq;
      if (continues) {
        if (pos !== rows[r - 1].pos + 1) {
          throw new RangeError(
            `step row ${r} pos of sequence ${seq}: expected ${
              rows[r - 1].pos + 1
            }, the next position, got ${pos}`,
          );
        }
        this.#checkPosition(r, seq, pos, pos);
      } else {
        if (seen.has(seq)) {
          throw new RangeError(
            `step row ${r} seq: expected the rows of sequence ${seq} to be adjacent, got a second run`,
          );
        }
        const processed = this.processed(seq);
        this.#checkPosition(r, seq, pos, processed);
        // A ring has overwritten older positions: a sequence may restart, not rewind.
        if (ring && pos !== processed && pos !== 0) {
          throw new RangeError(
            `step row ${r} pos of sequence ${seq}: a sliding-window ring continues at ${processed} or restarts at 0, got ${pos}`,
          );
        }
      }
      seen.add(seq);
      lengths.set(seq, pos + 1);
      if (r === rows.length - 1 || rows[r + 1].seq !== seq) lastRows.push(r);
    });
    this.#pool.reserve(lengths);
    return { lastRows, lengths };
  }

  /** `checkPosition`'s verdict, naming the row and its sequence. */
  #checkPosition(row: number, seq: number, pos: number, processed: number): void {
    try {
      checkPosition(this.#config, pos, processed);
    } catch (error) {
      throw new RangeError(`step row ${row} (sequence ${seq}): ${(error as Error).message}`);
    }
  }

  /** Marks a begun step's positions processed. */
  commit(plan: StepPlan): void {
    for (const [seq, length] of plan.lengths) this.#processed.set(seq, length);
  }

  /** Checks that `seq` is new and `length` fits, reserves it, and marks it processed. */
  prime(seq: number, length: number): void {
    if (!Number.isInteger(seq) || seq < 0) {
      throw new RangeError(`prime seq: expected an integer >= 0, got ${seq}`);
    }
    if (this.#processed.has(seq)) {
      throw new RangeError(`prime seq: expected a new sequence id, got live sequence ${seq}`);
    }
    if (!Number.isInteger(length) || length < 1 || length > this.#config.maxSeqLen) {
      throw new RangeError(
        `prime length: expected an integer in [1, maxSeqLen ${this.#config.maxSeqLen}], got ${length}`,
      );
    }
    this.#pool.reserve(new Map([[seq, length]]));
    this.#processed.set(seq, length);
  }

  /** Forgets `seq` and frees its cache. */
  release(seq: number): void {
    if (!this.#pool.has(seq)) {
      throw new RangeError(`release: expected a live sequence id, got ${seq}`);
    }
    this.#pool.release(seq);
    this.#processed.delete(seq);
  }
}

/**
 * Seeded filler for `prime`: `count` rows of `width` floats in [-1, 1), cycling through one
 * random block so that large caches fill at memory speed.
 */
export function primeRows(count: number, width: number, seed = 0): Float32Array {
  const block = new Rng(seed).uniformArray(Math.min(count, 64) * width);
  const out = new Float32Array(count * width);
  for (let at = 0; at < out.length; at += block.length) {
    out.set(block.subarray(0, Math.min(block.length, out.length - at)), at);
  }
  return out;
}
