// `deno bench bench/`: each kernel, CPU reference (the baseline) against WebGPU, at real LLaMA
// shapes. A WebGPU iteration is one submit of CALLS dispatches run to completion (awaiting the
// GPU costs ~10 ms on software adapters, so single tiny dispatches would time the wait); the
// reference makes the same CALLS calls.
import { requestGpu } from "../gpu/device.ts";
import type { Dispatch, Gpu } from "../gpu/device.ts";
import { attentionKernel } from "../gpu/attention.ts";
import { argmaxKernel } from "../gpu/argmax.ts";
import { matmulDispatches, uploadMatrix } from "../gpu/matmul.ts";
import { rmsNormKernel } from "../gpu/rms_norm.ts";
import { siluMulKernel } from "../gpu/swiglu.ts";
import { decodeAttention, matvec, rmsNorm, Rng, siluMul } from "../reference/mod.ts";
import { argmax } from "../reference/sampling.ts";

const CALLS = 32;
const gpu: Gpu | undefined = await navigator.gpu?.requestAdapter().then((
  a,
) => (a ? requestGpu() : undefined));
if (!gpu) console.warn("WebGPU benchmarks skipped: no adapter (install mesa-vulkan-drivers)");
const rng = new Rng(1);

function pair(
  group: string,
  reference: () => unknown,
  gpuDispatches: (gpu: Gpu) => Promise<Dispatch[]>,
) {
  Deno.bench({ name: `reference x${CALLS}`, group, baseline: true }, () => {
    for (let i = 0; i < CALLS; i++) reference();
  });
  let dispatches: Dispatch[] | undefined;
  Deno.bench({ name: `webgpu x${CALLS} (one submit)`, group, ignore: !gpu }, async (b) => {
    dispatches ??= await gpuDispatches(gpu!);
    const all = Array.from({ length: CALLS }, () => dispatches!).flat();
    b.start();
    await gpu!.submit(all);
    await gpu!.finish();
    b.end();
  });
}

for (const [outDim, inDim] of [[768, 288], [2048, 768], [5632, 2048]]) {
  const w = rng.uniformArray(outDim * inDim);
  const x = rng.uniformArray(inDim);
  pair(
    `matvec ${outDim}x${inDim}`,
    () => matvec(w, x, outDim, inDim),
    (gpu) =>
      matmulDispatches(gpu, uploadMatrix(gpu, w, outDim, inDim), {
        rows: 1,
        x: gpu.upload(x),
        out: gpu.createBuffer(outDim * 4),
      }),
  );
}

for (const dim of [768, 2048, 4096]) {
  const x = rng.uniformArray(dim);
  const weight = rng.uniformArray(dim);
  pair(`rmsNorm ${dim}`, () => rmsNorm(x, weight), async (gpu) => [
    (await rmsNormKernel(gpu, { rows: 1, dim })).bind({
      x: gpu.upload(x),
      weight: gpu.upload(weight),
      out: gpu.createBuffer(dim * 4),
    }),
  ]);
}

for (const hidden of [2048, 5632]) {
  const gate = rng.uniformArray(hidden);
  const up = rng.uniformArray(hidden);
  pair(`siluMul ${hidden}`, () => siluMul(gate, up), async (gpu) => [
    (await siluMulKernel(gpu, hidden)).bind({ gate: gpu.upload(gate), up: gpu.upload(up) }),
  ]);
}

for (const [nHeads, nKvHeads, headDim, context] of [[12, 12, 64, 256], [32, 4, 64, 512]]) {
  const q = rng.uniformArray(nHeads * headDim);
  const keys = rng.uniformArray(context * nKvHeads * headDim);
  const values = rng.uniformArray(context * nKvHeads * headDim);
  const shape = { nHeads, nKvHeads, headDim };
  pair(
    `attention decode ${nHeads}/${nKvHeads}x${headDim} ctx ${context}`,
    () => decodeAttention(q, keys, values, context - 1, shape),
    async (gpu) =>
      (await attentionKernel(gpu, { rows: 1, ...shape })).bind({
        q: gpu.upload(q),
        keyCache: gpu.upload(keys),
        valueCache: gpu.upload(values),
        state: gpu.upload(Uint32Array.of(0, context - 1, 0, 0)),
        out: gpu.createBuffer(q.length * 4),
      }),
  );
}

{
  const logits = rng.uniformArray(32000);
  pair("argmax 32000", () => argmax(logits), async (gpu) => [
    (await argmaxKernel(gpu, 32000)).bind({
      logits: gpu.upload(logits),
      state: gpu.createBuffer(16),
    }),
  ]);
}
