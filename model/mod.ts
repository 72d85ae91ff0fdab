/**
 * The full LLaMA decoder, assembled from the reference functions (CPU) and the WebGPU kernels:
 * configuration and presets, llama2.c checkpoints and tokenizer, KV-cache and recompute
 * variants, MHA/GQA/MQA through `nKvHeads`, and generation.
 *
 * @example
 * ```ts
 * import { CpuDecoder, generate, preset, randomWeights } from "./mod.ts";
 * const config = preset("stories260K");
 * const decoder = new CpuDecoder(config, randomWeights(config, 1));
 * const { tokens } = await generate(decoder, [1], { steps: 3, stopAtBos: false });
 * if (tokens.length !== 3) throw new Error("wrong");
 * ```
 *
 * @module
 */
export * from "./formats/llama2c.ts";
export * from "./config.ts";
export * from "./cpu_decoder.ts";
export * from "./decoder.ts";
export * from "./generate.ts";
export * from "./webgpu/decoder.ts";
export * from "./formats/tokenizer.ts";
export * from "./weights.ts";
export * from "./cost.ts";
export * from "../gpu/tune.ts";
export * from "./batch/kv_store.ts";
export * from "./batch/batch_decoder.ts";
export * from "./batch/cpu_batch_decoder.ts";
export * from "./webgpu/batch_decoder.ts";
export * from "./batch/generate_batch.ts";
export * from "./formats/gguf.ts";
export * from "./formats/gguf_llama.ts";
export * from "./accuracy.ts";
export * from "./precision.ts";
