/**
 * Plain-TypeScript reference implementations of every LLaMA component: the correctness
 * oracles the WebGPU kernels and the decoder are tested against. `Float32Array` in and out,
 * row-major, shapes in each function's documentation; web-standard APIs only.
 *
 * @example
 * ```ts
 * import { matvec, rmsNorm, softmax } from "./mod.ts";
 * const x = rmsNorm(new Float32Array([1, 2, 3, 4]), new Float32Array(4).fill(1));
 * const logits = matvec(new Float32Array(8).fill(0.5), x, 2, 4);
 * const p = softmax(logits);
 * if (Math.abs(p[0] - 0.5) > 1e-6) throw new Error("wrong");
 * ```
 *
 * @module
 */
export * from "./add.ts";
export * from "./attention.ts";
export * from "./compare.ts";
export * from "./embedding.ts";
export * from "./kv_cache.ts";
export * from "./matmul.ts";
export * from "./norm.ts";
export * from "./random.ts";
export * from "./rope.ts";
export * from "./sampling.ts";
export * from "./softmax.ts";
export * from "./swiglu.ts";
export * from "./f16.ts";
export * from "./quantize.ts";
export * from "./q8_activations.ts";
export * from "./paged_kv_cache.ts";
export * from "./sliding_kv_cache.ts";
export * from "./kquants.ts";
