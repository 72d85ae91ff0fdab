/**
 * llama2.c's tokenizer: the `tokenizer.bin` format (max token length, then per token a float
 * score, an int32 length and the bytes), encoding by best-score BPE merges with byte fallback,
 * and decoding as llama2.c does.
 *
 * @module
 */

/** Id of the beginning-of-sequence token. */
export const BOS = 1;
/** Id of the end-of-sequence token. */
export const EOS = 2;

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
  #ids = new Map<string, number>();
  #byteTokens: Int32Array;

  /** Builds a tokenizer from raw pieces (bytes) and their scores. */
  constructor(pieces: Uint8Array[], scores: Float32Array, maxTokenLength: number) {
    if (pieces.length !== scores.length) {
      throw new RangeError(`tokenizer: ${pieces.length} pieces but ${scores.length} scores`);
    }
    this.pieces = pieces;
    this.scores = scores;
    this.maxTokenLength = maxTokenLength;
    pieces.forEach((piece, id) => {
      const key = bytesKey(piece);
      if (!this.#ids.has(key)) this.#ids.set(key, id); // first id wins, as llama2.c's sorted lookup
    });
    this.#byteTokens = Int32Array.from({ length: 256 }, (_, b) => {
      const hex = b.toString(16).toUpperCase().padStart(2, "0");
      return this.#ids.get(bytesKey(new TextEncoder().encode(`<0x${hex}>`))) ?? -1;
    });
  }

  /** Builds a tokenizer from string pieces (for tests and examples). */
  static fromPieces(pieces: string[], scores: number[]): Tokenizer {
    const encoder = new TextEncoder();
    const bytes = pieces.map((p) => encoder.encode(p));
    return new Tokenizer(bytes, Float32Array.from(scores), Math.max(...bytes.map((b) => b.length)));
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
    if (maxTokenLength < 1 || maxTokenLength > 1 << 16) {
      throw new RangeError(
        `${source}: max token length ${maxTokenLength} is not plausible; is this a tokenizer.bin?`,
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
    return new Tokenizer(pieces, Float32Array.from(scores), maxTokenLength);
  }

  #lookup(piece: string, what: string): number {
    const id = this.#ids.get(bytesKey(new TextEncoder().encode(piece)));
    if (id === undefined) {
      throw new RangeError(`tokenizer: the vocabulary has no ${what} ${JSON.stringify(piece)}`);
    }
    return id;
  }

  /** Tokens in the vocabulary. */
  get vocabSize(): number {
    return this.pieces.length;
  }

  /**
   * Encodes text as llama2.c does: BOS, then a leading space (the dummy prefix) unless the text
   * is empty, each UTF-8 code point as its token or as `<0xNN>` byte tokens, then repeatedly
   * the adjacent pair whose merge has the best score.
   */
  encode(text: string, options: EncodeOptions = {}): number[] {
    const { bos = true, eos = false } = options;
    const tokens: number[] = [];
    if (bos) tokens.push(BOS);
    if (text.length > 0) tokens.push(this.#lookup(" ", "the dummy-prefix space"));
    const encoder = new TextEncoder();
    for (const codePoint of text) {
      const bytes = encoder.encode(codePoint);
      const id = this.#ids.get(bytesKey(bytes));
      if (id !== undefined) {
        tokens.push(id);
        continue;
      }
      for (const byte of bytes) {
        const byteToken = this.#byteTokens[byte];
        if (byteToken < 0) {
          throw new RangeError(
            `tokenizer: cannot encode ${
              JSON.stringify(codePoint)
            }: no piece and no byte-fallback token <0x${
              byte.toString(16).toUpperCase().padStart(2, "0")
            }>`,
          );
        }
        tokens.push(byteToken);
      }
    }
    const first = bos ? 1 : 0;
    while (true) {
      let bestScore = -Infinity;
      let bestId = -1;
      let bestIndex = -1;
      for (let i = first; i < tokens.length - 1; i++) {
        const id = this.#ids.get(
          bytesKey(concat(this.pieces[tokens[i]], this.pieces[tokens[i + 1]])),
        );
        if (id !== undefined && this.scores[id] > bestScore) {
          bestScore = this.scores[id];
          bestId = id;
          bestIndex = i;
        }
      }
      if (bestIndex < 0) break;
      tokens.splice(bestIndex, 2, bestId);
    }
    if (eos) tokens.push(EOS);
    return tokens;
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
    return new TextDecoder().decode(concat(...parts));
  }
}

function bytesKey(bytes: Uint8Array): string {
  return String.fromCharCode(...bytes);
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/**
 * Reads and parses a `tokenizer.bin` file (needs `--allow-read`); errors name the path.
 *
 * @example
 * ```ts ignore
 * const tokenizer = await readTokenizer("tok512.bin", 512);
 * ```
 */
export async function readTokenizer(path: string, vocabSize?: number): Promise<Tokenizer> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (error) {
    throw new Error(
      `${path}: cannot read tokenizer (${error instanceof Error ? error.message : error})`,
    );
  }
  return Tokenizer.parse(bytes, path, vocabSize);
}
