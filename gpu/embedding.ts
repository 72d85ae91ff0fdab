/**
 * Embedding lookup: `out[t] = table[tokens[t]]`, `table: (vocabSize, dim)`. Token ids come
 * from a GPU buffer (the state buffer's token during generation), so the next token chosen on
 * the GPU feeds the next step without a read-back. An id outside the vocabulary yields NaN
 * rows, never another token's row.
 *
 * @module
 */
import type { Gpu } from "./device.ts";
import { checkDimension, compileElementwise, elementwiseWgsl, type Kernel } from "./kernel.ts";

const WGSL = elementwiseWgsl(
  `override DIM: u32;
override VOCAB: u32;
@group(0) @binding(0) var<storage, read> table: array<f32>;
@group(0) @binding(1) var<storage, read> tokens: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;`,
  `let token = tokens[i / DIM];
  out[i] = select(bitcast<f32>(0x7fc00000u), table[token * DIM + i % DIM], token < VOCAB);`,
);

/** Shape of an {@linkcode embeddingKernel}. */
export interface EmbeddingShape {
  /** Tokens looked up at once. */
  rows: number;
  /** Features per token. */
  dim: number;
  /** Rows of the table. */
  vocabSize: number;
}

/**
 * Compiles the lookup. Bindings: `table (vocabSize·dim)`, `tokens (rows)` as u32,
 * `out (rows·dim)`.
 *
 * @example
 * ```ts ignore
 * const embed = await embeddingKernel(gpu, { rows: 1, dim: 288, vocabSize: 32000 });
 * await gpu.submit([embed.bind({ table, tokens: state, out: x })]);
 * ```
 */
export function embeddingKernel(
  gpu: Gpu,
  shape: EmbeddingShape,
): Promise<Kernel<"table" | "tokens" | "out">> {
  const { rows, dim, vocabSize } = shape;
  const name = `embedding ${rows}x${dim} (vocab ${vocabSize})`;
  checkDimension(name, "dim", dim);
  checkDimension(name, "vocabSize", vocabSize);
  return compileElementwise(gpu, name, WGSL, rows * dim, ["table", "tokens", "out"], {
    DIM: dim,
    VOCAB: vocabSize,
  });
}
