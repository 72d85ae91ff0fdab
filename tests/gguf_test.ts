import { expect } from "expect";
import {
  CpuDecoder,
  generate,
  llamaToGguf,
  makeConfig,
  parseGguf,
  parseGgufModel,
  randomWeights,
  readCheckpoint,
  readTokenizer,
  serializeGguf,
  Tokenizer,
} from "../model/mod.ts";
import { dequantize, isKQuantFormat, quantize, Rng, TENSOR_FORMATS } from "../reference/mod.ts";
import { MODEL_PATH, TOKENIZER_PATH } from "./_models.ts";

/** A GGUF file assembled byte by byte from the specification, independently of the writer. */
function handMadeGguf(tensorName = "w", version = 3): Uint8Array {
  const parts: number[] = [];
  const u32 = (v: number) => parts.push(v & 255, (v >> 8) & 255, (v >> 16) & 255, v >>> 24);
  const u64 = (v: number) => (u32(v), u32(0));
  const str = (s: string) => (u64(s.length), parts.push(...new TextEncoder().encode(s)));
  parts.push(..."GGUF".split("").map((c) => c.charCodeAt(0)));
  u32(version);
  u64(1); // tensors
  u64(2); // metadata entries
  str("general.architecture"), u32(8), str("llama"); // type 8: string
  str("answer"), u32(9), u32(5), u64(2), u32(42), u32(0xffffffff); // array of 2 i32
  str(tensorName), u32(2), u64(2), u64(3), u32(0), u64(0); // f32 (3 rows, 2 cols), offset 0
  while (parts.length % 32) parts.push(0);
  const floats = new Float32Array([1, 2, 3, 4, 5, 6]);
  parts.push(...new Uint8Array(floats.buffer));
  return Uint8Array.from(parts);
}

Deno.test("GGUF: a file built from the specification parses, and the writer reproduces its bytes", () => {
  const bytes = handMadeGguf();
  const file = parseGguf(bytes, "hand.gguf");
  expect(file.alignment).toBe(32);
  expect([...file.metadata]).toEqual([
    ["general.architecture", { type: "string", value: "llama" }],
    ["answer", { type: "array", itemType: "i32", value: [42, -1] }],
  ]);
  expect(file.tensors.map(({ name, dims, format }) => ({ name, dims, format }))).toEqual([
    { name: "w", dims: [2, 3], format: "f32" },
  ]);
  expect(Array.from(dequantize(file.tensors[0].data, "f32", 6))).toEqual([1, 2, 3, 4, 5, 6]);
  expect(serializeGguf(file)).toEqual(bytes);
});

Deno.test("GGUF: alignment other than 32 is written to general.alignment and honoured", () => {
  const data = quantize(new Float32Array(64).fill(0.25), "q4_0");
  const tensors = [
    { name: "a", dims: [3], format: "f16" as const, data: new Uint8Array(6) },
    { name: "b", dims: [32, 2], format: "q4_0" as const, data },
  ];
  const bytes = serializeGguf({ metadata: new Map(), tensors, alignment: 256 });
  const file = parseGguf(bytes);
  expect(file.alignment).toBe(256);
  expect(file.metadata.get("general.alignment")).toEqual({ type: "u32", value: 256 });
  for (const t of file.tensors) expect(t.data.byteOffset % 256).toBe(0);
  expect(file.tensors[1].data).toEqual(data);
});

const shape = {
  dim: 64,
  hiddenDim: 96,
  nLayers: 2,
  nHeads: 4,
  nKvHeads: 2,
  vocabSize: 40,
  maxSeqLen: 16,
};

for (const format of TENSOR_FORMATS) {
  for (const sharedClassifier of [true, false]) {
    Deno.test(`GGUF: a random model in ${format} (${sharedClassifier ? "shared" : "separate"} classifier) reads back as its quantized weights`, () => {
      // The K-quants need rows of whole 256-value super-blocks.
      const width = isKQuantFormat(format) ? { dim: 256, hiddenDim: 256, nHeads: 8 } : {};
      const config = makeConfig({
        ...shape,
        ...width,
        sharedClassifier,
        ropeTheta: 500000,
        normEps: 1e-6,
      });
      const weights = randomWeights(config, 7);
      const model = parseGgufModel(
        llamaToGguf(config, weights, { format, name: "tiny" }),
        "m.gguf",
      );
      expect(model.config).toEqual(config);
      expect(model.name).toBe("tiny");
      expect(model.tokenizer).toBeUndefined();
      const roundTrip = (w: Float32Array, f = format) => dequantize(quantize(w, f), f, w.length);
      expect(model.weights.tokenEmbedding).toEqual(roundTrip(weights.tokenEmbedding));
      expect(model.weights.layers[1].wk).toEqual(roundTrip(weights.layers[1].wk));
      expect(model.weights.layers[0].w2).toEqual(roundTrip(weights.layers[0].w2));
      expect(model.weights.layers[0].ffnNorm).toEqual(weights.layers[0].ffnNorm); // norms stay f32
      expect(model.weights.classifier).toEqual(roundTrip(weights.classifier));
      expect(model.formats.get("blk.0.attn_norm.weight")).toBe("f32");
      expect(model.formats.get("blk.1.ffn_up.weight")).toBe(format);
      expect(model.formats.has("output.weight")).toBe(!sharedClassifier);
    });
  }
}

Deno.test("GGUF: a block format falls back to f16 for rows not a multiple of 32 (as llama.cpp)", () => {
  const config = makeConfig({ ...shape, hiddenDim: 72 }); // ffn_down rows hold 72 values
  const model = parseGgufModel(llamaToGguf(config, randomWeights(config, 1), { format: "q4_0" }));
  expect(model.formats.get("blk.0.ffn_down.weight")).toBe("f16");
  expect(model.formats.get("blk.0.ffn_up.weight")).toBe("q4_0");
});

Deno.test("GGUF: a K-quant falls back to q8_0 for rows of 32 but not 256 values, else f16", () => {
  const config = makeConfig({ ...shape, hiddenDim: 256 }); // only ffn_down has rows of 256
  const model = parseGgufModel(llamaToGguf(config, randomWeights(config, 1), { format: "q6_k" }));
  expect(model.formats.get("blk.0.ffn_down.weight")).toBe("q6_k");
  expect(model.formats.get("blk.0.ffn_up.weight")).toBe("q8_0"); // rows of dim 64
  const odd = makeConfig({ ...shape, dim: 72, nHeads: 4, hiddenDim: 256 }); // rows of 72
  const oddModel = parseGgufModel(llamaToGguf(odd, randomWeights(odd, 1), { format: "q4_k" }));
  expect(oddModel.formats.get("blk.0.attn_q.weight")).toBe("f16");
  expect(
    parseGguf(llamaToGguf(odd, randomWeights(odd, 1), { format: "q4_k" })).metadata.get(
      "general.file_type",
    ),
  ).toEqual({ type: "u32", value: 14 }); // MOSTLY_Q4_K_S
});

Deno.test({
  name: "GGUF: stories260K with tok512 converts; the vocabulary and the greedy story survive",
  async fn() {
    const { config, weights } = await readCheckpoint(MODEL_PATH);
    const tokenizer = await readTokenizer(TOKENIZER_PATH, config.vocabSize);
    const bytes = llamaToGguf(config, weights, { tokenizer });
    const model = parseGgufModel(bytes, "stories260K.gguf");
    expect(model.config).toEqual(config);
    const read = model.tokenizer!;
    expect(read.pieces).toEqual(tokenizer.pieces);
    expect(read.scores).toEqual(tokenizer.scores);
    const file = parseGguf(bytes);
    const types = file.metadata.get("tokenizer.ggml.token_type")!.value as number[];
    const tokens = file.metadata.get("tokenizer.ggml.tokens")!.value as string[];
    expect(types.slice(0, 4)).toEqual([2, 3, 3, 6]); // unknown, BOS, EOS, <0x00>
    expect(tokens[3]).toBe("<0x00>");
    expect(tokens.some((t) => t.startsWith("\u2581"))).toBe(true); // SentencePiece's space mark
    // llama.cpp's gguf-py 0.19.0 reads this tensor of the q8_0 conversion as summing to:
    const q8 = parseGgufModel(llamaToGguf(config, weights, { format: "q8_0" }));
    expect(q8.weights.layers[0].wq.reduce((a, b) => a + b, 0)).toBeCloseTo(-23.837594032287598, 4);
    const prompt = tokenizer.encode("Once upon a time");
    expect(read.encode("Once upon a time")).toEqual(prompt);
    const options = { steps: 24, temperature: 0 };
    const fromBin = await generate(new CpuDecoder(config, weights), prompt, options);
    const fromGguf = await generate(new CpuDecoder(model.config, model.weights), prompt, options);
    expect(fromGguf.tokens).toEqual(fromBin.tokens);
  },
});

Deno.test("GGUF: bad input gets one clear error naming the field", () => {
  const good = handMadeGguf();
  const patched = (at: number, bytes: number[]) => {
    const copy = good.slice();
    copy.set(bytes, at);
    return copy;
  };
  expect(() => parseGguf(patched(0, [0x47, 0x47, 0x4d, 0x4c]), "x.gguf")).toThrow(
    'x.gguf: wrong magic "GGML" (expected "GGUF")',
  );
  expect(() => parseGguf(patched(4, [1]), "x.gguf")).toThrow(
    "x.gguf: unsupported GGUF version 1 (expected 2 or 3; version 1 had 32-bit counts, and llama.cpp no longer reads it)",
  );
  expect(() => parseGguf(patched(4, [4]), "x.gguf")).toThrow(
    "x.gguf: unsupported GGUF version 4 (expected 2 or 3)",
  );
  // A metadata count no file could hold fails before anything is allocated.
  expect(() => parseGguf(patched(16, [0xff, 0xff, 0xff, 0x7f]), "x.gguf")).toThrow(
    "x.gguf: 2147483647 metadata entries: needs 25769803764 bytes",
  );
  const answerCount = 91; // the "answer" array's item count: 24 + 28 + 4 + 13 + 14 + 4 + 4
  expect(() => parseGguf(patched(answerCount, [0, 0, 0, 0x10]), "x.gguf")).toThrow(
    "x.gguf: metadata answer (268435456 i32 items): needs 1073741824 bytes",
  );
  const tensorType = 136; // after 107 bytes of metadata, the name (9), n_dims (4), dims (16)
  expect(() => parseGguf(patched(tensorType, [10]), "x.gguf")).toThrow(
    "x.gguf: tensor w: unsupported ggml type 10 (Q2_K); expected F32 (0), F16 (1), Q4_0 (2), Q8_0 (8), Q4_K (12), Q5_K (13) or Q6_K (14)",
  );
  expect(() => parseGguf(patched(tensorType, [12]), "x.gguf")).toThrow(
    "x.gguf: tensor w: q4_k rows must be a multiple of 256 values, got 2",
  );
  expect(() => parseGguf(good.subarray(0, good.length - 4), "x.gguf")).toThrow(
    "x.gguf: tensor w: data at 160..184 runs past the end of the 180-byte file",
  );
  expect(() => parseGguf(patched(140, [32]), "x.gguf")).toThrow(
    "runs past the end",
  );
  expect(() => parseGguf(patched(140, [3]), "x.gguf")).toThrow(
    "x.gguf: tensor w: offset 3 is not a multiple of the alignment 32",
  );
  expect(() => parseGgufModel(good, "x.gguf")).toThrow(
    "x.gguf: missing metadata llama.vocab_size (and no tokenizer.ggml.tokens or token_embd.weight",
  );
  const config = makeConfig(shape);
  const model = llamaToGguf(config, randomWeights(config, 1));
  const file = parseGguf(model);
  file.metadata.set("llama.attention.head_count", { type: "string", value: "four" });
  expect(() => parseGgufModel(serializeGguf(file), "m.gguf")).toThrow(
    'm.gguf: metadata llama.attention.head_count: expected an integer, got string "four"',
  );
  const wrongDims = parseGguf(model);
  wrongDims.metadata.set("llama.feed_forward_length", { type: "u32", value: 128 });
  expect(() => parseGgufModel(serializeGguf(wrongDims), "m.gguf")).toThrow(
    "m.gguf: tensor blk.0.ffn_gate.weight: expected dims [64, 128], got [64, 96]",
  );
  const missing = parseGguf(model);
  missing.tensors.find((t) => t.name === "blk.1.attn_v.weight")!.name = "blk.1.attn_value";
  expect(() => parseGgufModel(serializeGguf(missing), "m.gguf")).toThrow(
    "m.gguf: missing tensor blk.1.attn_v.weight",
  );
});

Deno.test("GGUF: every truncation and 400 random byte mutations give a clear error or a valid file", () => {
  const config = makeConfig({ ...shape, nLayers: 1, dim: 32, hiddenDim: 32 });
  const bytes = llamaToGguf(config, randomWeights(config, 2), { format: "q8_0" });
  const headerEnd = parseGguf(bytes).tensors[0].data.byteOffset;
  const outcome = (input: Uint8Array) => {
    try {
      parseGgufModel(input, "f.gguf");
      return "ok";
    } catch (error) {
      if (!(error instanceof RangeError) || !error.message.startsWith("f.gguf: ")) throw error;
      return "error";
    }
  };
  for (let n = 0; n < headerEnd; n += 7) expect(outcome(bytes.subarray(0, n))).toBe("error");
  const rng = new Rng(9);
  for (let i = 0; i < 400; i++) {
    const mutated = bytes.slice();
    for (let k = 0; k < 3; k++) {
      mutated[Math.floor(rng.next() * headerEnd)] = rng.nextUint32() & 255;
    }
    outcome(mutated);
  }
});

Deno.test("GGUF: keys and tensor names must be printable ASCII within ggml's limits", () => {
  const config = makeConfig({ ...shape, nLayers: 1 });
  const file = parseGguf(llamaToGguf(config, randomWeights(config, 1)));
  file.metadata.set("general.na\nme", { type: "string", value: "x" });
  expect(() => parseGguf(serializeGguf(file), "k.gguf")).toThrow(
    'k.gguf: metadata entry 13 key: expected printable ASCII, got "general.na\\nme"',
  );
  file.metadata.delete("general.na\nme");
  // ggml's GGML_MAX_NAME is 64 with the terminating NUL: 63 bytes are the most a name has.
  file.tensors[0].name = "t".repeat(63);
  expect(parseGguf(serializeGguf(file)).tensors[0].name).toBe("t".repeat(63));
  file.tensors[0].name = "t".repeat(64);
  expect(() => serializeGguf(file)).toThrow(
    `tensor ${
      "t".repeat(64)
    }: name: expected at most 63 bytes (ggml's limit of 64 counts the terminating NUL), got 64`,
  );
  expect(() => parseGguf(handMadeGguf("t".repeat(64)), "k.gguf")).toThrow(
    "k.gguf: tensor 0 name: expected at most 63 bytes (ggml's limit of 64 counts the terminating NUL), got 64",
  );
});

Deno.test("GGUF: version 2 has version 3's layout: read, and written on request", () => {
  const v2 = handMadeGguf("w", 2);
  const file = parseGguf(v2, "v2.gguf");
  expect(file.version).toBe(2);
  const v3 = parseGguf(handMadeGguf("w", 3));
  expect(v3.version).toBe(3);
  expect([...file.metadata]).toEqual([...v3.metadata]);
  expect(file.tensors).toEqual(v3.tensors);
  expect(serializeGguf(file)).toEqual(v2); // the version it was read with
  expect(serializeGguf({ ...file, version: undefined })).toEqual(handMadeGguf("w", 3));
  expect(() => serializeGguf({ ...file, version: 1 })).toThrow("version: expected 2 or 3, got 1");
});

Deno.test("GGUF: Llama 3's 128,256-token vocabulary reads (no argument-spread stack overflow)", () => {
  const vocabSize = 128_256;
  const config = makeConfig({ ...shape, dim: 8, hiddenDim: 32, nLayers: 1, nHeads: 2, vocabSize });
  const pieces = ["<unk>", "<s>", "</s>"];
  for (let id = 3; id < vocabSize; id++) pieces.push(`p${id}`);
  pieces[vocabSize - 1] = "the longest piece of all"; // 24 bytes, the last one
  const tokenizer = Tokenizer.fromPieces(pieces, pieces.map((_, id) => -id));
  const model = parseGgufModel(llamaToGguf(config, randomWeights(config, 1), { tokenizer }));
  expect(model.config.vocabSize).toBe(vocabSize);
  expect(model.tokenizer!.vocabSize).toBe(vocabSize);
  expect(model.tokenizer!.maxPieceBytes).toBe(24);
  expect(model.tokenizer!.decode([vocabSize - 1])).toBe("the longest piece of all");
});

Deno.test("GGUF: llamaToGguf writes RoPE scaling as llama.cpp reads it, and refuses a sliding window", () => {
  const config = makeConfig({ ...shape, ropeScaling: { type: "linear", factor: 2.5 } });
  const bytes = llamaToGguf(config, randomWeights(config, 1));
  const metadata = parseGguf(bytes).metadata;
  expect(metadata.get("llama.rope.scaling.type")).toEqual({ type: "string", value: "linear" });
  expect(metadata.get("llama.rope.scaling.factor")).toEqual({ type: "f32", value: 2.5 });
  expect(parseGgufModel(bytes).config).toEqual(config);
  // llama.cpp's llama architecture has no sliding window: the file would attend to everything.
  const windowed = makeConfig({ ...shape, slidingWindow: 8 });
  expect(() => llamaToGguf(windowed, randomWeights(windowed, 1))).toThrow(
    "slidingWindow: GGUF llama models have no sliding window (llama.cpp would attend to every position), got 8",
  );
});
