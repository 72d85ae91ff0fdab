import { expect } from "expect";
import { BOS, EOS, readTokenizer, Tokenizer } from "../model/mod.ts";
import { LILY, TOKENIZER_PATH } from "./_models.ts";

// A toy vocabulary with byte fallback: <0x00>..<0xFF> at ids 3..258, as in Llama's.
function toyTokenizer(): Tokenizer {
  const pieces = ["<unk>", "<s>", "</s>"];
  const scores = [0, 0, 0];
  for (let b = 0; b < 256; b++) {
    pieces.push(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
    scores.push(0);
  }
  for (
    const [piece, score] of [[" ", -1], ["a", -1], ["b", -1], ["c", -1], ["ab", -5], ["bc", -2], [
      " a",
      -3,
    ], [" abc", -4]] as const
  ) {
    pieces.push(piece);
    scores.push(score);
  }
  return Tokenizer.fromPieces(pieces, scores);
}

Deno.test("encode merges the best-scoring pair first, as llama2.c does", () => {
  const t = toyTokenizer();
  const id = (piece: string) => t.pieces.findIndex((p) => new TextDecoder().decode(p) === piece);
  // " ab": " a" (-3) beats "ab" (-5), and " a"+"b" is no piece: merging "ab" first would differ.
  expect(t.encode("ab")).toEqual([BOS, id(" a"), id("b")]);
  // " abc": "bc" (-2), then " a" (-3), then " a"+"bc" = " abc" (-4).
  expect(t.encode("abc", { bos: false, eos: true })).toEqual([id(" abc"), EOS]);
  expect(t.encode("")).toEqual([BOS]);
});

Deno.test("encode falls back to <0xNN> byte tokens and decode turns them back into bytes", () => {
  const t = toyTokenizer();
  const ids = t.encode("aé");
  // é is UTF-8 C3 A9, bytes 0xC3 + 3 and 0xA9 + 3 in this vocabulary
  expect(ids.slice(-2)).toEqual([0xc3 + 3, 0xa9 + 3]);
  expect(t.decode(ids)).toBe("aé");
});

Deno.test("decode drops the leading space after BOS only", () => {
  const t = toyTokenizer();
  const spaceA = t.pieces.findIndex((p) => new TextDecoder().decode(p) === " a");
  expect(new TextDecoder().decode(t.decodePiece(BOS, spaceA))).toBe("a");
  expect(new TextDecoder().decode(t.decodePiece(spaceA, spaceA))).toBe(" a");
  expect(() => t.decodePiece(BOS, 100000)).toThrow("token id 100000 is outside the vocabulary");
});

Deno.test("Tokenizer.parse rejects truncated files and a vocabulary size mismatch", () => {
  const file = tokenizerFile(["<unk>", "<s>", "ab"], 8);
  expect(Tokenizer.parse(file, "t.bin").vocabSize).toBe(3);
  expect(() => Tokenizer.parse(file.slice(0, file.length - 1), "t.bin")).toThrow(
    "t.bin: token 2 has length 2 (max 8, 1 bytes left)",
  );
  expect(() => Tokenizer.parse(file.slice(0, file.length - 3), "t.bin")).toThrow(
    "t.bin: truncated in the header of token 2",
  );
  expect(() => Tokenizer.parse(file, "t.bin", 4)).toThrow(
    "t.bin: expected 4 tokens (the model's vocabulary), got 3",
  );
  expect(() => Tokenizer.parse(new Uint8Array([0, 0, 0, 0]), "t.bin")).toThrow(
    "t.bin: max token length 0 is not plausible (expected 1..65536)",
  );
});

/** A tokenizer.bin of `pieces`, every score 1. */
function tokenizerFile(pieces: string[], maxTokenLength: number): Uint8Array {
  const encoded = pieces.map((p) => new TextEncoder().encode(p));
  const bytes = new Uint8Array(4 + encoded.reduce((n, p) => n + 8 + p.length, 0));
  const view = new DataView(bytes.buffer);
  view.setInt32(0, maxTokenLength, true);
  let at = 4;
  for (const piece of encoded) {
    view.setFloat32(at, 1, true);
    view.setInt32(at + 4, piece.length, true);
    bytes.set(piece, at + 8);
    at += 8 + piece.length;
  }
  return bytes;
}

Deno.test("a header-only or special-only tokenizer is refused naming the file", () => {
  // 4 bytes: a plausible max token length and no tokens at all
  expect(() => Tokenizer.parse(Uint8Array.of(16, 0, 0, 0), "four.bin")).toThrow(
    "four.bin: expected at least 3 tokens (<unk>, <s>, </s>), got 0",
  );
  // three tokens, no " ": text cannot be encoded, and the error says why, naming the file
  const specials = Tokenizer.parse(tokenizerFile(["<unk>", "<s>", "</s>"], 8), "s.bin");
  expect(specials.encode("")).toEqual([BOS]);
  expect(() => specials.encode("hi")).toThrow(
    's.bin: cannot encode text: the vocabulary has no " " piece (the dummy prefix)',
  );
});

Deno.test("encode matches a straightforward best-pair-first merge on random vocabularies", () => {
  // The O(n²) algorithm of llama2.c, kept here as the independent oracle.
  const naive = (t: Tokenizer, text: string) => {
    const key = (ids: number[]) => ids.map((id) => new TextDecoder().decode(t.pieces[id])).join("");
    const lookup = new Map<string, number>();
    t.pieces.forEach((p, id) => {
      const k = new TextDecoder().decode(p);
      if (!lookup.has(k)) lookup.set(k, id);
    });
    const tokens = [lookup.get(" ")!, ...Array.from(text, (c) => lookup.get(c)!)];
    while (true) {
      let best = -Infinity, at = -1, merged = -1;
      for (let i = 0; i + 1 < tokens.length; i++) {
        const id = lookup.get(key([tokens[i], tokens[i + 1]]));
        if (id !== undefined && t.scores[id] > best) [best, at, merged] = [t.scores[id], i, id];
      }
      if (at < 0) return [BOS, ...tokens];
      tokens.splice(at, 2, merged);
    }
  };
  let seed = 7;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  for (let trial = 0; trial < 40; trial++) {
    const letters = "abc";
    const pieces = new Set([" ", ...letters]);
    while (pieces.size < 12) {
      const length = 2 + Math.floor(random() * 3);
      pieces.add(Array.from({ length }, () => " abc"[Math.floor(random() * 4)]).join(""));
    }
    // few distinct scores: ties between pairs are common, and must go to the leftmost
    const list = ["<unk>", "<s>", "</s>", ...pieces];
    const scores = list.map((_, i) => (i < 3 ? 0 : Math.floor(random() * 3)));
    const t = Tokenizer.fromPieces(list, scores);
    const text = Array.from(
      { length: 1 + Math.floor(random() * 40) },
      () => "abc "[Math.floor(random() * 4)],
    ).join("");
    expect(t.encode(text)).toEqual(naive(t, text));
  }
});

Deno.test("encode builds keys of 128 KiB pieces without spreading them into arguments", () => {
  const pieces = ["<unk>", "<s>", "</s>", " "];
  const scores = [0, 0, 0, 0];
  for (let n = 1; n <= 1 << 16; n *= 2) {
    pieces.push("a".repeat(n));
    scores.push(Math.log2(n)); // longer pieces merge first
  }
  const t = Tokenizer.fromPieces(pieces, scores);
  const big = t.pieces.length - 1; // "a" × 65536
  // 131072 letters: the last merge looks up a 131072-byte pair, which no spread can build
  expect(t.encode("a".repeat(1 << 17))).toEqual([BOS, 3, big, big]);
  expect(t.minTokenCount("a".repeat(1 << 17))).toBe(4);
});

Deno.test({
  name: "tok512.bin encodes 'Once upon a time' as llama2.c does and round-trips text",
  fn: async () => {
    const t = await readTokenizer(TOKENIZER_PATH, 512);
    expect(t.encode("Once upon a time")).toEqual([1, 403, 407, 261, 378]);
    for (
      const text of [
        LILY,
        'She said, "I\'m sorry!" 123 + 456 = 579.',
        "  two spaces, a tab\tand a newline\n",
        "héllo wörld — naïve café 🦙 日本語",
        "",
      ]
    ) {
      expect(t.decode(t.encode(text))).toBe(text);
    }
    // 100,000 characters of ordinary text (O(n²) merging took hours); no timing asserted here
    const story = `${LILY} She liked to play with her ball in the park. `.repeat(1000).slice(
      0,
      100_000,
    );
    const ids = t.encode(story);
    expect(t.decode(ids)).toBe(story);
    expect(ids.length).toBeGreaterThanOrEqual(t.minTokenCount(story));
  },
});

Deno.test("an unreadable tokenizer names its path", async () => {
  await expect(readTokenizer("/nonexistent/tok.bin")).rejects.toThrow(
    "/nonexistent/tok.bin: cannot read tokenizer",
  );
});
