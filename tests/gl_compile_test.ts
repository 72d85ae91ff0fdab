// Deno's WebGPU falls back to its GL backend where no Vulkan driver is installed. There wgpu
// zero-initializes workgroup memory with one store per array element, and Mesa's GLSL compiler
// takes superlinear time in them (llvmpipe: 256 elements 0.5 s, 1024 3-6 s, 4096 58 s per
// pipeline), so the kernels with workgroup arrays keep them small.
import { expect } from "expect";
import { attentionKernel } from "../gpu/attention.ts";
import { batchAttentionKernel } from "../gpu/batch_attention.ts";
import { rmsNormKernel } from "../gpu/norm.ts";
import { argmaxKernel } from "../gpu/sampling.ts";
import { softmaxKernel } from "../gpu/softmax.ts";
import { projectionKernel, projectionVariant } from "../gpu/projection.ts";
import { gpuTest } from "./_gpu.ts";
import { captureWgsl, workgroupElements } from "./_wgsl.ts";

/** Workgroup-array elements a kernel may declare in all. */
const MAX_WORKGROUP_ELEMENTS = 257; // 256 and a scalar

gpuTest("kernels declare at most 256 workgroup-array elements (GL compile time)", async (gpu) => {
  const { codes, restore } = captureWgsl(gpu);
  try {
    // Compiling is enough: the GL backend compiles lazily, at the first dispatch.
    for (const nHeads of [1, 2, 3, 4, 8, 16]) {
      for (const headDim of [48, 128, 257]) {
        await attentionKernel(gpu, { rows: 1, nHeads, nKvHeads: 1, headDim, splits: 1 });
      }
    }
    for (const headDim of [48, 128, 257]) {
      await batchAttentionKernel(gpu, {
        rows: 4,
        nHeads: 8,
        nKvHeads: 2,
        headDim,
        blockSize: 16,
        ring: false,
      });
    }
    await argmaxKernel(gpu, 32000);
    await argmaxKernel(gpu, 32000, { temperature: 0.8, seed: 1 });
    await rmsNormKernel(gpu, { rows: 1, dim: 4096 });
    await softmaxKernel(gpu, { rows: 1, n: 32000 });
    // every projection layout but coop256 (a 256-invocation workgroup needs 256-float arrays)
    for (const name of ["row", "coop64", "multirow8", "multirow16", "tiled"]) {
      const variant = projectionVariant(name);
      for (const kind of ["add", "siluMul"] as const) {
        await projectionKernel(gpu, { rows: 64, units: 768, inDim: 288 }, { kind }, variant, {
          norm: true,
        });
      }
    }
    const withWorkgroupMemory = codes.filter(({ code }) => code.includes("var<workgroup>"));
    expect(withWorkgroupMemory.length).toBeGreaterThanOrEqual(18 + 3 + 2 + 2);
    for (const pipeline of withWorkgroupMemory) {
      expect([pipeline.kernel, workgroupElements(pipeline) <= MAX_WORKGROUP_ELEMENTS])
        .toEqual([pipeline.kernel, true]);
    }
  } finally {
    restore();
  }
});
