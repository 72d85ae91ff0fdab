// GGUF files this project did not write: made by llama.cpp's gguf-py the way its converters write
// models, with llama.cpp's own logits beside them (tests/fixtures/gguf_py/README.md). Each must
// load, and every decoder must give llama.cpp's logits at every position.
import { expect } from "expect";
import {
  type BatchDecoder,
  CpuBatchDecoder,
  CpuDecoder,
  type Decoder,
  type GgufModel,
  ggufResidentBytes,
  GpuBatchDecoder,
  GpuDecoder,
  type LlamaConfig,
  parseGguf,
  parseGgufModel,
  readModelFile,
  readModelFileAsStored,
  serializeGguf,
} from "../model/mod.ts";
import { compare, type TensorFormat } from "../reference/mod.ts";
import { gpuTest } from "./_gpu.ts";

const DIR = new URL("./fixtures/gguf_py/", import.meta.url).pathname;

interface Fixture {
  name: string;
  version: number;
  format: TensorFormat;
  ropeScaling?: LlamaConfig["ropeScaling"];
  /**
   * Largest NMSE against llama.cpp's logits. F32: llama.cpp computes in f32 too (measured
   * 4e-13). F16: its F16 matmul path (measured 4e-7). Q8_0: llama.cpp quantizes the activations
   * to Q8_0 before each Q8_0 product (measured 3.7e-3; doing the same here gives 1e-19).
   * Ignoring a file's RoPE scaling gives an NMSE above 1.
   */
  nmse: number;
}

const FIXTURES: Fixture[] = [
  { name: "llama_v2_f16", version: 2, format: "f16", nmse: 1e-5 },
  {
    name: "llama_rope_linear_f32",
    version: 3,
    format: "f32",
    ropeScaling: { type: "linear", factor: 4 },
    nmse: 1e-10,
  },
  {
    name: "llama_scale_linear_q8_0",
    version: 3,
    format: "q8_0",
    ropeScaling: { type: "linear", factor: 2 },
    nmse: 1e-2,
  },
];

interface LlamaCppLogits {
  tokens: number[];
  vocab: number;
  logits: number[][];
}

async function load(name: string): Promise<[Uint8Array, GgufModel, LlamaCppLogits]> {
  const bytes = await Deno.readFile(`${DIR}${name}.gguf`);
  const expected = JSON.parse(await Deno.readTextFile(`${DIR}${name}.logits.json`));
  return [bytes, parseGgufModel(bytes, `${name}.gguf`), expected];
}

/** The logits a single-sequence decoder gives at each of `tokens`' positions. */
async function decodeAll(decoder: Decoder, tokens: number[]): Promise<Float32Array[]> {
  const out: Float32Array[] = [];
  for (const [pos, token] of tokens.entries()) out.push(await decoder.forward(token, pos));
  return out;
}

/** The same through a batched decoder: two sequences of the same tokens, a row each per step. */
async function decodeBatched(decoder: BatchDecoder, tokens: number[]): Promise<Float32Array[][]> {
  const out: Float32Array[][] = [[], []];
  for (const [pos, token] of tokens.entries()) {
    const [a, b] = await decoder.step([{ seq: 0, token, pos }, { seq: 1, token, pos }]);
    out[0].push(a);
    out[1].push(b);
  }
  return out;
}

/** Worst NMSE over the positions, and whether every position's argmax is llama.cpp's. */
function against(got: Float32Array[], expected: LlamaCppLogits): { nmse: number; argmax: boolean } {
  let nmse = 0;
  let argmax = true;
  expected.logits.forEach((row, pos) => {
    const want = Float32Array.from(row);
    nmse = Math.max(nmse, compare(got[pos], want).nmse);
    const best = (x: Float32Array) => x.reduce((b, v, i) => v > x[b] ? i : b, 0);
    argmax &&= best(got[pos]) === best(want);
  });
  return { nmse, argmax };
}

for (const fixture of FIXTURES) {
  Deno.test(`gguf-py ${fixture.name}: loads as llama.cpp reads it`, async () => {
    const [bytes, model] = await load(fixture.name);
    expect(parseGguf(bytes).version).toBe(fixture.version);
    expect(model.config).toMatchObject({
      dim: 32,
      hiddenDim: 64,
      nLayers: 2,
      nHeads: 4,
      nKvHeads: 2,
      vocabSize: 512,
      maxSeqLen: 64,
      sharedClassifier: false, // output.weight is its own tensor
    });
    expect(model.config.ropeScaling).toEqual(fixture.ropeScaling);
    expect(model.formats.get("output.weight")).toBe(fixture.format);
    expect(model.formats.get("blk.1.ffn_down.weight")).toBe(fixture.format);
    expect(model.formats.get("blk.1.ffn_norm.weight")).toBe("f32");
    // SentencePiece's spelling: <s> and </s> are BOS and EOS, U+2581 a space.
    const tokenizer = model.tokenizer!;
    const piece = (id: number) => new TextDecoder().decode(tokenizer.pieces[id]);
    expect([piece(0), piece(1), piece(2)]).toEqual(["<unk>", "<s>", "</s>"]);
    expect(tokenizer.encode("Once upon a time, there was a cat.")).toEqual(
      [1, 403, 407, 261, 378, 432, 383, 286, 261, 280, 294, 426],
    );
    expect(tokenizer.decode([1, 403, 407, 261, 378, 2])).toBe("Once upon a time");
  });

  Deno.test(`gguf-py ${fixture.name}: the CPU decoders give llama.cpp's logits`, async () => {
    const [, model, expected] = await load(fixture.name);
    const { config, weights } = model;
    const single = against(
      await decodeAll(new CpuDecoder(config, weights), expected.tokens),
      expected,
    );
    expect(single.nmse).toBeLessThan(fixture.nmse);
    expect(single.argmax).toBe(true);
    for (
      const sequence of await decodeBatched(new CpuBatchDecoder(config, weights), expected.tokens)
    ) {
      expect(against(sequence, expected).nmse).toBeLessThan(fixture.nmse);
    }
    if (config.ropeScaling) {
      // The control: the same file with its scaling ignored is far from llama.cpp.
      const unscaled = { ...config, ropeScaling: undefined };
      const ignored = against(
        await decodeAll(new CpuDecoder(unscaled, weights), expected.tokens),
        expected,
      );
      expect(ignored.nmse).toBeGreaterThan(0.5);
    }
  });

  gpuTest(`gguf-py ${fixture.name}: the WebGPU decoders give llama.cpp's logits`, async (gpu) => {
    const [, model, expected] = await load(fixture.name);
    const { config, weights } = model;
    const decoder = await GpuDecoder.create(gpu, config, weights);
    try {
      const single = against(await decodeAll(decoder, expected.tokens), expected);
      expect(single.nmse).toBeLessThan(fixture.nmse);
      expect(single.argmax).toBe(true);
    } finally {
      decoder.destroy();
    }
    const batch = await GpuBatchDecoder.create(gpu, config, weights);
    try {
      for (const sequence of await decodeBatched(batch, expected.tokens)) {
        expect(against(sequence, expected).nmse).toBeLessThan(fixture.nmse);
      }
    } finally {
      batch.destroy();
    }
  });
}

Deno.test("gguf-py files: RoPE scaling llama.cpp applies differently is refused, naming the key", async () => {
  const [bytes] = await load("llama_rope_linear_f32");
  const edited = (edit: (file: ReturnType<typeof parseGguf>) => void) => {
    const file = parseGguf(bytes);
    edit(file);
    return serializeGguf(file);
  };
  const yarn = edited((f) =>
    f.metadata.set("llama.rope.scaling.type", { type: "string", value: "yarn" })
  );
  expect(() => parseGgufModel(yarn, "y.gguf")).toThrow(
    'y.gguf: metadata llama.rope.scaling.type: RoPE scaling "yarn" is not supported (expected "linear" or "none")',
  );
  const none = edited((f) =>
    f.metadata.set("llama.rope.scaling.type", { type: "string", value: "none" })
  );
  expect(parseGgufModel(none).config.ropeScaling).toBeUndefined(); // llama.cpp: factor unused
  const negative = edited((f) =>
    f.metadata.set("llama.rope.scaling.factor", { type: "f32", value: -2 })
  );
  expect(() => parseGgufModel(negative, "n.gguf")).toThrow(
    "n.gguf: metadata llama.rope.scaling.factor: expected a finite factor >= 0, got -2",
  );
  const factors = edited((f) =>
    f.tensors.push({
      name: "rope_freqs.weight",
      dims: [4],
      format: "f32",
      data: new Uint8Array(16),
    })
  );
  expect(() => parseGgufModel(factors, "f.gguf")).toThrow(
    "f.gguf: tensor rope_freqs.weight: RoPE frequency factors are not supported",
  );
});

Deno.test("reading a GGUF file checks what it takes in memory: the file as stored, or with f32 tensors and --weights' copy", async () => {
  const path = `${DIR}llama_v2_f16.gguf`; // 115,680 bytes of 51,360 parameters
  const f32 = 115_680 + 4 * 51_360; // the file and its tensors dequantized: 321,120
  // Q8_0 copy: 2 tables of 512x32 and per layer 32x32 (2), 16x32 (2), 64x32 and 32x64 (3) in
  // 34-byte blocks of 32, plus f32 norms: 2·17,408 + 2·(2·1,088 + 2·544 + 3·2,176 + 256) + 128.
  const q8 = f32 + 55_040;
  // As stored (no --weights, or f16, which every matrix is): the file and 5 norms of 32 in f32.
  const stored = 115_680 + 5 * 32 * 4;
  const file = parseGguf(await Deno.readFile(path));
  expect(ggufResidentBytes(file, 115_680)).toBe(stored);
  expect(ggufResidentBytes(file, 115_680, "f16")).toBe(stored);
  expect(ggufResidentBytes(file, 115_680, "f32")).toBe(f32);
  expect(ggufResidentBytes(file, 115_680, "q8_0")).toBe(q8);
  const original = Deno.systemMemoryInfo;
  const machine = (total: number) => () => ({ ...original(), total });
  try {
    // 80% of 360 kB holds the file (the old check) but not its f32 tensors beside it.
    (Deno as { systemMemoryInfo: () => Deno.SystemMemoryInfo }).systemMemoryInfo = machine(
      360_000,
    );
    await expect(readModelFile(path)).rejects.toThrow(
      `${path}: the file, its weights dequantized to f32 need 0.3 MB, more than 80% of this machine's 0.4 MB of memory`,
    );
    await expect(readModelFileAsStored(path, { weights: "f32" })).rejects.toThrow(
      `${path}: the file, its weights dequantized to f32 need 0.3 MB`,
    );
    // Kept as stored, it holds the file and its norms: 116,320 bytes.
    expect("format" in (await readModelFileAsStored(path)).weights).toBe(true);
    expect("format" in (await readModelFileAsStored(path, { weights: "f16" })).weights).toBe(true);
    // 80% of 145 kB (116,000 bytes) holds the file (115,680) but not its norms beside it.
    (Deno as { systemMemoryInfo: () => Deno.SystemMemoryInfo }).systemMemoryInfo = machine(
      145_000,
    );
    await expect(readModelFileAsStored(path)).rejects.toThrow(
      `${path}: the file, its weights as stored, needs 0.1 MB, more than 80% of this machine's 0.1 MB of memory`,
    );
    // 80% of 460 kB holds that, not a Q8_0 copy too.
    (Deno as { systemMemoryInfo: () => Deno.SystemMemoryInfo }).systemMemoryInfo = machine(
      460_000,
    );
    expect((await readModelFile(path)).config.dim).toBe(32);
    await expect(readModelFile(path, { weights: "q8_0" })).rejects.toThrow(
      `${path}: the file, its weights dequantized to f32 and stored as q8_0 need 0.4 MB, more than 80% of this machine's 0.5 MB of memory`,
    );
    await expect(readModelFileAsStored(path, { weights: "q8_0" })).rejects.toThrow(
      `${path}: the file, its weights dequantized to f32 and stored as q8_0 need 0.4 MB`,
    );
    expect("format" in (await readModelFileAsStored(path, { weights: "f32" })).weights).toBe(false);
  } finally {
    (Deno as { systemMemoryInfo: typeof original }).systemMemoryInfo = original;
  }
});
