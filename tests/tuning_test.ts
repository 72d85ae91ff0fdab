import { expect } from "expect";
import {
  attentionKey,
  defaultChoice,
  isSoftwareAdapter,
  parseTuning,
  projectionKey,
  TuningTable,
} from "../gpu/tuning.ts";
import { makeConfig } from "../model/config.ts";
import { tune } from "../gpu/tune.ts";
import { gpuTest } from "./_gpu.ts";

const lavapipe = {
  vendor: "",
  architecture: "",
  device: "",
  description: "llvmpipe (LLVM 15.0.6, 256 bits)",
};
const discrete = { vendor: "nvidia", architecture: "hopper", device: "0x2335", description: "" };

function tuningText(choices: Record<string, unknown>): string {
  return JSON.stringify({ version: 1, adapter: discrete, deno: "2.9.6", choices });
}

Deno.test("software adapters are told apart from GPUs by what they report", () => {
  expect(isSoftwareAdapter(lavapipe)).toBe(true);
  expect(isSoftwareAdapter({ ...discrete, description: "SwiftShader Device (Subzero)" })).toBe(
    true,
  );
  expect(isSoftwareAdapter(discrete)).toBe(false);
});

Deno.test("defaults: row-per-invocation on software adapters, cooperative elsewhere", () => {
  const add = projectionKey("add", false, 1, 288, 768);
  const qkv = projectionKey("qkvRope", true, 1, 6144, 4096);
  expect(new TuningTable(lavapipe).choice(add)).toBe("row");
  expect(new TuningTable(discrete).choice(add)).toBe("coop256");
  expect(new TuningTable(discrete).choice(qkv)).toBe("coop256");
  expect(defaultChoice(projectionKey("add", false, 1, 768, 288), false)).toBe("multirow16");
  expect(defaultChoice(projectionKey("store", false, 64, 288, 288), true)).toBe("tiled");
  expect(defaultChoice(attentionKey(1, 32, 4, 128), false)).toBe("split16");
  expect(defaultChoice(attentionKey(64, 32, 4, 128), false)).toBe("tiled");
  expect(new TuningTable(lavapipe).fused).toBe(true);
  expect(() => new TuningTable(lavapipe, parseTuning(tuningText({})))).toThrow(
    /^tuning adapter: expected this adapter/,
  );
});

Deno.test("a tuning's choices override the defaults", () => {
  const add = projectionKey("add", false, 1, 288, 768);
  const tuning = parseTuning(tuningText({ [add]: "multirow8", decoder: "unfused" }));
  const table = new TuningTable(discrete, tuning);
  expect(table.choice(add)).toBe("multirow8");
  expect(table.choice(projectionKey("add", false, 1, 288, 288))).toBe("multirow16");
  expect(table.fused).toBe(false);
});

Deno.test("packed projections: keys end in the format, defaults and choices are packed variants", () => {
  const q8 = projectionKey("add", false, 1, 288, 768, "q8_0");
  expect(q8).toBe("projection add decode 288x768 q8_0");
  expect(defaultChoice(q8, true)).toBe("q8 row256");
  expect(defaultChoice(q8, false)).toBe("q8 lanes32");
  const f16 = projectionKey("siluMul", true, 1, 768, 288, "f16");
  expect(defaultChoice(f16, true)).toBe("f32 row");
  expect(defaultChoice(f16, false)).toBe("f32 lanes8");
  const table = new TuningTable(discrete, parseTuning(tuningText({ [q8]: "q8 lanes8" })));
  expect(table.choice(q8)).toBe("q8 lanes8");
  // a packed key takes packed names only, and a plain key plain ones
  expect(() => parseTuning(tuningText({ [q8]: "coop256" }))).toThrow(
    `tuning choices["${q8}"]: expected q8 row | q8 row256`,
  );
  expect(() => parseTuning(tuningText({ [projectionKey("add", false, 1, 288, 768)]: "q8 row" })))
    .toThrow(/expected row \| coop64/);
});

Deno.test("a bad tuning file is one clear error naming the field", () => {
  expect(() => parseTuning("{")).toThrow(/tuning: expected JSON/);
  expect(() => parseTuning(JSON.stringify({ version: 2 }))).toThrow(
    "tuning version: expected 1, got 2",
  );
  expect(() => parseTuning(tuningText({ "projection add decode 1x1": "fast" }))).toThrow(
    'tuning choices["projection add decode 1x1"]: expected row | coop64 | coop256 | multirow8 | multirow16 | subgroup64 | tiled, got "fast"',
  );
  expect(() => parseTuning(tuningText({ "attention decode 1/1x2": "split0" }))).toThrow(
    /expected split auto \| splitN \| tiled, got "split0"/,
  );
  expect(() => parseTuning(tuningText({ decoder: 3 }))).toThrow(
    'tuning choices["decoder"]: expected a string, got 3',
  );
  expect(() => parseTuning({ version: 1, adapter: null })).toThrow(
    "tuning adapter: expected an object, got null",
  );
});

gpuTest("tune checks and times every applicable variant and chooses a passing one", async (gpu) => {
  const config = makeConfig({
    dim: 16,
    hiddenDim: 24,
    nLayers: 1,
    nHeads: 4,
    nKvHeads: 2,
    vocabSize: 40,
    maxSeqLen: 20,
  });
  const { tuning, measurements } = await tune(gpu, config, {
    samples: 1,
    minSampleMs: 0,
    prefillRows: 18,
    // a few of each kind, to stay quick
    filter: (_, variant) => ["row", "multirow8", "tiled", "split auto", "split4"].includes(variant),
  });
  expect(measurements.every((m) => m.passed)).toBe(true);
  expect(tuning.adapter).toEqual(gpu.adapter);
  expect(tuning.deno).toBe(Deno.version.deno);
  const keys = new Set(measurements.map((m) => m.key));
  // decode and prefill: qkv, wo, w13, w2 and attention; the classifier once
  expect(keys.size).toBe(11);
  expect(keys.has("projection qkvRope+norm decode 16x16")).toBe(true);
  expect(keys.has("projection siluMul+norm prefill 24x16")).toBe(true);
  expect(keys.has("attention prefill 4/2x4")).toBe(true);
  for (const key of keys) {
    const chosen = measurements.find((m) => m.key === key && m.variant === tuning.choices[key]);
    const fastest = Math.min(...measurements.filter((m) => m.key === key).map((m) => m.ms));
    expect(chosen?.ms).toBe(fastest);
  }
  expect(measurements.filter((m) => m.key === "attention decode 4/2x4").map((m) => m.variant))
    .toEqual(["split auto", "split4"]);
  expect(measurements.filter((m) => m.key === "attention prefill 4/2x4").map((m) => m.variant))
    .toEqual(["split auto", "tiled"]);
  // the file round-trips through the parser
  expect(parseTuning(JSON.stringify(tuning))).toEqual(tuning);
});

gpuTest(
  "tune --weights q4_0 checks, times and chooses among the packed projections",
  async (gpu) => {
    const config = makeConfig({
      dim: 64,
      hiddenDim: 96,
      nLayers: 1,
      nHeads: 4,
      nKvHeads: 2,
      vocabSize: 40,
      maxSeqLen: 8,
    });
    // Q8 activations live in workgroup memory, over the GL backend's element budget: there the
    // float-activation variants are the candidates.
    const candidates = Number.isFinite(gpu.workgroupElementBudget)
      ? ["f32 row", "f32 lanes8"]
      : ["q8 row", "q8 lanes8"];
    const { tuning, measurements } = await tune(gpu, config, {
      samples: 1,
      minSampleMs: 0,
      prefillRows: 1,
      weights: "q4_0",
      filter: (key, variant) => key.endsWith(" q4_0") && candidates.includes(variant),
    });
    // qkv, wo, w13, w2, classifier: each measured, with both variants where the budget allows
    expect(new Set(measurements.map((m) => m.key)).size).toBe(5);
    if (!Number.isFinite(gpu.workgroupElementBudget)) expect(measurements.length).toBe(5 * 2);
    expect(measurements.every((m) => m.passed)).toBe(true);
    const key = "projection siluMul+norm decode 96x64 q4_0";
    expect(candidates).toContain(tuning.choices[key]);
    expect(parseTuning(JSON.stringify(tuning))).toEqual(tuning);
  },
);
