/**
 * WebGPU (WGSL compute) kernels for every LLaMA component, each mirroring a function of
 * `reference/` and tested against it. Kernels take and produce `GPUBuffer`s, so a whole
 * decoder step chains on the GPU; `Gpu` uploads and reads back `Float32Array`s. Every kernel's
 * `bind` returns the `Dispatch[]` to record.
 *
 * Each kernel and the reference it is checked against (same file name on both sides):
 *
 * | kernel (`gpu/`)                              | reference (`reference/`)            |
 * | -------------------------------------------- | ----------------------------------- |
 * | `matmulKernel`, `matmulDispatches` (matmul)  | `matmul`, `matvec` (matmul)         |
 * | `quantMatmulDispatches` (matmul_quant)       | `matvecQuantized` (quantize)        |
 * | `rmsNormKernel` (norm)                       | `rmsNorm` (norm)                    |
 * | `softmaxKernel` (softmax)                    | `softmax` (softmax)                 |
 * | `siluMulKernel` (swiglu)                     | `siluMul` (swiglu)                  |
 * | `addKernel` (add)                            | `add` (add)                         |
 * | `embeddingKernel`, `embeddingDispatches`     | `embedding` (embedding)             |
 * | `ropeKernel` (rope)                          | `ropeRows` (rope)                   |
 * | `batchRopeKernel` (rope)                     | `rope` per row (rope)               |
 * | `kvAppendKernel` (kv_cache; f32, f16, Q8_0)  | `KvCache.write` (kv_cache)          |
 * | `kvScatterKernel` (kv_cache)                 | `PagedKvCache.write` (paged_kv_cache) |
 * | `attentionKernel` (attention)                | `cachedAttention` (attention)       |
 * | `batchAttentionKernel` (batch_attention)     | `pagedAttention`, `slidingWindowAttention` |
 * | `argmaxKernel` (sampling)                    | `gumbelSample`, `argmax` (sampling) |
 * | `copyKernel` (copy)                          | none: the bandwidth roofline        |
 * | `advanceKernel` (advance)                    | none: decoder bookkeeping           |
 * | `finiteCheckKernel` (finite_check)           | none: generation's overflow guard   |
 *
 * The pairs themselves (inputs, shapes, bytes, tolerance, variants) are one registry,
 * `gpu/_pairs.ts`, which the kernel tests, `deno task conformance` and the benchmarks iterate.
 *
 * @example
 * ```ts ignore
 * import { matvecKernel, requestGpu } from "./mod.ts";
 * const gpu = await requestGpu();
 * const w = gpu.upload(new Float32Array([1, 2, 3, 4])); // (2, 2)
 * const x = gpu.upload(new Float32Array([1, 1]));
 * const out = gpu.createBuffer(8);
 * const matvec = await matvecKernel(gpu, { outDim: 2, inDim: 2 });
 * await gpu.submit(matvec.bind({ w, x, out }));
 * console.log(await gpu.readFloat32(out)); // [3, 7]
 * ```
 *
 * @module
 */
export * from "./add.ts";
export * from "./advance.ts";
export * from "./sampling.ts";
export * from "./attention/attention.ts";
export * from "./attention/tiled.ts";
export * from "./attention/batch.ts";
export * from "./batch_rows.ts";
export * from "./copy.ts";
export * from "./device.ts";
export * from "./embedding.ts";
export * from "./matmul/fused_weights.ts";
export * from "./finite_check.ts";
export * from "./kernel.ts";
export * from "./kv_cache.ts";
export * from "./matmul/matmul.ts";
export * from "./matmul/quant.ts";
export * from "./norm.ts";
export * from "./matmul/projection.ts";
export * from "./rope.ts";
export * from "./softmax.ts";
export * from "./state.ts";
export * from "./swiglu.ts";
export * from "./tuning.ts";
export * from "./tune.ts";
