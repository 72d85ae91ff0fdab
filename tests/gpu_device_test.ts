import { expect } from "expect";
import { GpuError, NO_ADAPTER_HELP, requestGpu } from "../gpu/device.ts";
import { addKernel } from "../gpu/add.ts";
import { matvecKernel } from "../gpu/matmul/matmul.ts";
import { gpuTest } from "./_gpu.ts";

Deno.test("requestGpu without an adapter says so and how to get one", async () => {
  const noAdapter = { requestAdapter: () => Promise.resolve(null) } as unknown as GPU;
  const error = await requestGpu({ gpu: noAdapter }).catch((e) => e);
  expect(error).toBeInstanceOf(GpuError);
  expect(error.message).toContain("no WebGPU adapter found");
  expect(error.message).toContain("mesa-vulkan-drivers");
  expect(NO_ADAPTER_HELP).toContain("DENO_WEBGPU_BACKEND");
});

gpuTest("requestGpu raises the device limits to the adapter's", async (gpu) => {
  const adapter = await navigator.gpu.requestAdapter();
  expect(gpu.limits.maxStorageBufferBindingSize).toBe(adapter!.limits.maxStorageBufferBindingSize);
  expect(gpu.limits.maxComputeInvocationsPerWorkgroup).toBe(
    adapter!.limits.maxComputeInvocationsPerWorkgroup,
  );
  expect(gpu.adapterDescription.length).toBeGreaterThan(0);
});

gpuTest("bad WGSL throws with the kernel's name and the compiler's message", async (gpu) => {
  const error = await gpu.pipeline("broken kernel", "fn main( {").catch((e) => e);
  expect(error).toBeInstanceOf(GpuError);
  expect(error.kernel).toBe("broken kernel");
  expect(error.message).toMatch(/^broken kernel: /);
  expect(error.message).toContain("expected");
  // a type error, too, names the line
  const typeError = await gpu.pipeline(
    "typed kernel",
    "@compute @workgroup_size(1) fn main() { let x: u32 = 1.5; }",
  )
    .catch((e) => e);
  expect(typeError.message).toContain("typed kernel");
});

gpuTest("pipelines are compiled once per shader and constants", async (gpu) => {
  const before = gpu.cachedPipelines;
  const a = await addKernel(gpu, 12345);
  const b = await addKernel(gpu, 12345);
  expect(gpu.cachedPipelines).toBe(before + 1);
  await addKernel(gpu, 12346);
  expect(gpu.cachedPipelines).toBe(before + 2);
  expect(a.name).toBe(b.name);
});

gpuTest(
  "a binding over the storage-binding limit is a clear error naming the limit",
  async (gpu) => {
    const limit = gpu.limits.maxStorageBufferBindingSize;
    const kernel = await matvecKernel(gpu, { outDim: 1, inDim: 4 });
    const huge = gpu.createBuffer(limit + 256, "oversized weights");
    try {
      expect(() => kernel.bind({ w: huge, x: gpu.createBuffer(16), out: gpu.createBuffer(4) }))
        .toThrow(
          `binding 0 is ${
            limit + 256
          } bytes, over the device's maxStorageBufferBindingSize (${limit} bytes)`,
        );
    } finally {
      huge.destroy();
    }
    expect(() => gpu.createBuffer(gpu.limits.maxBufferSize + 4, "too big")).toThrow(
      "maxBufferSize",
    );
  },
);

gpuTest("validation errors at submit become thrown errors naming the kernels", async (gpu) => {
  const kernel = await addKernel(gpu, 4);
  const readOnly = gpu.device.createBuffer({ size: 16, usage: GPUBufferUsage.COPY_DST });
  const error = await Promise.resolve()
    .then(() => gpu.submit(kernel.bind({ x: readOnly, delta: gpu.createBuffer(16) })))
    .catch((e) => e);
  expect(error).toBeInstanceOf(GpuError);
  expect(error.message).toContain("add 4");
});

Deno.test({
  name: "a lost device becomes a clear error",
  ignore: (await import("./_gpu.ts")).ignoreGpuTests,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const gpu = await requestGpu();
    gpu.destroy();
    await gpu.device.lost;
    expect(() => gpu.createBuffer(16)).toThrow("GPU device lost (destroyed");
    await expect(gpu.finish()).rejects.toThrow("GPU device lost");
  },
});
