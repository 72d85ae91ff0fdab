import { expect } from "expect";
import type { KQuantLayout } from "../gpu/matmul/kquant.ts";
import {
  type GpuWeightFormat,
  kQuantCooperativeFits,
  packedBlockRows,
  packedRowBlocks,
  packMatrix,
  quantMatmulDispatches,
  uploadPacked,
} from "../gpu/matmul/quant.ts";
import { K_QUANT_FORMATS, matvecQuantized, quantize, Rng } from "../reference/mod.ts";
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

Deno.test("K-quant matrices split into row blocks of whole rows, so of whole super-blocks", () => {
  const limit = 2 ** 27;
  // Q4_K 32000x4096: rows of 16 super-blocks of 144 bytes (2304 bytes), 73.7 MB: one block.
  expect(packedBlockRows("q4_k", 32000, 4096, limit)).toBe(32000);
  // Llama 3's Q6_K classifier, 128256x4096: rows of 16·208 bytes (the f16 d apart) = 3328;
  // 2^27 / 3328 = 40329.8 rows fit, 40320 = 630·64 of them a block.
  expect(packedBlockRows("q6_k", 128256, 4096, limit)).toBe(40320);
  expect(packedBlockRows("q5_k", 300, 256, 100 * 176)).toBe(64);
  expect(() => packedBlockRows("q5_k", 300, 256, 63 * 176)).toThrow(
    "pack q5_k 300x256: a block of 64 rows (11264 bytes) exceeds the 11088-byte binding limit",
  );
  // Q6_K 130x768: 3 super-blocks a row (156 words of quants and scales, 3 halves of d).
  const q6 = packMatrix(quantize(new Rng(2).uniformArray(130 * 768), "q6_k"), "q6_k", 130, 768);
  const blocks = packedRowBlocks(q6, 64 * 156 * 4);
  expect(blocks.map((b) => [b.rowStart, b.rows, b.weights.length, b.scales.length])).toEqual([
    [0, 64, 64 * 156, 96], // 192 halves
    [64, 64, 64 * 156, 96],
    [128, 2, 2 * 156, 3], // 6 halves: words 192..194
  ]);
  // Each block's words are its rows' super-blocks, whole: block 1 starts at row 64's.
  expect(blocks[1].weights[0]).toBe(q6.weights[64 * 156]);
  expect(blocks[2].scales[2]).toBe(q6.scales[194]);
});

/**
 * The split cases: the block formats at 96 columns, 200 rows; the K-quants at 768 columns (3
 * super-blocks a row, so Q6_K's scales per block are an odd count of halves) and 201 rows (its
 * last scale word half padding), in both layouts.
 */
const SPLIT_CASES: {
  format: GpuWeightFormat;
  outDim: number;
  inDim: number;
  layout?: KQuantLayout;
}[] = [
  ...(["f16", "q8_0", "q4_0"] as const).map((format) => ({ format, outDim: 200, inDim: 96 })),
  ...K_QUANT_FORMATS.flatMap((format) =>
    (["row", "cooperative"] as const).map((layout) => ({
      format,
      outDim: 201,
      inDim: 768,
      layout,
    }))
  ),
];

for (const { format, outDim, inDim, layout } of SPLIT_CASES) {
  const name = `${format}${layout ? ` ${layout}` : ""}`;
  gpuTest(`split results bit-identical to whole: ${name} in row blocks`, async (gpu) => {
    if (layout === "cooperative" && !kQuantCooperativeFits(gpu)) return; // not on this budget
    const rows = 3;
    const rng = new Rng(5);
    const bytes = quantize(rng.uniformArray(outDim * inDim), format);
    const x = rng.uniformArray(rows * inDim);
    const packed = packMatrix(bytes, format, outDim, inDim);
    const rowBytes = packed.weights.byteLength / outDim;
    const whole = uploadPacked(gpu, packed, "whole");
    const split = uploadPacked(gpu, packed, "split", 70 * rowBytes); // blocks of 64, 64, 64, rest
    expect(split.blocks.map((b) => [b.rowStart, b.rows])).toEqual([
      [0, 64],
      [64, 64],
      [128, 64],
      [192, outDim - 192],
    ]);
    expect(split.bytes).toBe(whole.bytes);
    const run = async (matrix: typeof whole) => {
      const out = gpu.createBuffer(rows * outDim * 4);
      const steps = await quantMatmulDispatches(gpu, matrix, { rows, x: gpu.upload(x), out }, {
        kQuantLayout: layout,
      });
      expect(steps).toHaveLength(matrix.blocks.length); // one dispatch a block
      await gpu.submit(steps);
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
