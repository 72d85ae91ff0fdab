/**
 * The per-step row buffer of batched decoding: each row of a step is one token of its own
 * sequence, and this small `u32` buffer tells the kernels where that row stands, so that a
 * step's dispatches depend only on its row count.
 *
 * @module
 */

/**
 * Word indices of one row's entry (4 `u32`s a row, one `vec4<u32>` in WGSL):
 * - `pos`: the row's position in its sequence;
 * - `slot`: the pool row its key and value are written to;
 * - `table`: where its sequence's block table starts in the block-table buffer;
 * - `start`: the first position it sees (`pos − window + 1` under a sliding window, else 0).
 */
export const BATCH_ROW = { pos: 0, slot: 1, table: 2, start: 3 } as const;

/** Words per row. */
export const BATCH_ROW_WORDS = 4;

/** One row's entry. */
export interface BatchRowEntry {
  /** Position in its sequence. */
  pos: number;
  /** Pool row of its key and value. */
  slot: number;
  /** Offset of its sequence's block table. */
  table: number;
  /** First position it sees. */
  start: number;
}

/**
 * The row buffer's words for `entries`.
 *
 * @example
 * ```ts
 * import { BATCH_ROW, BATCH_ROW_WORDS, batchRowWords } from "./batch_rows.ts";
 * const words = batchRowWords([{ pos: 9, slot: 41, table: 0, start: 0 }, { pos: 2, slot: 7, table: 3, start: 0 }]);
 * if (words[BATCH_ROW_WORDS + BATCH_ROW.slot] !== 7) throw new Error("wrong");
 * ```
 */
export function batchRowWords(entries: readonly BatchRowEntry[]): Uint32Array {
  const words = new Uint32Array(entries.length * BATCH_ROW_WORDS);
  entries.forEach((e, r) => {
    const at = r * BATCH_ROW_WORDS;
    words[at + BATCH_ROW.pos] = e.pos;
    words[at + BATCH_ROW.slot] = e.slot;
    words[at + BATCH_ROW.table] = e.table;
    words[at + BATCH_ROW.start] = e.start;
  });
  return words;
}

/**
 * WGSL declaring the row buffer as `batchRows: array<vec4<u32>>` at `binding` of group 0.
 *
 * @example
 * ```ts
 * import { batchRowsBinding } from "./batch_rows.ts";
 * if (!batchRowsBinding(4).includes("@binding(4)")) throw new Error("wrong");
 * ```
 */
export function batchRowsBinding(binding: number): string {
  return `@group(0) @binding(${binding}) var<storage, read> batchRows: array<vec4<u32>>;`;
}
