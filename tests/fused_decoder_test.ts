import { expect } from "expect";
import { tinyConfig } from "./_config.ts";
import { CpuDecoder, GpuDecoder, type LlamaConfig, randomWeights } from "../model/mod.ts";
import { headDim } from "../model/config.ts";
import { attentionKey, projectionKey, type Tuning } from "../gpu/tuning.ts";
import { projectionVariant } from "../gpu/matmul/projection.ts";
import { compare } from "../reference/mod.ts";
import type { Gpu } from "../gpu/device.ts";
import { gpuTest } from "./_gpu.ts";

const TOKENS = [1, 17, 4, 99, 250, 3, 3, 61, 128, 7, 255, 42];

/** A tuning choosing `projection` for every decode projection and `attention` for decode. */
function tuningFor(
  gpu: Gpu,
  config: LlamaConfig,
  decoder: "fused" | "unfused",
  projection: string,
  attention: string,
  prefill = "tiled",
): Tuning {
  const { dim, hiddenDim, nHeads, nKvHeads, vocabSize } = config;
  const hd = headDim(config);
  const [qDim, kvDim] = [nHeads * hd, nKvHeads * hd];
  const choices: Record<string, string> = { decoder };
  for (const rows of [1, 5]) {
    const variant = rows === 1 ? projection : prefill;
    choices[projectionKey("qkvRope", true, rows, (qDim + 2 * kvDim) / 2, dim)] = variant;
    choices[projectionKey("add", false, rows, dim, qDim)] = variant;
    choices[projectionKey("siluMul", true, rows, hiddenDim, dim)] = variant;
    choices[projectionKey("add", false, rows, dim, hiddenDim)] = variant;
  }
  choices[projectionKey("store", false, 1, vocabSize, dim)] = projection;
  choices[attentionKey(1, nHeads, nKvHeads, hd)] = attention;
  choices[attentionKey(5, nHeads, nKvHeads, hd)] = prefill === "tiled" ? "tiled" : "split auto";
  return { version: 1, adapter: gpu.adapter, deno: Deno.version.deno, choices };
}

/**
 * coop64 and multirow8 declare 3 x 64 workgroup elements: over the GL backend's budget (128),
 * where they do not apply (as `subgroup64` does not without subgroups).
 */
function layoutApplies(gpu: Gpu, projection: string): boolean {
  return projectionVariant(projection).applies({ rows: 1, units: 64, inDim: 64 }, gpu);
}

const RUNS = [
  ["fused, row-per-invocation", "fused", "row", "split1"],
  ["fused, cooperative", "fused", "coop64", "split4"],
  ["fused, multirow split-K", "fused", "multirow8", "split auto"],
  ["unfused", "unfused", "row", "split auto"],
] as const;

for (const [name, nKvHeads] of [["MHA", 8], ["GQA", 2], ["MQA", 1]] as const) {
  // every layout once (on GQA), fused and unfused on each attention form
  for (const [label, mode, projection, attention] of RUNS) {
    if (name !== "GQA" && projection !== "row") continue;
    gpuTest(
      `${name}, ${label}: WebGPU logits match the CPU reference at every position`,
      async (gpu) => {
        if (!layoutApplies(gpu, projection)) return;
        const config = tinyConfig({
          dim: 64,
          hiddenDim: 100,
          nLayers: 2,
          nHeads: 8,
          nKvHeads,
          vocabSize: 300,
          maxSeqLen: 32,
          sharedClassifier: nKvHeads !== 2,
        });
        const weights = randomWeights(config, 5);
        const tuning = tuningFor(gpu, config, mode, projection, attention);
        const decoder = await GpuDecoder.create(gpu, config, weights, {
          tuning: mode === "fused" && projection === "coop64" ? JSON.stringify(tuning) : tuning,
          maxPrefillRows: 5,
        });
        expect(decoder.tuning.fused).toBe(mode === "fused");
        const cpu = new CpuDecoder(config, weights);
        // a prefill of 5-row chunks (tiled projections and attention), then one token at a time
        const prompt = TOKENS.slice(0, 7);
        const prefillStats = compare(await decoder.prefill(prompt), await cpu.prefill(prompt));
        expect(prefillStats.nmse).toBeLessThanOrEqual(1e-6);
        for (let pos = 0; pos < TOKENS.length; pos++) {
          const expected = await cpu.forward(TOKENS[pos], pos);
          const stats = compare(await decoder.forward(TOKENS[pos], pos), expected);
          expect(stats.firstNonFinite).toBe(-1);
          expect(stats.nmse).toBeLessThanOrEqual(1e-6);
        }
        decoder.destroy();
      },
    );
  }
}

gpuTest("the fused decode step is 5 dispatches per layer, 6 when attention splits", async (gpu) => {
  const config = tinyConfig({
    dim: 32,
    hiddenDim: 48,
    nLayers: 3,
    nHeads: 4,
    nKvHeads: 2,
    vocabSize: 100,
    maxSeqLen: 16,
  });
  const weights = randomWeights(config, 2);
  const count = async (tuning: Tuning) => {
    const decoder = await GpuDecoder.create(gpu, config, weights, { tuning });
    const n = await decoder.dispatchesPerToken();
    decoder.destroy();
    return n;
  };
  // embedding, layers, final norm, classifier, token choice (finite check, argmax, advance)
  expect(await count(tuningFor(gpu, config, "fused", "row", "split1"))).toBe(1 + 5 * 3 + 1 + 1 + 3);
  expect(await count(tuningFor(gpu, config, "fused", "row", "split2"))).toBe(1 + 6 * 3 + 1 + 1 + 3);
  // unfused: norm, q, k, v, 2 RoPE, append, attention and its combine (the kernel's own split
  // here), wo, add, norm, w1, w3, gate, w2, add
  expect(await count(tuningFor(gpu, config, "unfused", "row", "split1"))).toBe(
    1 + 17 * 3 + 1 + 1 + 3,
  );
});

gpuTest(
  "a bad tuning, or one from another adapter, is rejected before anything is uploaded",
  async (gpu) => {
    const config = tinyConfig({
      dim: 8,
      hiddenDim: 12,
      nLayers: 1,
      nHeads: 2,
      nKvHeads: 1,
      vocabSize: 10,
      maxSeqLen: 4,
    });
    await expect(GpuDecoder.create(gpu, config, randomWeights(config), { tuning: "{}" }))
      .rejects.toThrow("tuning version: expected 1, got undefined");
    const elsewhere = {
      ...tuningFor(gpu, config, "fused", "row", "split1"),
      adapter: { vendor: "nvidia", architecture: "hopper", device: "0x2335", description: "" },
    };
    await expect(GpuDecoder.create(gpu, config, randomWeights(config), { tuning: elsewhere }))
      .rejects.toThrow(/^tuning adapter: expected this adapter .* got one measured on .*hopper/);
    // a tuning's own choice that cannot run this shape: the prefill-only tiled layout for decode
    const wrong = tuningFor(gpu, config, "fused", "tiled", "split1");
    await expect(GpuDecoder.create(gpu, config, randomWeights(config), { tuning: wrong }))
      .rejects.toThrow("tuning: variant tiled does not apply to 1x");
  },
);

gpuTest("fused matrices split past the binding limit give the CPU's logits", async (gpu) => {
  // wqkv (96 rows) and w13 (128 rows) of 48 floats split into 64-row blocks at 12 KiB
  const config = tinyConfig({
    dim: 48,
    hiddenDim: 64,
    nLayers: 2,
    nHeads: 4,
    nKvHeads: 2,
    vocabSize: 300,
    maxSeqLen: 32,
  });
  const weights = randomWeights(config, 9);
  for (const projection of ["row", "multirow8"].filter((p) => layoutApplies(gpu, p))) {
    const decoder = await GpuDecoder.create(gpu, config, weights, {
      tuning: tuningFor(gpu, config, "fused", projection, "split2"),
      maxBindingBytes: 64 * 48 * 4,
      maxPrefillRows: 5,
    });
    const cpu = new CpuDecoder(config, weights);
    expect(compare(await decoder.prefill(TOKENS), await cpu.prefill(TOKENS)).nmse)
      .toBeLessThanOrEqual(1e-6);
    decoder.destroy();
  }
});
