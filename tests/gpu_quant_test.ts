import { expect } from "expect";
import { packMatrix, quantMatmulDispatches, uploadPacked } from "../gpu/matmul/quant.ts";
import { gpuTest } from "./_gpu.ts";

// Each format's conformance against matvecQuantized runs from the registry
// (gpu/matmul/pairs.ts, gpu/attention/pairs.ts, tests/gpu_kernels_test.ts); here, what the registry cannot express.

gpuTest("packMatrix rejects sizes that do not match, naming the matrix", async (gpu) => {
  expect(() => packMatrix(new Uint8Array(33), "q8_0", 1, 32)).toThrow(
    "pack q8_0 1x32: expected 34 bytes, got 33",
  );
  expect(() => packMatrix(new Uint8Array(18), "q4_0", 1, 16)).toThrow(
    "pack q4_0 1x16: inDim: expected a multiple of 32, got 16",
  );
  const tiny = uploadPacked(gpu, packMatrix(new Uint8Array(4), "f16", 1, 2));
  expect(tiny.bytes).toBe(4);
  expect(Array.from(await gpu.readUint32(tiny.weights))).toEqual([0]);
});

gpuTest("the shader-f16 variant refuses a device created without the feature", async (gpu) => {
  const matrix = uploadPacked(gpu, packMatrix(new Uint8Array(4), "f16", 1, 2));
  const x = gpu.upload(new Float32Array(2));
  const out = gpu.createBuffer(4);
  const withFeature = gpu.device.features.has("shader-f16");
  const run = quantMatmulDispatches(gpu, matrix, { rows: 1, x, out }, { shaderF16: true });
  if (withFeature) await run;
  else await expect(run).rejects.toThrow("the device was created without the shader-f16 feature");
});
