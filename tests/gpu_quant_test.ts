import { expect } from "expect";
import {
  type GpuWeightFormat,
  packMatrix,
  quantMatmulDispatches,
  uploadPacked,
} from "../gpu/matmul_quant.ts";
import { compare, matvecQuantized, quantize, Rng } from "../reference/mod.ts";
import { gpuTest } from "./_gpu.ts";

const SHAPES = [
  { rows: 1, outDim: 7, inDim: 32 },
  { rows: 1, outDim: 65, inDim: 1024 },
  { rows: 1, outDim: 768, inDim: 288 },
  { rows: 7, outDim: 33, inDim: 256 },
];
/** f16 has no blocks: odd widths too (rows padded to an even count of halves). */
const F16_SHAPES = [...SHAPES, { rows: 1, outDim: 5, inDim: 7 }, { rows: 3, outDim: 9, inDim: 33 }];

const VARIANTS: { format: GpuWeightFormat; shaderF16?: boolean }[] = [
  { format: "f16" },
  { format: "f16", shaderF16: true },
  { format: "q8_0" },
  { format: "q4_0" },
];

for (const { format, shaderF16 } of VARIANTS) {
  const name = `${format}${shaderF16 ? " (shader-f16)" : ""}`;
  gpuTest(`matmul over ${name} weights equals the dequantizing f64 reference`, async (gpu) => {
    if (shaderF16 && !gpu.device.features.has("shader-f16")) {
      console.warn(`shader-f16 variant not checked: ${gpu.adapterDescription} lacks the feature`);
      return;
    }
    for (const { rows, outDim, inDim } of format === "f16" ? F16_SHAPES : SHAPES) {
      const rng = new Rng(outDim * 13 + inDim);
      const w = quantize(rng.uniformArray(outDim * inDim), format);
      const x = rng.uniformArray(rows * inDim);
      const expected = new Float32Array(rows * outDim);
      for (let t = 0; t < rows; t++) {
        const xt = x.subarray(t * inDim, (t + 1) * inDim);
        expected.set(matvecQuantized(w, format, xt, outDim, inDim), t * outDim);
      }
      const matrix = uploadPacked(gpu, packMatrix(w, format, outDim, inDim));
      const out = gpu.createBuffer(rows * outDim * 4);
      await gpu.submit(
        await quantMatmulDispatches(gpu, matrix, { rows, x: gpu.upload(x), out }, { shaderF16 }),
      );
      const stats = compare(await gpu.readFloat32(out), expected);
      expect({
        shape: `${rows}x${outDim}x${inDim}`,
        ok: stats.nmse < 1e-10 && stats.maxAbsError < 1e-3,
      })
        .toEqual({ shape: `${rows}x${outDim}x${inDim}`, ok: true });
    }
  });
}

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
