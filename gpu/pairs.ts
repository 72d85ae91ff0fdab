/**
 * The kernel-pair registry: one entry per kernel family pairing the WGSL kernel with its
 * `reference/` oracle (inputs, shapes, bytes, FLOPs, tolerance, variants). The kernel tests,
 * `deno task conformance`, the benchmark's kernel table and `deno bench bench/` iterate
 * {@linkcode KERNEL_PAIRS}: adding a kernel, or a variant, is one entry here.
 *
 * Adding a variant (a tiled matmul, an f16-weight matvec...): append to the family's
 * `variants` a `{ name, features?, applies?, tolerance?, record }`; `record` compiles and binds
 * it on the entry's inputs, allocating through `buffers` (`input` uploads, `output` is what
 * conformance guards and compares with the entry's `reference`, in allocation order). It then
 * shows up in the kernel tests, `deno task conformance` (its `variant` column), the bench
 * kernel table and `deno bench`, skipped where its features or predicate rule it out.
 *
 * No Deno APIs: this module runs in a browser too.
 *
 * @module
 */
import { ADD_PAIR } from "./add.ts";
import {
  ATTENTION_F16_PAIR,
  ATTENTION_PAIR,
  ATTENTION_Q8_0_PAIR,
  BATCH_ATTENTION_PAIR,
} from "./attention/pairs.ts";
import { COPY_PAIR } from "./copy.ts";
import { EMBEDDING_PAIR, EMBEDDING_SPLIT_PAIR } from "./embedding.ts";
import { KV_APPEND_PAIR, KV_SCATTER_PAIR } from "./kv_cache.ts";
import {
  MATMUL_F16_PAIR,
  MATMUL_PAIR,
  MATMUL_Q4_0_PAIR,
  MATMUL_Q4_K_PAIR,
  MATMUL_Q5_K_PAIR,
  MATMUL_Q6_K_PAIR,
  MATMUL_Q8_0_PAIR,
  MATMUL_SPLIT_PAIR,
  PACKED_PROJECTION_PAIR,
  PROJECTION_PAIR,
} from "./matmul/pairs.ts";
import { RMS_NORM_PAIR } from "./norm.ts";
import type { AnyKernelPair } from "./pair.ts";
import { BATCH_ROPE_PAIR, ROPE_PAIR } from "./rope.ts";
import { ARGMAX_PAIR } from "./sampling.ts";
import { SOFTMAX_PAIR } from "./softmax.ts";
import { SILU_MUL_PAIR } from "./swiglu.ts";

/** Every kernel family, in the conformance table's order. */
export const KERNEL_PAIRS: readonly AnyKernelPair[] = [
  MATMUL_PAIR,
  RMS_NORM_PAIR,
  SOFTMAX_PAIR,
  SILU_MUL_PAIR,
  ADD_PAIR,
  EMBEDDING_PAIR,
  ROPE_PAIR,
  KV_APPEND_PAIR,
  ATTENTION_PAIR,
  ARGMAX_PAIR,
  MATMUL_SPLIT_PAIR,
  COPY_PAIR,
  EMBEDDING_SPLIT_PAIR,
  PROJECTION_PAIR,
  BATCH_ROPE_PAIR,
  KV_SCATTER_PAIR,
  BATCH_ATTENTION_PAIR,
  MATMUL_F16_PAIR,
  MATMUL_Q8_0_PAIR,
  MATMUL_Q4_0_PAIR,
  PACKED_PROJECTION_PAIR,
  MATMUL_Q6_K_PAIR,
  MATMUL_Q5_K_PAIR,
  MATMUL_Q4_K_PAIR,
  ATTENTION_F16_PAIR,
  ATTENTION_Q8_0_PAIR,
];
