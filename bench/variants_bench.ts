/**
 * Side by side on this adapter: the unfused decoder (the original kernels) against the fused,
 * tuned one; decode ms/token and prefill tokens/s of a 64-token prompt at a preset's shape.
 * `deno run -A bench/variants_bench.ts [--preset NAME] [--tuning FILE] [--reps N]`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { preset } from "../model/config.ts";
import { GpuDecoder } from "../model/webgpu/decoder.ts";
import { randomWeights } from "../model/weights.ts";
import { requestGpu } from "../gpu/device.ts";
import { projectionKey } from "../gpu/tuning.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    preset: { type: "string", default: "stories15M" },
    tuning: { type: "string" },
    reps: { type: "string", default: "3" },
  },
});
const config = preset(values.preset!);
const weights = randomWeights(config, 1);
const gpu = await requestGpu();
const tuning = values.tuning ? await Deno.readTextFile(values.tuning) : undefined;
const unfused = JSON.stringify({
  version: 1,
  adapter: gpu.adapter,
  deno: Deno.version.deno,
  choices: { decoder: "unfused" },
});
// the defaults with every prefill projection forced back to one row per invocation: what the
// tiled matmul alone brings to prefill
const hd = config.dim / config.nHeads;
const [qDim, kvDim] = [config.nHeads * hd, config.nKvHeads * hd];
const rows = Math.min(64, config.maxSeqLen);
const rowPrefill = JSON.stringify({
  version: 1,
  adapter: gpu.adapter,
  deno: Deno.version.deno,
  choices: {
    [projectionKey("qkvRope", true, rows, (qDim + 2 * kvDim) / 2, config.dim)]: "row",
    [projectionKey("add", false, rows, config.dim, qDim)]: "row",
    [projectionKey("siluMul", true, rows, config.hiddenDim, config.dim)]: "row",
    [projectionKey("add", false, rows, config.dim, config.hiddenDim)]: "row",
  },
});
const modes: Record<string, string | undefined> = {
  unfused,
  "fused, defaults, row prefill": rowPrefill,
  "fused, defaults (tiled prefill)": undefined,
};
if (tuning) modes["fused, tuned"] = tuning;
const prompt = Array.from({ length: 64 }, (_, i) => (i * 37 + 1) % config.vocabSize);
const results: Record<string, { decodeMs: number[]; prefillTokS: number[]; dispatches: number }> =
  {};
for (let rep = 0; rep < Number(values.reps); rep++) {
  for (const [name, t] of Object.entries(modes)) {
    const decoder = await GpuDecoder.create(gpu, config, weights, { tuning: t });
    const r = results[name] ??= {
      decodeMs: [],
      prefillTokS: [],
      dispatches: await decoder.dispatchesPerToken(),
    };
    await decoder.prefill(prompt); // compiles the 64-row pass
    const start = performance.now();
    await decoder.prefill(prompt);
    r.prefillTokS.push(64 / ((performance.now() - start) / 1000));
    const steps = 65;
    const gen = await decoder.generate([1], steps);
    r.decodeMs.push(gen.decodeMs / (steps - 1));
    decoder.destroy();
  }
}
const fmt = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return `${s[Math.floor(s.length / 2)].toFixed(1)} (${s[0].toFixed(1)}-${
    s[s.length - 1].toFixed(1)
  })`;
};
console.log(`${values.preset} on ${gpu.adapterDescription}, ${values.reps} reps, median (min-max)`);
console.log("| decoder | dispatches/token | decode ms/token | prefill tok/s (64-token prompt) |");
console.log("| --- | --- | --- | --- |");
for (const [name, r] of Object.entries(results)) {
  console.log(`| ${name} | ${r.dispatches} | ${fmt(r.decodeMs)} | ${fmt(r.prefillTokS)} |`);
}
