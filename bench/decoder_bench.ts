// `deno bench bench/`: one decode step per decoder variant, CPU reference (baseline) against
// WebGPU, on the stories15M shape with seeded random weights. A step is timed whole: submit to
// the logits back on the CPU.
import { requestGpu } from "../gpu/device.ts";
import type { Gpu } from "../gpu/device.ts";
import {
  CpuDecoder,
  type Decoder,
  GpuDecoder,
  makeConfig,
  preset,
  randomWeights,
} from "../model/mod.ts";

const gpu: Gpu | undefined = await navigator.gpu?.requestAdapter().then((
  a,
) => (a ? requestGpu() : undefined));
if (!gpu) console.warn("WebGPU benchmarks skipped: no adapter (install mesa-vulkan-drivers)");
const CONTEXT = 64;
const prompt = Array.from({ length: CONTEXT }, (_, i) => 3 + ((i * 7919) % 31000));

for (const [attention, nKvHeads] of [["MHA", 6], ["GQA-2", 3], ["MQA", 1]] as const) {
  const config = makeConfig({ ...preset("stories15M"), nKvHeads });
  const weights = randomWeights(config, 1);
  for (const kvCache of [true, false]) {
    const group = `stories15M ${attention} ${
      kvCache ? "KV cache" : "recompute"
    }, decode at ${CONTEXT}`;
    const bench = (
      name: string,
      make: () => Promise<Decoder>,
      baseline: boolean,
      ignore = false,
    ) => {
      let decoder: Decoder | undefined;
      Deno.bench({ name, group, baseline, ignore }, async (b) => {
        if (!decoder) {
          decoder = await make();
          await decoder.prefill(prompt);
        }
        b.start();
        await decoder.forward(5, CONTEXT);
        b.end();
      });
    };
    bench("reference", () => Promise.resolve(new CpuDecoder(config, weights, { kvCache })), true);
    bench("webgpu", () => GpuDecoder.create(gpu!, config, weights, { kvCache }), false, !gpu);
  }
}
