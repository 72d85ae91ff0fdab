import { expect } from "expect";
import { generateMain } from "../cli/generate.ts";
import {
  CpuDecoder,
  dequantizeWeights,
  makeConfig,
  preset,
  randomStoredWeights,
  randomWeights,
  storedWeightBytes,
  storeWeights,
  weightsBytes,
} from "../model/mod.ts";
import { parameterCount } from "../model/weights.ts";
import { compare, isKQuantFormat, TENSOR_FORMATS } from "../reference/mod.ts";

const config = makeConfig({
  dim: 64,
  hiddenDim: 72, // not a multiple of 32: w2 falls back to f16 in the block formats
  nLayers: 2,
  nHeads: 4,
  nKvHeads: 2,
  vocabSize: 40,
  maxSeqLen: 12,
  sharedClassifier: false,
});

Deno.test("random weights drawn straight into a format equal the float32 ones stored in it", () => {
  const f32 = randomWeights(config, 3);
  for (const format of TENSOR_FORMATS) {
    const direct = randomStoredWeights(config, 3, format);
    const stored = storeWeights(config, f32, format);
    expect(direct.layers[1].wv.bytes).toEqual(stored.layers[1].wv.bytes);
    expect(direct.classifier.bytes).toEqual(stored.classifier.bytes);
    expect(direct.layers[0].ffnNorm).toEqual(stored.layers[0].ffnNorm);
    // w2's rows of 72 are not whole blocks: f16, and for a K-quant, not even rows of 32
    expect(direct.layers[0].w2.format).toBe(format === "f32" ? "f32" : "f16");
    // w1's rows of 64: whole 32-value blocks, not 256-value ones (a K-quant falls back to q8_0)
    expect(direct.layers[0].w1.format).toBe(isKQuantFormat(format) ? "q8_0" : format);
    expect(weightsBytes(direct)).toBe(storedWeightBytes(config, format));
  }
  expect(storedWeightBytes(config, "f32")).toBe(parameterCount(config) * 4);
});

Deno.test("stored weight bytes: Llama-2-7B is 27 GB in f32, 3.8 GB in q4_0", () => {
  const llama = preset("Llama-2-7B");
  expect(storedWeightBytes(llama, "f32") / 1e9).toBeCloseTo(26.95, 1);
  expect(storedWeightBytes(llama, "f16") / 1e9).toBeCloseTo(13.48, 1);
  // Matrices at 18/32 bytes per weight, norms at 4.
  const norms = (2 * llama.nLayers + 1) * llama.dim * 4;
  expect(storedWeightBytes(llama, "q4_0")).toBe(
    (parameterCount(llama) - norms / 4) * 18 / 32 + norms,
  );
});

Deno.test("the CPU decoder over stored weights equals the float32 decoder over their dequantization", async () => {
  const weights = randomWeights(config, 4);
  for (const format of ["f16", "q8_0", "q4_0"] as const) {
    const stored = storeWeights(config, weights, format);
    const quantized = new CpuDecoder(config, stored);
    expect(quantized.weightBytes).toBe(storedWeightBytes(config, format));
    const plain = new CpuDecoder(config, dequantizeWeights(stored));
    for (const [pos, token] of [3, 17, 5].entries()) {
      const a = await quantized.forward(token, pos);
      const b = await plain.forward(token, pos);
      if (format === "f16") {
        for (let i = 0; i < a.length; i++) expect(a[i]).toBeCloseTo(b[i], 5);
      } else {
        // Q8_0/Q4_0 multiply Q8 activations (reference/q8_activations.ts): each quantized
        // projection adds an NMSE of about 1.6e-5; two layers hold six in series (Q/K/V, Wo,
        // W1/W3; w2 falls back to f16), so at most ~1e-4, here with a 4x margin, and not 0
        const { nmse } = compare(a, b);
        expect(nmse).toBeLessThan(4e-4);
        expect(nmse).toBeGreaterThan(1e-7);
      }
    }
  }
});

Deno.test("decoder precision options: KV bytes follow the format; bad names get one clear error", () => {
  const weights = randomWeights(config, 1);
  const bytes = (kvCache: "f32" | "f16" | "q8_0") =>
    new CpuDecoder(config, weights, { kvCache }).kvCacheBytes;
  expect(bytes("f32") / bytes("f16")).toBe(2);
  expect(bytes("f32") / bytes("q8_0")).toBe(128 / 34);
  expect(new CpuDecoder(config, weights, { kvCache: true }).kvFormat).toBe("f32");
  expect(new CpuDecoder(config, weights, { kvCache: false }).kvCache).toBe(false);
  expect(() => new CpuDecoder(config, weights, { weights: "q5_1" as "f16" })).toThrow(
    'weights: expected one of f32, f16, q8_0, q4_0, q6_k, q5_k, q4_k, got "q5_1"',
  );
  expect(() => new CpuDecoder(config, weights, { kvCache: "q4_0" as "f16" })).toThrow(
    'kvCache: expected one of f32, f16, q8_0, got "q4_0"',
  );
  expect(() => new CpuDecoder(config, storeWeights(config, weights, "q8_0"), { weights: "q4_0" }))
    .toThrow("weights: the stored weights are q8_0, the options ask for q4_0");
});

Deno.test("generate --weights --kv reports resident bytes; bad formats are usage errors", async () => {
  let stdout = "";
  let stderr = "";
  const io = { stdout: (t: string) => stdout += t, stderr: (t: string) => stderr += t };
  const args = ["--preset", "stories260K", "--tokens", "1", "--steps", "3", "--backend", "cpu"];
  expect(await generateMain([...args, "--weights", "q8_0", "--kv", "f16", "--json"], io)).toBe(0);
  const json = JSON.parse(stdout);
  expect([json.weights, json.kv]).toEqual(["q8_0", "f16"]);
  expect(json.weightBytes).toBe(storedWeightBytes(preset("stories260K"), "q8_0"));
  expect(json.kvCacheBytes).toBe(2 * 5 * 32 * 2 * 3); // f16, sized to the run: 1 + 3 - 1 positions
  stderr = "";
  expect(await generateMain([...args, "--weights", "q2_k"], io)).toBe(2);
  expect(stderr).toBe(
    'generate: --weights: expected one of f32, f16, q8_0, q4_0, q6_k, q5_k, q4_k, got "q2_k" (see --help)\n',
  );
  stderr = "";
  expect(await generateMain([...args, "--kv", "f16", "--no-kv-cache"], io)).toBe(2);
  expect(stderr).toContain("give --kv or --no-kv-cache, not both");
});

Deno.test({
  name: "--preset Llama-2-7B --weights q4_0 is refused with sizes where memory does not allow",
  ignore: Deno.systemMemoryInfo().total * 0.8 > 3.8e9,
  async fn() {
    let stderr = "";
    const io = { stdout: () => {}, stderr: (t: string) => stderr += t };
    expect(
      await generateMain(["--preset", "Llama-2-7B", "--weights", "q4_0", "--backend", "cpu"], io),
    )
      .toBe(1);
    expect(stderr).toMatch(/q4_0 weights need 3\.8 GB, more than 80% of this machine's/);
  },
});
