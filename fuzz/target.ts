/**
 * What a file format gives the fuzzer: valid files (seeded), where their header fields and
 * sections lie, and how the project loads and runs one.
 *
 * @module
 */
import type { Rng } from "../reference/random.ts";

/** An integer header field the fuzzer sets to 0, -1, 2^31 − 1 and other extremes. */
export interface FuzzField {
  /** The field's name (as errors should name it). */
  name: string;
  /** Byte offset in the file. */
  offset: number;
  /** Width in bytes: 1, 4 or 8 (little-endian). */
  width: 1 | 4 | 8;
}

/** A byte range (a tensor, a record) the fuzzer may swap with another. */
export interface FuzzSection {
  /** What it holds. */
  name: string;
  /** Byte offset in the file. */
  offset: number;
  /** Bytes. */
  length: number;
}

/** A valid file and its map. */
export interface FuzzSample {
  /** The file's bytes. */
  bytes: Uint8Array;
  /** Its integer header fields (none: the fuzzer picks aligned words near the start). */
  fields: FuzzField[];
  /** Its sections, in file order. */
  sections: FuzzSection[];
}

/**
 * A file format under fuzzing. `exercise` loads the bytes (named `source` in errors) and runs
 * them as a user would (one forward pass, one encode): it returns a label of what happened
 * ("ran", ...) or throws the loader's documented error, a `RangeError` whose message starts
 * with `source:`. Any other exception, or a slow case, is a failure.
 *
 * @example
 * ```ts
 * import type { FuzzTarget } from "./target.ts";
 * import { Tokenizer } from "../model/formats/tokenizer.ts";
 * const target: FuzzTarget = {
 *   name: "raw tokenizer",
 *   sample: () => ({ bytes: new Uint8Array(4), fields: [], sections: [] }),
 *   exercise: (bytes, source) => (Tokenizer.parse(bytes, source), "ran"),
 * };
 * if (target.name !== "raw tokenizer") throw new Error("wrong");
 * ```
 */
export interface FuzzTarget {
  /** The target's name, for `--target` and the report. */
  readonly name: string;
  /** A valid file drawn from `rng`. */
  sample(rng: Rng): FuzzSample;
  /** Loads and runs `bytes`; returns what happened, or throws the documented error. */
  exercise(bytes: Uint8Array, source: string): Promise<string> | string;
}
