// The K-quant kernels' layouts: which one runs where, their workgroup memory against the GL
// budget, and the packing of GGUF's blocks (the kernels' results are conformance cases, see
// gpu_kernels_test.ts).
import { expect } from "expect";
import { GL_WORKGROUP_ELEMENT_BUDGET } from "../gpu/_backend.ts";
import { Gpu } from "../gpu/device.ts";
import { K_BLOCK_WORDS, kQuantWgsl, packKQuant } from "../gpu/matmul/kquant.ts";
import { MATMUL_Q4_K_PAIR } from "../gpu/matmul/pairs.ts";
import { packMatrix, quantMatmulDispatches, uploadPacked } from "../gpu/matmul/quant.ts";
import { K_QUANT_FORMATS, quantizeKQuant } from "../reference/kquants.ts";
import { Rng } from "../reference/random.ts";
import { gpuTest } from "./_gpu.ts";

/** Elements of every workgroup array a shader declares. */
function workgroupElements(wgsl: string): number {
  let total = 0;
  for (const m of wgsl.matchAll(/var<workgroup>\s+\w+\s*:\s*array<f32,\s*(\d+)>/g)) {
    total += Number(m[1]);
  }
  return total;
}

Deno.test("the cooperative K-quant kernels hold one float per invocation, within the GL budget", () => {
  for (const format of K_QUANT_FORMATS) {
    expect(workgroupElements(kQuantWgsl(format, "row", 64, 65535))).toBe(0);
    const cooperative = kQuantWgsl(format, "cooperative", 64, 65535);
    expect(workgroupElements(cooperative)).toBe(64);
    expect(workgroupElements(cooperative)).toBeLessThanOrEqual(GL_WORKGROUP_ELEMENT_BUDGET);
  }
  expect(() => kQuantWgsl("q4_k", "cooperative", 48, 1)).toThrow(
    "workgroupSize: expected a power of two, got 48",
  );
});

Deno.test("packing keeps Q4_K/Q5_K blocks as words and moves Q6_K's f16 d apart", () => {
  const rng = new Rng(2);
  for (const format of K_QUANT_FORMATS) {
    const bytes = quantizeKQuant(rng.uniformArray(3 * 512), format);
    const { weights, scales } = packKQuant(bytes, format, 3, 512);
    expect(weights.length).toBe(6 * K_BLOCK_WORDS[format]);
    const packed = new Uint8Array(weights.buffer);
    if (format === "q6_k") {
      // block 5: its 208 bytes of quants and scales, then its d as the 6th half of `scales`
      expect(packed.subarray(5 * 208, 6 * 208)).toEqual(bytes.subarray(5 * 210, 5 * 210 + 208));
      expect(new Uint16Array(scales.buffer)[5]).toBe(
        bytes[5 * 210 + 208] | bytes[5 * 210 + 209] << 8,
      );
    } else {
      expect(packed).toEqual(bytes);
      expect(scales.length).toBe(0);
    }
  }
  expect(() => packKQuant(new Uint8Array(144), "q4_k", 1, 128)).toThrow(
    "inDim: expected a multiple of 256, got 128",
  );
  expect(() => packMatrix(new Uint8Array(100), "q5_k", 1, 256)).toThrow(
    "expected 176 bytes, got 100",
  );
});

gpuTest(
  "a software adapter gets the row layout, a GPU the cooperative one; a budget below 64 refuses it",
  async (gpu) => {
    const w = quantizeKQuant(new Rng(3).uniformArray(4 * 256), "q4_k");
    const packed = packMatrix(w, "q4_k", 4, 256);
    const matrix = uploadPacked(gpu, packed);
    const args = { rows: 1, x: gpu.createBuffer(256 * 4), out: gpu.createBuffer(16) };
    const label = async (device: Gpu, layout?: "row" | "cooperative") =>
      (await quantMatmulDispatches(device, matrix, args, { kQuantLayout: layout }))[0].label;
    const software = new Gpu(gpu.device, "llvmpipe", {
      vendor: "",
      architecture: "",
      device: "",
      description: "llvmpipe (LLVM 15.0.6, 256 bits)",
    });
    const hardware = new Gpu(gpu.device, "a GPU", {
      vendor: "nvidia",
      architecture: "hopper",
      device: "",
      description: "",
    });
    expect(await label(software)).toBe("matmul q4_k row 1x4x256");
    expect(await label(hardware)).toBe("matmul q4_k cooperative 1x4x256");
    const tiny = new Gpu(gpu.device, "a GPU", hardware.adapter, { workgroupElementBudget: 32 });
    expect(await label(tiny)).toBe("matmul q4_k row 1x4x256");
    await expect(label(tiny, "cooperative")).rejects.toThrow(
      "workgroupSize 64 exceeds the device's invocations or workgroup budget (32)",
    );
    const shape = { rows: 1, outDim: 4, inDim: 256 };
    expect(MATMUL_Q4_K_PAIR.variants.map((v) => [v.name, v.applies?.(shape, tiny) ?? true]))
      .toEqual([["row", true], ["coop64", false]]);
    const glBudget = new Gpu(gpu.device, "gl", hardware.adapter, {
      workgroupElementBudget: GL_WORKGROUP_ELEMENT_BUDGET,
    });
    expect(MATMUL_Q4_K_PAIR.variants[1].applies?.(shape, glBudget)).toBe(true);
  },
);
