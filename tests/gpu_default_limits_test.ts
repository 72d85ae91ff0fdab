import { expect } from "expect";
import { CpuDecoder, GpuDecoder, makeConfig, preset } from "../model/mod.ts";
import { tabledF16Weights } from "../model/precision.ts";
import { requestGpu } from "../gpu/device.ts";
import { conformanceCases, judgeCase } from "../gpu/conformance.ts";
import { PACKED_PROJECTION_PAIR } from "../gpu/matmul/pairs.ts";
import { compare } from "../reference/mod.ts";
import { ignoreGpuTests } from "./_gpu.ts";

// WebGPU's default limits (what `--limits default` requests): 128 MiB per binding, 256 MiB per
// buffer, 16 KiB of workgroup storage, 256 invocations, 8 storage buffers per stage.
const DEFAULTS = {
  maxStorageBufferBindingSize: 2 ** 27,
  maxBufferSize: 2 ** 28,
  maxComputeWorkgroupStorageSize: 16384,
  maxComputeInvocationsPerWorkgroup: 256,
  maxStorageBuffersPerShaderStage: 8,
};

Deno.test({
  name: "a TinyLlama-1.1B-shaped decode step (f16, real 32000x2048 classifier) at default limits",
  ignore: ignoreGpuTests,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    // one layer of the real widths: dim 2048, hidden 5632, 32/4 heads; the f32 embedding table
    // (262 MB) exceeds a binding and a buffer's default, the f16 classifier takes 131 MB
    const config = makeConfig({ ...preset("TinyLlama-1.1B"), nLayers: 1, maxSeqLen: 8 });
    const weights = tabledF16Weights(config, 3);
    const gpu = await requestGpu({ limits: "default" });
    for (const [name, value] of Object.entries(DEFAULTS)) {
      expect(gpu.limits[name as keyof typeof DEFAULTS]).toBe(value);
    }
    const decoder = await GpuDecoder.create(gpu, config, weights);
    try {
      const cpu = new CpuDecoder(config, weights);
      // fused: embedding, five per layer (six split), final norm, classifier, token choice
      expect(await decoder.dispatchesPerToken()).toBeLessThanOrEqual(1 + 6 + 2 + 4);
      for (const [pos, token] of [1, 29].entries()) {
        const stats = compare(await decoder.forward(token, pos), await cpu.forward(token, pos));
        expect(stats.firstNonFinite).toBe(-1);
        expect(stats.nmse).toBeLessThan(1e-9);
      }
    } finally {
      decoder.destroy();
      gpu.destroy();
    }
  },
});

Deno.test({
  name: "the packed fused QKV+RoPE projection fits WebGPU's default 8 storage buffers",
  ignore: ignoreGpuTests,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const gpu = await requestGpu({ limits: "default" });
    try {
      const cases = conformanceCases([PACKED_PROJECTION_PAIR]).filter((c) =>
        c.kernel.startsWith("projection qkvRope") && ["q8 row", "f32 row"].includes(c.variant)
      );
      expect(cases.length).toBe(3 * 2 * 3); // 3 shapes (one staged), 2 variants, 3 formats
      for (const testCase of cases) {
        const result = await judgeCase(gpu, testCase);
        // Skipped only where the variant cannot run: f16 weights without shader-f16, or Q8
        // activations in workgroup memory over the GL backend's element budget.
        if (result.skipped) {
          expect(
            testCase.kernel.endsWith(" f16") ||
              (testCase.variant.startsWith("q8") && Number.isFinite(gpu.workgroupElementBudget)),
          ).toBe(true);
        } else {expect({ case: testCase.shape, error: result.error, passed: result.passed })
            .toEqual({ case: testCase.shape, error: undefined, passed: true });}
      }
    } finally {
      gpu.destroy();
    }
  },
});
