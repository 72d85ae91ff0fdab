import { expect } from "expect";
import {
  packedBlockRows,
  packMatrix,
  quantMatmulDispatches,
  uploadPacked,
} from "../gpu/matmul/quant.ts";
import { matvecQuantized, quantize, Rng } from "../reference/mod.ts";
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
  expect(tiny.blocks).toHaveLength(1);
  expect(Array.from(await gpu.readUint32(tiny.blocks[0].weights))).toEqual([0]);
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

Deno.test("packed matrices past the binding limit split into row blocks of 64s, as f32 ones do", () => {
  // An f16 32000x4096 classifier is 262 MB: under WebGPU's default 128 MiB, two blocks of
  // 16384 rows (8192 bytes each). Q8_0 and Q4_0 rows of 4096 take 4096 and 2048 bytes: one block.
  const limit = 2 ** 27;
  expect(packedBlockRows("f16", 32000, 4096, limit)).toBe(16384);
  expect(packedBlockRows("q8_0", 32000, 4096, limit)).toBe(32000);
  expect(packedBlockRows("q4_0", 32000, 4096, limit)).toBe(32000);
  expect(packedBlockRows("q8_0", 1000, 64, 100 * 64)).toBe(64); // 100 rows fit: 64
  expect(() => packedBlockRows("f16", 1000, 64, 63 * 128)).toThrow(
    "pack f16 1000x64: a block of 64 rows (8192 bytes) exceeds the 8064-byte binding limit",
  );
});

for (const format of ["f16", "q8_0", "q4_0"] as const) {
  gpuTest(`a ${format} matrix split into row blocks computes what it does whole`, async (gpu) => {
    const [outDim, inDim, rows] = [200, 96, 3];
    const rng = new Rng(5);
    const bytes = quantize(rng.uniformArray(outDim * inDim), format);
    const x = rng.uniformArray(rows * inDim);
    const packed = packMatrix(bytes, format, outDim, inDim);
    const rowBytes = packed.weights.byteLength / outDim;
    const whole = uploadPacked(gpu, packed, "whole");
    const split = uploadPacked(gpu, packed, "split", 70 * rowBytes); // blocks of 64, 64, 64, 8
    expect(split.blocks.map((b) => [b.rowStart, b.rows])).toEqual([
      [0, 64],
      [64, 64],
      [128, 64],
      [192, 8],
    ]);
    expect(split.bytes).toBe(whole.bytes);
    const run = async (matrix: typeof whole) => {
      const out = gpu.createBuffer(rows * outDim * 4);
      await gpu.submit(await quantMatmulDispatches(gpu, matrix, { rows, x: gpu.upload(x), out }));
      return gpu.readFloat32(out);
    };
    const [a, b] = [await run(whole), await run(split)];
    expect(b).toEqual(a); // the same products, in the same order, bit for bit
    for (let t = 0; t < rows; t++) {
      const want = matvecQuantized(
        bytes,
        format,
        x.subarray(t * inDim, (t + 1) * inDim),
        outDim,
        inDim,
      );
      want.forEach((v, r) => expect(Math.abs(b[t * outDim + r] - v)).toBeLessThan(1e-4));
    }
  });
}
