/**
 * WebGPU (WGSL compute) kernels for every LLaMA component, each mirroring a function of
 * `reference/` and tested against it. Kernels take and produce `GPUBuffer`s, so a whole
 * decoder step chains on the GPU; `Gpu` uploads and reads back `Float32Array`s. Every kernel's
 * `bind` returns the `Dispatch[]` to record.
 *
 * Every kernel is paired with its `reference/` oracle in one registry, {@linkcode KERNEL_PAIRS}
 * (`pairs.ts`): each entry (a {@linkcode KernelPair}, defined in `pair.ts`) names the family, its
 * reference function, seeded inputs, odd and real shapes, bytes, FLOPs, tolerance and variants.
 * A simple kernel's entry ends its own file (`RMS_NORM_PAIR` in `norm.ts`); the matmul and
 * attention families keep theirs in `matmul/pairs.ts` and `attention/pairs.ts`. The kernel tests,
 * `deno task conformance` ({@linkcode runConformance}), the benchmarks and tuning iterate it.
 * Kernels written elsewhere are judged by the same entries: {@linkcode checkKernel} binds a foreign
 * WGSL kernel by its family's contract ({@linkcode KERNEL_FAMILIES}, `families.ts`) and returns the
 * same conformance rows (docs/kernel-authors.md).
 * `copyKernel`, `advanceKernel` and `finiteCheckKernel` have no oracle beyond their own
 * definition (a copy, decoder bookkeeping, an overflow guard).
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
export * from "./matmul/kquant.ts";
export * from "./norm.ts";
export * from "./matmul/projection.ts";
export * from "./matmul/packed_projection.ts";
export * from "./rope.ts";
export * from "./softmax.ts";
export * from "./state.ts";
export * from "./swiglu.ts";
export * from "./tuning.ts";
export * from "./tune.ts";
export * from "./timing.ts";
export * from "./pair.ts";
export * from "./pairs.ts";
export * from "./conformance.ts";
export * from "./matmul/pairs.ts";
export * from "./attention/pairs.ts";
export * from "./families.ts";
export * from "./check_kernel.ts";
