// Deno's WebGPU falls back to its GL backend where no Vulkan driver is installed. There wgpu
// zero-initializes workgroup memory with one store per array element, and Mesa's GLSL compiler
// takes superlinear time in them (llvmpipe: 256 elements 0.5 s, 1024 3-6 s, 4096 58 s per
// pipeline), so the kernels with workgroup arrays keep them small.
import { expect } from "expect";
import { attentionKernel } from "../gpu/attention/attention.ts";
import { tiledAttentionKernel } from "../gpu/attention/tiled.ts";
import { GL_WORKGROUP_ELEMENT_BUDGET } from "../gpu/_backend.ts";
import { conformanceCases, judgeCase } from "../gpu/conformance.ts";
import { Gpu } from "../gpu/device.ts";
import { batchAttentionKernel } from "../gpu/attention/batch.ts";
import { rmsNormKernel } from "../gpu/norm.ts";
import { argmaxKernel } from "../gpu/sampling.ts";
import { softmaxKernel } from "../gpu/softmax.ts";
import { projectionKernel, projectionVariant } from "../gpu/matmul/projection.ts";
import { gpuTest } from "./_gpu.ts";
import { captureWgsl, workgroupElements } from "./_wgsl.ts";

/** Workgroup-array elements a kernel may declare in all. */
const MAX_WORKGROUP_ELEMENTS = 257; // 256 and a scalar

gpuTest(
  "kernels declare at most 256 workgroup-array elements (GL compile time)",
  async (device) => {
    // unlimited by a budget: the layouts every adapter gets
    const gpu = new Gpu(device.device, device.adapterDescription, device.adapter);
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
  },
);

/** `gpu` with the GL backend's workgroup budget (itself where it has that budget already). */
function glBudgeted(gpu: Gpu): Gpu {
  return gpu.workgroupElementBudget === GL_WORKGROUP_ELEMENT_BUDGET
    ? gpu
    : new Gpu(gpu.device, gpu.adapterDescription, gpu.adapter, {
      workgroupElementBudget: GL_WORKGROUP_ELEMENT_BUDGET,
    });
}

gpuTest("kernels size their workgroup arrays to the budget", async (gpu) => {
  const unlimited = new Gpu(gpu.device, gpu.adapterDescription, gpu.adapter);
  const budgeted = glBudgeted(gpu);
  const budget = GL_WORKGROUP_ELEMENT_BUDGET;
  const both = async (build: (device: Gpu) => Promise<unknown>) => {
    const wide = captureWgsl(unlimited);
    const narrow = captureWgsl(budgeted);
    try {
      await build(unlimited);
      await build(budgeted);
    } finally {
      wide.restore();
      narrow.restore();
    }
    return { wide: workgroupElements(wide.codes[0]), narrow: workgroupElements(narrow.codes[0]) };
  };
  for (const headDim of [48, 64, 128, 257]) {
    const vectors = Math.ceil(headDim / 4);
    const tiled = await both((device) =>
      tiledAttentionKernel(device, { rows: 40, nHeads: 4, nKvHeads: 2, headDim })
    );
    // 32 keys of K and V (a vec4 per 4 features) and one word, or as many as 16 KiB hold
    const keys = Math.min(32, Math.floor(16368 / (32 * vectors)));
    expect(tiled.wide).toBe(2 * keys * vectors + 1);
    // within the budget, or a single key where not even one fits
    expect(tiled.narrow).toBe(
      2 * Math.max(1, Math.floor((budget - 1) / (2 * vectors))) * vectors + 1,
    );
    for (const nHeads of [1, 2, 4, 8]) {
      const attention = await both((device) =>
        attentionKernel(device, { rows: 1, nHeads, nKvHeads: 1, headDim, splits: 1 })
      );
      expect([headDim, nHeads, attention.wide]).toEqual([headDim, nHeads, 257]);
      expect([headDim, nHeads, attention.narrow]).toEqual([headDim, nHeads, budget + 1]);
    }
  }
  const argmax = await both((device) => argmaxKernel(device, 32000));
  expect([argmax.wide, argmax.narrow]).toEqual([256, budget]);
  const tiledProjection = await both((device) =>
    projectionKernel(
      device,
      { rows: 64, units: 768, inDim: 288 },
      { kind: "siluMul" },
      projectionVariant("tiled"),
    )
  );
  expect(tiledProjection.wide).toBeGreaterThan(budget);
  expect(tiledProjection.narrow).toBeLessThanOrEqual(budget);
});

gpuTest("kernels sized to the GL budget match their references", async (gpu) => {
  // on the GL backend the kernel tests (gpu_kernels_test.ts) run these very kernels
  if (gpu.workgroupElementBudget === GL_WORKGROUP_ELEMENT_BUDGET) return;
  const budgeted = glBudgeted(gpu);
  const cases = conformanceCases().filter((c) =>
    (c.kernel.startsWith("attention") || c.kernel === "argmax" ||
      (c.kernel.startsWith("projection") && c.variant === "tiled")) &&
    !c.unsupported(budgeted)
  );
  expect(cases.length).toBeGreaterThanOrEqual(30);
  for (const testCase of cases) {
    const result = await judgeCase(budgeted, testCase);
    const name = `${testCase.kernel} ${testCase.variant} ${testCase.shape}`;
    expect([name, result.error, result.passed]).toEqual([name, undefined, true]);
  }
});

gpuTest("layouts over the GL budget do not apply within it; row and tiled do", (gpu) => {
  const shape = { rows: 1, units: 768, inDim: 288 };
  const budgeted = glBudgeted(gpu);
  const unlimited = new Gpu(gpu.device, gpu.adapterDescription, gpu.adapter);
  for (const name of ["coop64", "coop256", "multirow8", "multirow16"]) {
    // a float per invocation for each of a pair's rows and for the norm
    expect([name, projectionVariant(name).applies(shape, unlimited)]).toEqual([name, true]);
    expect([name, projectionVariant(name).applies(shape, budgeted)]).toEqual([name, false]);
  }
  expect(projectionVariant("row").applies(shape, budgeted)).toBe(true);
  expect(projectionVariant("tiled").applies({ ...shape, rows: 64 }, budgeted)).toBe(true);
  return Promise.resolve();
});
