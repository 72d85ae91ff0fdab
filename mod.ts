/**
 * LLaMA kernels for Deno: plain-TypeScript reference implementations of every LLaMA component
 * (the correctness oracles), WebGPU compute kernels checked against them, and a full decoder.
 *
 * @example
 * ```ts
 * import { argmax, Rng, softmax } from "./mod.ts";
 * const logits = new Rng(1).uniformArray(16);
 * const p = softmax(logits);
 * if (argmax(p) !== argmax(logits)) throw new Error("softmax must keep the order");
 * ```
 *
 * @module
 */
export * from "./reference/mod.ts";
export * from "./gpu/mod.ts";
export * from "./model/mod.ts";
