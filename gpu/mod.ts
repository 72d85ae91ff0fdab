/**
 * WebGPU (WGSL compute) kernels for every LLaMA component, each mirroring a function of
 * `reference/` and tested against it. Kernels take and produce `GPUBuffer`s, so a whole
 * decoder step chains on the GPU; `Gpu` uploads and reads back `Float32Array`s.
 *
 * @example
 * ```ts ignore
 * import { matvecKernel, requestGpu } from "./mod.ts";
 * const gpu = await requestGpu();
 * const w = gpu.upload(new Float32Array([1, 2, 3, 4])); // (2, 2)
 * const x = gpu.upload(new Float32Array([1, 1]));
 * const out = gpu.createBuffer(8);
 * const matvec = await matvecKernel(gpu, { outDim: 2, inDim: 2 });
 * await gpu.submit([matvec.bind({ w, x, out })]);
 * console.log(await gpu.readFloat32(out)); // [3, 7]
 * ```
 *
 * @module
 */
export * from "./add.ts";
export * from "./advance.ts";
export * from "./argmax.ts";
export * from "./attention.ts";
export * from "./attention_tiled.ts";
export * from "./copy.ts";
export * from "./device.ts";
export * from "./embedding.ts";
export * from "./fused_weights.ts";
export * from "./kernel.ts";
export * from "./kv_cache.ts";
export * from "./matmul.ts";
export * from "./projection.ts";
export * from "./rms_norm.ts";
export * from "./rope.ts";
export * from "./softmax.ts";
export * from "./swiglu.ts";
export * from "./conformance.ts";
export * from "./variant_cases.ts";
