// The Q4_K_M-shaped fixture (tests/fixtures/q4_k_m.gguf, written by llama.cpp's gguf-py with
// tests/fixtures/make_kquant_fixtures.py): read as llama.cpp lays it out, its blocks decoded to
// the weights they were made from, then run on both backends with its matrices as stored.
import { expect } from "expect";
import { generateMain } from "../cli/generate.ts";
import { CpuDecoder } from "../model/cpu_decoder.ts";
import { GpuDecoder } from "../model/webgpu/decoder.ts";
import { generate } from "../model/generate.ts";
import { measureAccuracy } from "../model/accuracy.ts";
import { parseGguf } from "../model/formats/gguf.ts";
import {
  ggufResidentBytes,
  ggufToLlama,
  ggufToStored,
  readModelFile,
  readModelFileAsStored,
} from "../model/formats/gguf_llama.ts";
import { dequantizeWeights, weightsBytes } from "../model/precision.ts";
import { randomWeights } from "../model/weights.ts";
import { Rng } from "../reference/random.ts";
import { gpuTest } from "./_gpu.ts";

const PATH = new URL("./fixtures/q4_k_m.gguf", import.meta.url).pathname;
const bytes = await Deno.readFile(PATH);
/** The seed the script drew the float32 weights with (`MODEL_SEED`). */
const MODEL_SEED = 7;

function load() {
  return ggufToStored(parseGguf(bytes, "q4_k_m.gguf"), "q4_k_m.gguf");
}

function nmse(actual: Float32Array, expected: Float32Array): number {
  let error = 0;
  let norm = 0;
  for (let i = 0; i < expected.length; i++) {
    error += (actual[i] - expected[i]) ** 2;
    norm += expected[i] ** 2;
  }
  return error / norm;
}

Deno.test("the Q4_K_M fixture reads with llama.cpp's layout: Q4_K matrices, Q6_K output and half of ffn_down", () => {
  const model = load();
  expect(model.config).toMatchObject({
    dim: 256,
    hiddenDim: 256,
    nLayers: 2,
    nHeads: 8,
    nKvHeads: 1,
    vocabSize: 128,
    maxSeqLen: 64,
    sharedClassifier: false,
  });
  const formats = Object.fromEntries(model.formats);
  expect(formats).toMatchObject({
    "token_embd.weight": "q4_k",
    "blk.0.attn_q.weight": "q4_k",
    "blk.0.attn_k.weight": "q5_k",
    "blk.0.attn_v.weight": "q4_k",
    "blk.0.ffn_down.weight": "q4_k",
    "blk.1.attn_v.weight": "q6_k",
    "blk.1.ffn_down.weight": "q6_k",
    "blk.1.ffn_up.weight": "q4_k",
    "output.weight": "q6_k",
    "output_norm.weight": "f32",
  });
  expect(model.weights.format).toBe("q4_k"); // most parameters
  expect(model.weights.layers[1].w2.format).toBe("q6_k");
  // Held as stored: views into the file, 144/176/210 bytes per 256 weights.
  expect(model.weights.layers[0].wq.bytes.buffer).toBe(bytes.buffer);
  expect(model.weights.classifier.bytes.length).toBe(128 * 210);
  // Embedding, layer 0 (five 256x256 Q4_K, attn_k Q5_K, attn_v Q4_K), layer 1 (four Q4_K,
  // attn_k Q5_K, attn_v and ffn_down Q6_K), output Q6_K.
  const tensorBytes = 128 * 144 + (5 * 256 * 144 + 32 * 176 + 32 * 144) +
    (4 * 256 * 144 + 32 * 176 + 32 * 210 + 256 * 210) + 128 * 210;
  expect(weightsBytes(model.weights)).toBe(tensorBytes + 5 * 256 * 4);
  // By hand, best score (lowest id) first: ▁t, ▁a, on, ▁O, ce, im, ▁u, ▁up, ▁upon; "▁On",
  // "nce" and "▁tim" are not pieces, so ▁O n ce and ▁t im e stay apart.
  expect(model.tokenizer!.encode("Once upon a time")).toEqual([1, 97, 17, 98, 106, 81, 75, 100, 8]);
});

Deno.test("the fixture's K-quant blocks decode to the float32 weights gguf-py quantized", () => {
  const { config, weights } = ggufToLlama(parseGguf(bytes, "q4_k_m.gguf"), "q4_k_m.gguf");
  // The script drew these with a port of Rng, in randomWeights' order: the norms, stored f32,
  // are the same floats; the matrices within their formats' error (uniform weights: a 4-bit
  // grid over each sub-block's range gives NMSE near 1/225, 5 bits 1/961, 6 bits 1/3969).
  const original = randomWeights(config, MODEL_SEED);
  expect(weights.layers[1].ffnNorm).toEqual(original.layers[1].ffnNorm);
  expect(weights.finalNorm).toEqual(original.finalNorm);
  const cases: [string, Float32Array, Float32Array, number][] = [
    ["token_embd (q4_k)", weights.tokenEmbedding, original.tokenEmbedding, 1 / 225],
    ["blk.0.attn_q (q4_k)", weights.layers[0].wq, original.layers[0].wq, 1 / 225],
    ["blk.0.attn_k (q5_k)", weights.layers[0].wk, original.layers[0].wk, 1 / 961],
    ["blk.1.attn_v (q6_k)", weights.layers[1].wv, original.layers[1].wv, 1 / 3969],
    ["blk.1.ffn_down (q6_k)", weights.layers[1].w2, original.layers[1].w2, 1 / 3969],
    ["output (q6_k)", weights.classifier, original.classifier, 1 / 3969],
  ];
  for (const [name, actual, expected, uniformNmse] of cases) {
    const error = nmse(actual, expected);
    // Within 2x of the grid's error (its scales are rounded to 6 bits), and not exact.
    expect({ name, ok: error > uniformNmse / 4 && error < uniformNmse * 2 }).toEqual({
      name,
      ok: true,
    });
  }
});

const PROMPT = "Once upon a time";

/** Teacher-forced tokens: the prompt, then seeded random ids. */
function accuracyTokens(prompt: number[], vocabSize: number, count: number): number[] {
  const rng = new Rng(5);
  return [
    ...prompt,
    ...Array.from({ length: count - prompt.length }, () => rng.nextUint32() % vocabSize),
  ];
}

Deno.test("the fixture generates on the CPU from its blocks as stored, as from them dequantized", async () => {
  const { config, weights, tokenizer } = load();
  const prompt = tokenizer!.encode(PROMPT);
  const options = { steps: 24, temperature: 0 };
  const stored = await generate(new CpuDecoder(config, weights), prompt, options);
  const floats = await generate(
    new CpuDecoder(config, dequantizeWeights(weights)),
    prompt,
    options,
  );
  expect(stored.tokens).toHaveLength(24);
  expect(stored.tokens).toEqual(floats.tokens);
  expect(tokenizer!.decode([...prompt, ...stored.tokens]).startsWith(PROMPT)).toBe(true);
  // Accuracy against the float32 model the file was quantized from, over 40 positions.
  const tokens = accuracyTokens(prompt, config.vocabSize, 41);
  const report = await measureAccuracy(
    new CpuDecoder(config, weights),
    new CpuDecoder(config, randomWeights(config, MODEL_SEED)),
    tokens,
  );
  console.log(
    `Q4_K_M fixture vs float32: logit NMSE ${report.meanNmse.toExponential(2)}, mean KL ${
      report.kl.mean.toExponential(2)
    } nats, same top-1 ${(report.sameTop1.mean * 100).toFixed(0)}%`,
  );
  expect(report.meanNmse).toBeGreaterThan(0);
  expect(report.meanNmse).toBeLessThan(0.02);
  expect(report.sameTop1.mean).toBeGreaterThanOrEqual(0.75);
  expect(report.kl.mean).toBeGreaterThan(0);
});

gpuTest("the fixture generates on WebGPU with K-quant kernels, as on the CPU", async (gpu) => {
  const { config, weights, tokenizer } = load();
  const prompt = tokenizer!.encode(PROMPT);
  const options = { steps: 24, temperature: 0 };
  const decoder = await GpuDecoder.create(gpu, config, weights);
  try {
    // Packed: the K-quant matrices' bytes (q6_k's f16 scales moved apart, no padding), the
    // norms, and the embedding table dequantized for the lookup.
    const matrices = weightsBytes(weights) - 5 * 256 * 4 - 128 * 144;
    expect(decoder.weightBytes).toBe(matrices + 5 * 256 * 4 + 128 * 256 * 4);
    const onGpu = await generate(decoder, prompt, options);
    const onCpu = await generate(new CpuDecoder(config, weights), prompt, options);
    expect(onGpu.tokens).toEqual(onCpu.tokens);
  } finally {
    decoder.destroy();
  }
  const tokens = accuracyTokens(prompt, config.vocabSize, 41);
  const gpuDecoder = await GpuDecoder.create(gpu, config, weights);
  try {
    const report = await measureAccuracy(gpuDecoder, new CpuDecoder(config, weights), tokens);
    expect(report.sameTop1.mean).toBe(1);
    expect(report.maxNmse).toBeLessThan(1e-9);
  } finally {
    gpuDecoder.destroy();
  }
});

Deno.test("generate --model q4_k_m.gguf holds the weights as stored and says so", async () => {
  let stdout = "";
  let stderr = "";
  const io = { stdout: (t: string) => stdout += t, stderr: (t: string) => stderr += t };
  const args = ["--model", PATH, "--prompt", PROMPT, "--steps", "8", "--temperature", "0"];
  expect(await generateMain([...args, "--backend", "cpu"], io)).toBe(0);
  expect(stdout.startsWith(PROMPT)).toBe(true);
  const { weights } = load();
  expect(stderr).toContain(
    `resident: weights q4_k (q4_k, q6_k, q5_k) ${(weightsBytes(weights) / 2 ** 20).toFixed(3)} MiB`,
  );
  stdout = "";
  expect(await generateMain([...args, "--backend", "cpu", "--json"], io)).toBe(0);
  const json = JSON.parse(stdout);
  expect([json.weights, json.weightBytes]).toEqual(["q4_k", weightsBytes(weights)]);
  // Asked for another format: dequantized, then stored in it.
  stdout = "";
  expect(await generateMain([...args, "--backend", "cpu", "--json", "--weights", "q8_0"], io))
    .toBe(0);
  expect(JSON.parse(stdout).weights).toBe("q8_0");
});

Deno.test("the memory check counts the Q4_K_M file as stored, not its weights in f32", async () => {
  const file = parseGguf(bytes);
  const size = 462_976;
  expect(bytes.length).toBe(size);
  // As stored: the file and its 5 norm vectors of 256 in f32.
  const stored = size + 5 * 256 * 4;
  // Dequantized: 754,944 parameters (2 tables of 128x256; per layer 4 of 256x256 and 2 of
  // 32x256 in attention, 3 of 256x256 in the FFN, 2 norms; the final norm) in f32.
  const f32 = size + 4 * 754_944;
  expect(ggufResidentBytes(file, size)).toBe(stored);
  expect(ggufResidentBytes(file, size, "f32")).toBe(f32);
  // q4_k is asked, but the file mixes in q5_k and q6_k: a Q4_K copy is made, 144 bytes a
  // super-block: 2·18,432 + 2·(5·36,864 + 2·4,608 + 2,048) + 1,024.
  expect(ggufResidentBytes(file, size, "q4_k")).toBe(f32 + 429_056);
  const original = Deno.systemMemoryInfo;
  try {
    // 80% of 1 MB holds the file as stored, not its f32 weights (3.5 MB).
    (Deno as { systemMemoryInfo: () => Deno.SystemMemoryInfo }).systemMemoryInfo = () => ({
      ...original(),
      total: 1_000_000,
    });
    expect("format" in (await readModelFileAsStored(PATH)).weights).toBe(true);
    await expect(readModelFile(PATH)).rejects.toThrow(
      `${PATH}: the file, its weights dequantized to f32 need 3.5 MB, more than 80% of this machine's 1.0 MB of memory`,
    );
    await expect(readModelFileAsStored(PATH, { weights: "q8_0" })).rejects.toThrow(
      `${PATH}: the file, its weights dequantized to f32 and stored as q8_0 need`,
    );
    let stderr = "";
    const io = { stdout: () => {}, stderr: (t: string) => stderr += t };
    const run = ["--model", PATH, "--tokens", "1", "--steps", "2", "--backend", "cpu"];
    expect(await generateMain(run, io)).toBe(0);
    expect(await generateMain([...run, "--weights", "f32"], io)).toBe(1);
    expect(stderr).toContain(
      "its weights dequantized to f32 need 3.5 MB, more than 80% of this machine's 1.0 MB",
    );
  } finally {
    (Deno as { systemMemoryInfo: typeof original }).systemMemoryInfo = original;
  }
});

Deno.test("a K-quant block with an infinite scale is refused, naming the tensor", () => {
  const file = parseGguf(bytes.slice(), "bad.gguf");
  const embedding = file.tensors.find((t) => t.name === "token_embd.weight")!;
  // Block 1 (bytes 144..287) keeps d at 144 and dmin at 146: dmin becomes f16 0x7c00, infinity.
  embedding.data.set([0x00, 0x7c], 146);
  expect(() => ggufToStored(file, "bad.gguf")).toThrow(
    "bad.gguf: tensor token_embd.weight holds a non-finite q4_k value at index 256",
  );
});
