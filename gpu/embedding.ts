/**
 * Embedding lookup: `out[t] = table[tokens[t]]`, `table: (vocabSize, dim)`. Token ids come
 * from a GPU buffer (the state buffer's token during generation), so the next token chosen on
 * the GPU feeds the next step without a read-back. An id outside the vocabulary yields NaN
 * rows, never another token's row.
 *
 * @module
 */
import type { BufferRange, Dispatch, Gpu } from "./device.ts";
import type { GpuMatrix } from "./matmul/matmul.ts";
import { compileElementwise, elementwiseWgsl, type Kernel, WGSL_NAN } from "./kernel.ts";
import { checkInteger } from "../reference/checks.ts";
import { uploadMatrix } from "./matmul/matmul.ts";
import { EXACT, type KernelPair } from "./pair.ts";
import { embedding } from "../reference/embedding.ts";
import { Rng } from "../reference/random.ts";

const WGSL = elementwiseWgsl(
  `override DIM: u32;
override VOCAB: u32;       // rows of the whole table
override FIRST_ID: u32 = 0u; // id of this block's first row (tables split by rows)
override BLOCK_ROWS: u32;
@group(0) @binding(0) var<storage, read> table: array<f32>;
@group(0) @binding(1) var<storage, read> tokens: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;`,
  `let token = tokens[i / DIM];
  if (token >= VOCAB) {
    if (FIRST_ID == 0u) { out[i] = ${WGSL_NAN}; } // NaN: loud, never another row
    return;
  }
  if (token < FIRST_ID || token >= FIRST_ID + BLOCK_ROWS) { return; } // another block's row
  out[i] = table[(token - FIRST_ID) * DIM + i % DIM];`,
);

/** Shape of an {@linkcode embeddingKernel}. */
export interface EmbeddingShape {
  /** Tokens looked up at once. */
  rows: number;
  /** Features per token. */
  dim: number;
  /** Rows of the whole table. */
  vocabSize: number;
  /** For a table split by rows: this block's first id and row count (whole table by default). */
  block?: { firstId: number; rows: number };
}

/**
 * Compiles the lookup. Bindings: `table (vocabSize·dim)`, `tokens (rows)` as u32,
 * `out (rows·dim)`.
 *
 * @example
 * ```ts ignore
 * const embed = await embeddingKernel(gpu, { rows: 1, dim: 288, vocabSize: 32000 });
 * await gpu.submit(embed.bind({ table, tokens: state, out: x }));
 * ```
 */
export function embeddingKernel(
  gpu: Gpu,
  shape: EmbeddingShape,
): Promise<Kernel<"table" | "tokens" | "out">> {
  const { rows, dim, vocabSize, block = { firstId: 0, rows: vocabSize } } = shape;
  const name = `embedding ${rows}x${dim} (vocab ${vocabSize})`;
  checkInteger(`${name}: dim`, dim);
  checkInteger(`${name}: vocabSize`, vocabSize);
  return compileElementwise(gpu, name, WGSL, rows * dim, ["table", "tokens", "out"], {
    DIM: dim,
    VOCAB: vocabSize,
    FIRST_ID: block.firstId,
    BLOCK_ROWS: block.rows,
  });
}

/**
 * Dispatches looking `tokens` up in a table uploaded with `uploadMatrix` (split by rows or
 * not): one per row block, each writing the rows whose ids it holds.
 *
 * @example
 * ```ts ignore
 * const table = uploadMatrix(gpu, embeddings, 32000, 4096);
 * await gpu.submit(await embeddingDispatches(gpu, table, { rows: 1, tokens: state, out: x }));
 * ```
 */
export async function embeddingDispatches(
  gpu: Gpu,
  table: GpuMatrix,
  args: { rows: number; tokens: BufferRange; out: BufferRange },
): Promise<Dispatch[]> {
  const dispatches: Dispatch[] = [];
  for (const chunk of table.chunks) {
    const kernel = await embeddingKernel(gpu, {
      rows: args.rows,
      dim: table.inDim,
      vocabSize: table.outDim,
      block: { firstId: chunk.rowStart, rows: chunk.rows },
    });
    dispatches.push(...kernel.bind({ table: chunk.buffer, tokens: args.tokens, out: args.out }));
  }
  return dispatches;
}

// ─── Registry entries: these kernels against their reference (collected in `pairs.ts`) ───

/** Rows of a `(vocabSize, dim)` table for `rows` token ids (the first is the last id). */
export const EMBEDDING_PAIR: KernelPair<
  { rows: number; dim: number; vocabSize: number },
  { table: Float32Array; tokens: Uint32Array }
> = {
  family: "embedding",
  describe: ({ rows, dim, vocabSize }) => `${rows}x${dim} vocab ${vocabSize}`,
  inputs({ rows, dim, vocabSize }) {
    const rng = new Rng(vocabSize);
    const table = rng.uniformArray(vocabSize * dim);
    const tokens = Uint32Array.from(
      { length: rows },
      (_, t) => t === 0 ? vocabSize - 1 : rng.nextUint32() % vocabSize,
    );
    return { table, tokens };
  },
  reference: ({ dim }, { table, tokens }) => embedding(table, tokens, dim),
  conformance: [
    { rows: 1, dim: 1, vocabSize: 1 },
    { rows: 3, dim: 7, vocabSize: 33 },
    { rows: 5, dim: 288, vocabSize: 4099 },
    { rows: 2, dim: 2048, vocabSize: 257 },
  ],
  bench: {
    quick: [{ rows: 1, dim: 288, vocabSize: 512 }],
    full: [{ rows: 1, dim: 288, vocabSize: 32000 }],
  },
  bytes: ({ rows, dim }) => 4 * (rows + 2 * rows * dim),
  flops: () => 0,
  tolerance: EXACT,
  variants: [{
    name: "default",
    record: async (gpu, shape, { table, tokens }, buffers) =>
      (await embeddingKernel(gpu, shape)).bind({
        table: buffers.input(table),
        tokens: buffers.input(tokens),
        out: buffers.output(shape.rows * shape.dim),
      }),
  }],
};

/** An embedding table split into 64-row blocks: each block writes the rows whose ids it holds. */
export const EMBEDDING_SPLIT_PAIR: KernelPair<
  { dim: number; vocabSize: number; tokens: readonly number[] },
  { table: Float32Array; tokens: Uint32Array }
> = {
  family: "embedding split",
  describe: ({ dim, vocabSize, tokens }) =>
    `${tokens.length}x${dim} vocab ${vocabSize} in 64-row blocks`,
  inputs: ({ dim, vocabSize, tokens }) => ({
    table: new Rng(77).uniformArray(vocabSize * dim),
    tokens: Uint32Array.from(tokens),
  }),
  reference: ({ dim }, { table, tokens }) => embedding(table, tokens, dim),
  conformance: [{ dim: 8, vocabSize: 300, tokens: [0, 299, 64, 130] }],
  bench: {
    quick: [{ dim: 288, vocabSize: 512, tokens: [511] }],
    full: [{ dim: 2048, vocabSize: 4096, tokens: [4095] }],
  },
  bytes: ({ dim, tokens }) => 4 * (tokens.length + 2 * tokens.length * dim),
  flops: () => 0,
  tolerance: EXACT,
  variants: [{
    name: "default",
    record: (gpu, { dim, vocabSize }, { table, tokens }, buffers) =>
      embeddingDispatches(
        gpu,
        uploadMatrix(gpu, table, vocabSize, dim, { maxBindingBytes: 64 * dim * 4 }),
        {
          rows: tokens.length,
          tokens: buffers.input(tokens),
          out: buffers.output(tokens.length * dim),
        },
      ),
  }],
};
