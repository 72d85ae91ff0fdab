import { expect } from "expect";
import { BOS, EOS, readTokenizer, Tokenizer } from "../model/mod.ts";
import { ignoreModelTests, LILY, TOKENIZER_PATH } from "./_models.ts";

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
  const file = new Uint8Array([4, 0, 0, 0, 0, 0, 0x80, 0x3f, 2, 0, 0, 0, 0x61, 0x62]); // one token "ab"
  expect(Tokenizer.parse(file, "t.bin").vocabSize).toBe(1);
  expect(() => Tokenizer.parse(file.slice(0, 13), "t.bin")).toThrow(
    "t.bin: token 0 has length 2 (max 4, 1 bytes left)",
  );
  expect(() => Tokenizer.parse(file.slice(0, 9), "t.bin")).toThrow(
    "t.bin: truncated in the header of token 0",
  );
  expect(() => Tokenizer.parse(file, "t.bin", 2)).toThrow(
    "t.bin: expected 2 tokens (the model's vocabulary), got 1",
  );
  expect(() => Tokenizer.parse(new Uint8Array([0, 0, 0, 0]), "t.bin")).toThrow(
    "max token length 0 is not plausible",
  );
});

Deno.test({
  name: "tok512.bin encodes 'Once upon a time' as llama2.c does and round-trips text",
  ignore: ignoreModelTests,
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
  },
});

Deno.test("an unreadable tokenizer names its path", async () => {
  await expect(readTokenizer("/nonexistent/tok.bin")).rejects.toThrow(
    "/nonexistent/tok.bin: cannot read tokenizer",
  );
});
