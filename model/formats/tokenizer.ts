/**
 * llama2.c's tokenizer: the `tokenizer.bin` format (max token length, then per token a float
 * score, an int32 length and the bytes), encoding by best-score BPE merges with byte fallback,
 * and decoding as llama2.c does.
 *
 * @module
 */

import { readBoundedFile } from "./_file.ts";
import { BOS, EOS } from "../config.ts";

/** Options of {@linkcode Tokenizer.encode}. */
export interface EncodeOptions {
  /** Start with BOS (1); true by default. */
  bos?: boolean;
  /** End with EOS (2); false by default. */
  eos?: boolean;
}

/**
 * A SentencePiece-style BPE vocabulary read from llama2.c's `tokenizer.bin`.
 *
 * @example
 * ```ts
 * import { Tokenizer } from "./tokenizer.ts";
 * const tokenizer = Tokenizer.fromPieces(["<unk>", "<s>", "</s>", " ", "a", "b", "ab", " ab"], [0, 0, 0, -1, -1, -1, -2, -3]);
 * const ids = tokenizer.encode("ab");
 * if (ids.join() !== "1,7" || tokenizer.decode(ids) !== "ab") throw new Error("wrong");
 * ```
 */
export class Tokenizer {
  /** Token pieces as bytes, by id. */
  readonly pieces: readonly Uint8Array[];
  /** Merge scores, by id. */
  readonly scores: Float32Array;
  /** Longest piece, in bytes, as the file states it. */
  readonly maxTokenLength: number;
  /** Longest piece actually present, in bytes (at least 1). */
  readonly maxPieceBytes: number;
  /** Where the vocabulary came from (a file name): the prefix of every error. */
  readonly source: string;
  #ids = new Map<string, number>();
  /** Each piece as a map key (see `bytesKey`), by id. */
  #keys: string[] = [];
  #byteTokens: Int32Array;

  /**
   * Builds a tokenizer from raw pieces (bytes) and their scores; `source` names it in errors.
   * Pieces may be at most {@linkcode MAX_TOKEN_LENGTH} bytes.
   */
  constructor(
    pieces: Uint8Array[],
    scores: Float32Array,
    maxTokenLength: number,
    source = "tokenizer",
  ) {
    this.source = source;
    if (pieces.length !== scores.length) {
      throw new RangeError(`${source}: ${pieces.length} pieces but ${scores.length} scores`);
    }
    this.pieces = pieces;
    this.scores = scores;
    this.maxTokenLength = maxTokenLength;
    let longest = 1;
    pieces.forEach((piece, id) => {
      if (piece.length > MAX_TOKEN_LENGTH) {
        throw new RangeError(
          `${source}: token ${id} is ${piece.length} bytes, expected at most ${MAX_TOKEN_LENGTH}`,
        );
      }
      longest = Math.max(longest, piece.length);
      const key = bytesKey(piece);
      this.#keys.push(key);
      if (!this.#ids.has(key)) this.#ids.set(key, id); // first id wins, as llama2.c's sorted lookup
    });
    this.maxPieceBytes = longest;
    this.#byteTokens = Int32Array.from({ length: 256 }, (_, b) => {
      const hex = b.toString(16).toUpperCase().padStart(2, "0");
      return this.#ids.get(bytesKey(new TextEncoder().encode(`<0x${hex}>`))) ?? -1;
    });
  }

  /** Builds a tokenizer from string pieces (for tests and examples). */
  static fromPieces(pieces: string[], scores: number[]): Tokenizer {
    const encoder = new TextEncoder();
    const bytes = pieces.map((p) => encoder.encode(p));
    const longest = bytes.reduce((n, b) => Math.max(n, b.length), 0);
    return new Tokenizer(bytes, Float32Array.from(scores), longest);
  }

  /**
   * Parses `tokenizer.bin`. With `vocabSize` (the model's), the file must hold exactly that
   * many tokens; without it, it is read to the end. Errors name `source`.
   */
  static parse(bytes: Uint8Array, source = "tokenizer", vocabSize?: number): Tokenizer {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (bytes.byteLength < 4) {
      throw new RangeError(`${source}: ${bytes.byteLength} bytes is too short for a tokenizer`);
    }
    const maxTokenLength = view.getInt32(0, true);
    if (maxTokenLength < 1 || maxTokenLength > MAX_TOKEN_LENGTH) {
      throw new RangeError(
        `${source}: max token length ${maxTokenLength} is not plausible (expected 1..${MAX_TOKEN_LENGTH}); is this a tokenizer.bin?`,
      );
    }
    const pieces: Uint8Array[] = [];
    const scores: number[] = [];
    let at = 4;
    while (at < bytes.byteLength && (vocabSize === undefined || pieces.length < vocabSize)) {
      if (at + 8 > bytes.byteLength) {
        throw new RangeError(`${source}: truncated in the header of token ${pieces.length}`);
      }
      const score = view.getFloat32(at, true);
      const length = view.getInt32(at + 4, true);
      at += 8;
      if (length < 0 || length > maxTokenLength || at + length > bytes.byteLength) {
        throw new RangeError(
          `${source}: token ${pieces.length} has length ${length} (max ${maxTokenLength}, ${
            bytes.byteLength - at
          } bytes left)`,
        );
      }
      if (!Number.isFinite(score)) {
        throw new RangeError(`${source}: token ${pieces.length} has score ${score}`);
      }
      pieces.push(bytes.slice(at, at + length));
      scores.push(score);
      at += length;
    }
    if (vocabSize !== undefined && pieces.length !== vocabSize) {
      throw new RangeError(
        `${source}: expected ${vocabSize} tokens (the model's vocabulary), got ${pieces.length}`,
      );
    }
    if (at !== bytes.byteLength) {
      throw new RangeError(
        `${source}: ${bytes.byteLength - at} bytes left after ${pieces.length} tokens`,
      );
    }
    if (pieces.length < MIN_TOKENS) {
      throw new RangeError(
        `${source}: expected at least ${MIN_TOKENS} tokens (<unk>, <s>, </s>), got ${pieces.length}`,
      );
    }
    return new Tokenizer(pieces, Float32Array.from(scores), maxTokenLength, source);
  }

  /** Tokens in the vocabulary. */
  get vocabSize(): number {
    return this.pieces.length;
  }

  /**
   * Encodes text as llama2.c does: BOS, then a leading space (the dummy prefix) unless the text
   * is empty, each UTF-8 code point as its token or as `<0xNN>` byte tokens, then repeatedly
   * the adjacent pair whose merge has the best score (the leftmost among equals). The merges
   * run on a linked list with a priority queue: O(n log n) in the text's length.
   */
  encode(text: string, options: EncodeOptions = {}): number[] {
    const { bos = true, eos = false } = options;
    const symbols: number[] = [];
    if (text.length > 0) {
      const space = this.#ids.get(" ");
      if (space === undefined) {
        throw new RangeError(
          `${this.source}: cannot encode text: the vocabulary has no " " piece (the dummy prefix)`,
        );
      }
      symbols.push(space);
    }
    const encoder = new TextEncoder();
    for (const codePoint of text) {
      // An ASCII character is its own key; others go through their UTF-8 bytes.
      const bytes = codePoint.charCodeAt(0) < 0x80 ? undefined : encoder.encode(codePoint);
      const id = this.#ids.get(bytes ? bytesKey(bytes) : codePoint);
      if (id !== undefined) {
        symbols.push(id);
        continue;
      }
      if (!bytes) {
        symbols.push(this.#byteToken(codePoint.charCodeAt(0), codePoint));
        continue;
      }
      for (const byte of bytes) symbols.push(this.#byteToken(byte, codePoint));
    }
    const tokens = this.#merge(symbols);
    if (bos) tokens.unshift(BOS);
    if (eos) tokens.push(EOS);
    return tokens;
  }

  #byteToken(byte: number, codePoint: string): number {
    const id = this.#byteTokens[byte];
    if (id < 0) {
      throw new RangeError(
        `${this.source}: cannot encode ${JSON.stringify(codePoint)}: no piece and no ` +
          `byte-fallback token <0x${byte.toString(16).toUpperCase().padStart(2, "0")}>`,
      );
    }
    return id;
  }

  /**
   * The best-score-first merges of llama2.c's `encode`. Symbols form a linked list; every
   * adjacent pair that is a piece waits in a heap ordered by score, then by position (llama2.c
   * takes the first best pair from the left, and list order is index order). Entries made
   * stale by a merge are recognized by the symbols' versions and skipped.
   */
  #merge(symbols: number[]): number[] {
    const n = symbols.length;
    const next = Int32Array.from({ length: n }, (_, i) => (i + 1 < n ? i + 1 : -1));
    const prev = Int32Array.from({ length: n }, (_, i) => i - 1);
    const version = new Uint32Array(n);
    const heap = new PairHeap();
    const consider = (left: number) => {
      const right = next[left];
      if (left < 0 || right < 0) return;
      const id = this.#ids.get(this.#keys[symbols[left]] + this.#keys[symbols[right]]);
      if (id === undefined) return;
      heap.push({
        score: this.scores[id],
        left,
        id,
        leftVersion: version[left],
        rightVersion: version[right],
      });
    };
    for (let i = 0; i + 1 < n; i++) consider(i);
    for (let pair = heap.pop(); pair; pair = heap.pop()) {
      const right = next[pair.left];
      if (
        symbols[pair.left] < 0 || right < 0 || version[pair.left] !== pair.leftVersion ||
        version[right] !== pair.rightVersion
      ) {
        continue; // stale: a neighbour was merged away or changed since this pair was queued
      }
      symbols[pair.left] = pair.id;
      version[pair.left]++;
      symbols[right] = -1;
      version[right]++;
      next[pair.left] = next[right];
      if (next[right] >= 0) prev[next[right]] = pair.left;
      consider(prev[pair.left]);
      consider(pair.left);
    }
    return symbols.filter((id) => id >= 0);
  }

  /**
   * The fewest tokens {@linkcode Tokenizer.encode} can give for `text` (BOS included, no
   * EOS), without encoding it: every token covers at most {@linkcode Tokenizer.maxPieceBytes}
   * bytes. Cheap, for a length check before encoding a huge text.
   *
   * @example
   * ```ts
   * import { Tokenizer } from "./tokenizer.ts";
   * const t = Tokenizer.fromPieces(["<unk>", "<s>", "</s>", " ", "a", "aa"], [0, 0, 0, -1, -1, -1]);
   * // " aaaa" is 5 bytes and the longest piece ("<unk>") 5: at least BOS + 1 token
   * if (t.minTokenCount("aaaa") !== 2 || t.encode("aaaa").length !== 4) throw new Error("wrong");
   * ```
   */
  minTokenCount(text: string): number {
    if (text.length === 0) return 1;
    let utf8Bytes = 1; // the dummy-prefix space
    for (let i = 0; i < text.length; i++) {
      const code = text.charCodeAt(i);
      // UTF-16 units to UTF-8 bytes: a surrogate pair (4 bytes) counts 2 + 2
      utf8Bytes += code < 0x80 ? 1 : code < 0x800 || (code >= 0xd800 && code < 0xe000) ? 2 : 3;
    }
    return 1 + Math.ceil(utf8Bytes / this.maxPieceBytes);
  }

  /**
   * The bytes of `token` following `previous`: after BOS a leading space is dropped, and a
   * `<0xNN>` piece is the raw byte.
   */
  decodePiece(previous: number, token: number): Uint8Array {
    if (!Number.isInteger(token) || token < 0 || token >= this.vocabSize) {
      throw new RangeError(
        `tokenizer: token id ${token} is outside the vocabulary [0, ${this.vocabSize})`,
      );
    }
    let piece = this.pieces[token];
    if (previous === BOS && piece[0] === 0x20) piece = piece.subarray(1);
    const byteMatch = /^<0x([0-9A-Fa-f]{2})>$/.exec(new TextDecoder().decode(piece));
    return byteMatch ? Uint8Array.of(parseInt(byteMatch[1], 16)) : piece;
  }

  /** Decodes a token sequence to text (BOS/EOS themselves produce nothing). */
  decode(tokens: readonly number[]): string {
    const parts: Uint8Array[] = [];
    tokens.forEach((token, i) => {
      if (token === BOS || token === EOS) return;
      parts.push(this.decodePiece(i > 0 ? tokens[i - 1] : -1, token));
    });
    return new TextDecoder().decode(concat(parts));
  }
}

/** Pieces are at most this many bytes (65536): llama2.c's are tens. */
export const MAX_TOKEN_LENGTH = 1 << 16;
/** A vocabulary needs `<unk>`, `<s>` (BOS) and `</s>` (EOS), ids 0-2. */
const MIN_TOKENS = 3;

/** Bytes as a string of char codes 0-255, a map key; no spread, so any length works. */
function bytesKey(bytes: Uint8Array): string {
  let key = "";
  for (let at = 0; at < bytes.length; at += 4096) {
    key += String.fromCharCode.apply(null, Array.from(bytes.subarray(at, at + 4096)));
  }
  return key;
}

/** A pair merge waiting in the heap. */
interface Pair {
  score: number;
  left: number;
  id: number;
  leftVersion: number;
  rightVersion: number;
}

/** A binary max-heap of pairs: best score first, then the leftmost. */
class PairHeap {
  #items: Pair[] = [];

  #before(a: Pair, b: Pair): boolean {
    return a.score > b.score || (a.score === b.score && a.left < b.left);
  }

  push(pair: Pair): void {
    const items = this.#items;
    let i = items.push(pair) - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.#before(items[i], items[parent])) break;
      [items[i], items[parent]] = [items[parent], items[i]];
      i = parent;
    }
  }

  pop(): Pair | undefined {
    const items = this.#items;
    const top = items[0];
    const last = items.pop();
    if (items.length > 0 && last) {
      items[0] = last;
      let i = 0;
      while (true) {
        const l = 2 * i + 1, r = l + 1;
        let best = i;
        if (l < items.length && this.#before(items[l], items[best])) best = l;
        if (r < items.length && this.#before(items[r], items[best])) best = r;
        if (best === i) break;
        [items[i], items[best]] = [items[best], items[i]];
        i = best;
      }
    }
    return top;
  }
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/**
 * Reads and parses a `tokenizer.bin` file (needs `--allow-read`); errors name the path. The
 * file must be a regular file (not a device or a pipe) no larger than its header allows: with
 * `vocabSize`, `4 + vocabSize·(8 + maxTokenLength)` bytes; without, {@linkcode MAX_TOKENIZER_BYTES}.
 *
 * @example
 * ```ts ignore
 * const tokenizer = await readTokenizer("tok512.bin", 512);
 * ```
 */
export async function readTokenizer(path: string, vocabSize?: number): Promise<Tokenizer> {
  const bytes = await readBoundedFile(path, "tokenizer", (header, size) => {
    if (header.byteLength < 4) return MAX_TOKENIZER_BYTES; // parse names the short file
    const maxTokenLength = new DataView(header.buffer).getInt32(0, true);
    if (vocabSize === undefined || maxTokenLength < 1 || maxTokenLength > MAX_TOKEN_LENGTH) {
      return MAX_TOKENIZER_BYTES;
    }
    const limit = 4 + vocabSize * (8 + maxTokenLength);
    if (size > limit) {
      throw new RangeError(
        `${path}: ${size} bytes is more than a tokenizer of ${vocabSize} tokens of at most ${maxTokenLength} bytes can hold (${limit}); is this a tokenizer.bin?`,
      );
    }
    return limit;
  }, 4);
  return Tokenizer.parse(bytes, path, vocabSize);
}

/** The largest tokenizer file read without a vocabulary size: 256 MiB. */
export const MAX_TOKENIZER_BYTES = 256 * 1024 * 1024;
