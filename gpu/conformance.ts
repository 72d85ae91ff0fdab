/**
 * The oracle harness: runs each kernel on seeded random inputs in [-1, 1] at odd and real
 * LLaMA shapes, compares it with its `reference/` function (NMSE, max abs error), and checks
 * that guard regions around every output stay untouched and that no NaN or Inf appears.
 *
 * @module
 */
import type { BufferRange, Dispatch, Gpu } from "./device.ts";
import { STATE, STATE_WORDS } from "./kernel.ts";
import { addKernel } from "./add.ts";
import { argmaxKernel } from "./argmax.ts";
import { attentionKernel } from "./attention.ts";
import { copyKernel } from "./copy.ts";
import { embeddingDispatches, embeddingKernel } from "./embedding.ts";
import { kvAppendKernel } from "./kv_cache.ts";
import { matmulDispatches, matmulKernel, uploadMatrix } from "./matmul.ts";
import { rmsNormKernel } from "./rms_norm.ts";
import { ropeKernel } from "./rope.ts";
import { softmaxKernel } from "./softmax.ts";
import { siluMulKernel } from "./swiglu.ts";
import { variantCases } from "./variant_cases.ts";
import { decodeAttention } from "../reference/attention.ts";
import { compare, type ErrorStats } from "../reference/compare.ts";
import { embedding } from "../reference/embedding.ts";
import { matmul } from "../reference/matmul.ts";
import { rmsNorm } from "../reference/norm.ts";
import { Rng } from "../reference/random.ts";
import { rope, type RopeLayout, ropeTable } from "../reference/rope.ts";
import { gumbelSample } from "../reference/sampling.ts";
import { softmax } from "../reference/softmax.ts";
import { siluMul } from "../reference/swiglu.ts";

/** What one run of a case produced. */
export interface CaseRun {
  /** The kernel's output. */
  actual: Float32Array;
  /** The reference's output. */
  expected: Float32Array;
  /** Whether every guard word around the outputs kept its sentinel. */
  guardsIntact: boolean;
}

/** One kernel at one shape, with its error bounds. */
export interface ConformanceCase {
  /** Kernel family, e.g. "matmul". */
  kernel: string;
  /** The shape, readable, e.g. "7x768x288". */
  shape: string;
  /** The registry variant it runs; "default" where a kernel has one form. */
  variant?: string;
  /** Largest NMSE that passes. */
  maxNmse: number;
  /** Largest max-abs error that passes. */
  maxAbsError: number;
  /** Runs the kernel and its reference. */
  run(gpu: Gpu): Promise<CaseRun>;
}

/** The verdict on one case. */
export interface ConformanceResult extends ErrorStats {
  /** Kernel family. */
  kernel: string;
  /** The shape. */
  shape: string;
  /** The variant. */
  variant: string;
  /** Whether the guards around outputs are intact. */
  guardsIntact: boolean;
  /** NMSE and max-abs within bounds, no NaN/Inf, guards intact, no error. */
  passed: boolean;
  /** Why the case could not run, if it threw. */
  error?: string;
  /** The case's bounds. */
  bounds: { maxNmse: number; maxAbsError: number };
}

/** Floats of guard on each side of an output: 256 bytes, the storage-offset alignment. */
export const GUARD_FLOATS = 64;
const SENTINEL = -1234.5;

/** An output buffer with guard regions on both sides; `range` is what the kernel binds. */
export interface GuardedBuffer {
  /** The whole buffer, guards included. */
  buffer: GPUBuffer;
  /** The middle `length` floats, as a binding. */
  range: GPUBufferBinding;
  /** Floats in the middle. */
  length: number;
}

/** Allocates an output of `length` floats between two guard regions; the middle holds `initial`. */
export function guardedBuffer(gpu: Gpu, length: number, initial?: Float32Array): GuardedBuffer {
  const whole = new Float32Array(length + 2 * GUARD_FLOATS).fill(SENTINEL);
  if (initial) whole.set(initial, GUARD_FLOATS);
  const buffer = gpu.upload(whole, "guarded output");
  return {
    buffer,
    range: { buffer, offset: GUARD_FLOATS * 4, size: Math.ceil(length / 4) * 16 },
    length,
  };
}

/** Reads a guarded buffer back: its middle and whether both guards kept their sentinel. */
export async function readGuarded(
  gpu: Gpu,
  guarded: GuardedBuffer,
): Promise<{ values: Float32Array; raw: ArrayBuffer; guardsIntact: boolean }> {
  const raw = await gpu.read(guarded.buffer, guarded.buffer.size);
  const all = new Float32Array(raw);
  const guards = [...all.subarray(0, GUARD_FLOATS), ...all.subarray(GUARD_FLOATS + guarded.length)];
  const guardsIntact = guards.every((v) => v === SENTINEL);
  return {
    values: all.slice(GUARD_FLOATS, GUARD_FLOATS + guarded.length),
    raw: raw.slice(GUARD_FLOATS * 4, (GUARD_FLOATS + guarded.length) * 4),
    guardsIntact,
  };
}

/** A state buffer (see `STATE`) with `pos` set. */
export function stateBuffer(gpu: Gpu, pos: number, token = 0): GPUBuffer {
  const words = new Uint32Array(STATE_WORDS);
  words[STATE.pos] = pos;
  words[STATE.token] = token;
  return gpu.upload(words, "state");
}

/**
 * Runs one kernel into a guarded output: `record` binds `out` and returns the dispatches.
 * The usual shape of a conformance case.
 */
export async function runGuarded(
  gpu: Gpu,
  outLength: number,
  record: (out: BufferRange) => readonly Dispatch[],
  initial?: Float32Array,
): Promise<{ values: Float32Array; raw: ArrayBuffer; guardsIntact: boolean }> {
  const out = guardedBuffer(gpu, outLength, initial);
  await gpu.submit(record(out.range));
  return await readGuarded(gpu, out);
}

const TIGHT = { maxNmse: 1e-7, maxAbsError: 1e-4 };
const PRODUCT = { maxNmse: 1e-9, maxAbsError: 1e-3 };

function matmulCase(
  rows: number,
  outDim: number,
  inDim: number,
  workgroupSize?: number,
): ConformanceCase {
  return {
    kernel: rows === 1 ? "matvec" : "matmul",
    variant: "row",
    shape: `${rows}x${outDim}x${inDim}${workgroupSize ? ` wg${workgroupSize}` : ""}`,
    ...PRODUCT,
    async run(gpu) {
      const rng = new Rng(outDim * 31 + inDim);
      const w = rng.uniformArray(outDim * inDim);
      const x = rng.uniformArray(rows * inDim);
      const kernel = await matmulKernel(gpu, { rows, outDim, inDim }, { workgroupSize });
      const { values, guardsIntact } = await runGuarded(gpu, rows * outDim, (out) => [
        kernel.bind({ w: gpu.upload(w), x: gpu.upload(x), out }),
      ]);
      return { actual: values, expected: matmul(w, x, rows, outDim, inDim), guardsIntact };
    },
  };
}

function rmsNormCase(rows: number, dim: number): ConformanceCase {
  return {
    kernel: "rmsNorm",
    shape: `${rows}x${dim}`,
    ...TIGHT,
    async run(gpu) {
      const rng = new Rng(dim + 7);
      const x = rng.uniformArray(rows * dim);
      const weight = rng.uniformArray(dim);
      const kernel = await rmsNormKernel(gpu, { rows, dim });
      const { values, guardsIntact } = await runGuarded(gpu, rows * dim, (out) => [
        kernel.bind({ x: gpu.upload(x), weight: gpu.upload(weight), out }),
      ]);
      return { actual: values, expected: rmsNorm(x, weight), guardsIntact };
    },
  };
}

function softmaxCase(rows: number, n: number): ConformanceCase {
  return {
    kernel: "softmax",
    shape: `${rows}x${n}`,
    ...TIGHT,
    async run(gpu) {
      const x = new Rng(n + 3).uniformArray(rows * n).map((v) => v * 10);
      const kernel = await softmaxKernel(gpu, { rows, n });
      const { values, guardsIntact } = await runGuarded(gpu, rows * n, (out) => [
        kernel.bind({ x: gpu.upload(x), out }),
      ]);
      return { actual: values, expected: softmax(x, n), guardsIntact };
    },
  };
}

function siluMulCase(n: number): ConformanceCase {
  return {
    kernel: "siluMul",
    shape: `${n}`,
    ...TIGHT,
    async run(gpu) {
      const rng = new Rng(n + 5);
      const gate = rng.uniformArray(n).map((v) => v * 4);
      const up = rng.uniformArray(n);
      const kernel = await siluMulKernel(gpu, n);
      const { values, guardsIntact } = await runGuarded(
        gpu,
        n,
        (out) => [kernel.bind({ gate: out, up: gpu.upload(up) })],
        gate,
      );
      return { actual: values, expected: siluMul(gate, up), guardsIntact };
    },
  };
}

function addCase(n: number): ConformanceCase {
  return {
    kernel: "add",
    shape: `${n}`,
    ...TIGHT,
    async run(gpu) {
      const rng = new Rng(n + 11);
      const x = rng.uniformArray(n);
      const delta = rng.uniformArray(n);
      const kernel = await addKernel(gpu, n);
      const { values, guardsIntact } = await runGuarded(
        gpu,
        n,
        (out) => [kernel.bind({ x: out, delta: gpu.upload(delta) })],
        x,
      );
      return { actual: values, expected: x.map((v, i) => v + delta[i]), guardsIntact };
    },
  };
}

function embeddingCase(rows: number, dim: number, vocabSize: number): ConformanceCase {
  return {
    kernel: "embedding",
    shape: `${rows}x${dim} vocab ${vocabSize}`,
    maxNmse: 0,
    maxAbsError: 0,
    async run(gpu) {
      const rng = new Rng(vocabSize);
      const table = rng.uniformArray(vocabSize * dim);
      const tokens = Uint32Array.from(
        { length: rows },
        (_, t) => t === 0 ? vocabSize - 1 : rng.nextUint32() % vocabSize,
      );
      const kernel = await embeddingKernel(gpu, { rows, dim, vocabSize });
      const { values, guardsIntact } = await runGuarded(gpu, rows * dim, (out) => [
        kernel.bind({ table: gpu.upload(table), tokens: gpu.upload(tokens), out }),
      ]);
      return { actual: values, expected: embedding(table, tokens, dim), guardsIntact };
    },
  };
}

function ropeCase(
  rows: number,
  nHeads: number,
  headDim: number,
  pos: number,
  layout: RopeLayout,
): ConformanceCase {
  return {
    kernel: "rope",
    shape: `${rows}x${nHeads}x${headDim} pos ${pos} ${layout}`,
    ...TIGHT,
    async run(gpu) {
      const maxSeqLen = pos + rows;
      const x = new Rng(headDim * nHeads + pos).uniformArray(rows * nHeads * headDim);
      const kernel = await ropeKernel(gpu, { rows, nHeads, headDim, maxSeqLen, layout });
      const table = gpu.upload(ropeTable(headDim, maxSeqLen));
      const { values, guardsIntact } = await runGuarded(
        gpu,
        x.length,
        (out) => [kernel.bind({ x: out, table, state: stateBuffer(gpu, pos) })],
        x,
      );
      const width = nHeads * headDim;
      const expected = new Float32Array(x.length);
      for (let t = 0; t < rows; t++) {
        expected.set(
          rope(x.subarray(t * width, (t + 1) * width), pos + t, headDim, { layout }),
          t * width,
        );
      }
      return { actual: values, expected, guardsIntact };
    },
  };
}

function kvAppendCase(
  rows: number,
  kvDim: number,
  maxSeqLen: number,
  pos: number,
): ConformanceCase {
  return {
    kernel: "kvAppend",
    shape: `${rows}x${kvDim} at ${pos} of ${maxSeqLen}`,
    maxNmse: 0,
    maxAbsError: 0,
    async run(gpu) {
      const rng = new Rng(kvDim + pos);
      const k = rng.uniformArray(rows * kvDim);
      const v = rng.uniformArray(rows * kvDim);
      const keys = rng.uniformArray(maxSeqLen * kvDim);
      const values = rng.uniformArray(maxSeqLen * kvDim);
      const kernel = await kvAppendKernel(gpu, { rows, kvDim, maxSeqLen });
      const keyCache = guardedBuffer(gpu, keys.length, keys);
      const valueCache = guardedBuffer(gpu, values.length, values);
      await gpu.submit([
        kernel.bind({
          k: gpu.upload(k),
          v: gpu.upload(v),
          keyCache: keyCache.range,
          valueCache: valueCache.range,
          state: stateBuffer(gpu, pos),
        }),
      ]);
      const gotKeys = await readGuarded(gpu, keyCache);
      const gotValues = await readGuarded(gpu, valueCache);
      const expectedKeys = keys.slice();
      const expectedValues = values.slice();
      expectedKeys.set(k.subarray(0, Math.min(rows, maxSeqLen - pos) * kvDim), pos * kvDim);
      expectedValues.set(v.subarray(0, Math.min(rows, maxSeqLen - pos) * kvDim), pos * kvDim);
      return {
        actual: concat(gotKeys.values, gotValues.values),
        expected: concat(expectedKeys, expectedValues),
        guardsIntact: gotKeys.guardsIntact && gotValues.guardsIntact,
      };
    },
  };
}

function attentionCase(
  rows: number,
  nHeads: number,
  nKvHeads: number,
  headDim: number,
  pos: number,
  splits?: number,
): ConformanceCase {
  return {
    kernel: rows === 1 ? "attention decode" : "attention prefill",
    variant: splits ? `split${splits}` : "split auto",
    shape: `${rows}x${nHeads}/${nKvHeads}x${headDim} at ${pos}${splits ? ` split ${splits}` : ""}`,
    ...PRODUCT,
    async run(gpu) {
      const rng = new Rng(nHeads * 100 + nKvHeads * 10 + headDim + pos);
      const maxSeqLen = pos + rows + 3; // positions past the last query hold noise it must not see
      const kvDim = nKvHeads * headDim;
      const q = rng.uniformArray(rows * nHeads * headDim);
      const keys = rng.uniformArray(maxSeqLen * kvDim);
      const values = rng.uniformArray(maxSeqLen * kvDim);
      const kernel = await attentionKernel(gpu, { rows, nHeads, nKvHeads, headDim, splits });
      const { values: actual, guardsIntact } = await runGuarded(
        gpu,
        q.length,
        (out) =>
          kernel.bind({
            q: gpu.upload(q),
            keyCache: gpu.upload(keys),
            valueCache: gpu.upload(values),
            state: stateBuffer(gpu, pos),
            out,
          }),
      );
      const width = nHeads * headDim;
      const expected = new Float32Array(q.length);
      const shape = { nHeads, nKvHeads, headDim };
      for (let t = 0; t < rows; t++) {
        expected.set(
          decodeAttention(q.subarray(t * width, (t + 1) * width), keys, values, pos + t, shape),
          t * width,
        );
      }
      return { actual, expected, guardsIntact };
    },
  };
}

function argmaxCase(n: number, ties: boolean, temperature = 0): ConformanceCase {
  return {
    kernel: temperature > 0 ? "argmax gumbel" : "argmax",
    shape: `${n}${ties ? " with ties" : ""}${temperature > 0 ? ` T=${temperature}` : ""}`,
    maxNmse: 0,
    maxAbsError: 0,
    async run(gpu) {
      const logits = new Rng(n + 13).uniformArray(n);
      if (ties) {
        // the maximum three times; the lowest of those ids must win
        for (const i of [n - 1, Math.floor(n / 2), Math.floor(n / 3) + 1]) logits[i] = 2;
      }
      const seed = 1234;
      const positions = temperature > 0 ? [0, 1, 2, 77] : [0];
      const actual: number[] = [];
      let guardsIntact = true;
      for (const pos of positions) {
        const kernel = await argmaxKernel(gpu, n, { temperature, seed });
        const state = new Uint32Array(STATE_WORDS);
        state[STATE.next] = pos;
        const run = await runGuarded(
          gpu,
          STATE_WORDS,
          (out) => [kernel.bind({ logits: gpu.upload(logits), state: out })],
          new Float32Array(state.buffer),
        );
        actual.push(new Uint32Array(run.raw)[STATE.token]);
        guardsIntact &&= run.guardsIntact && new Uint32Array(run.raw)[STATE.next] === pos;
      }
      return {
        actual: Float32Array.from(actual),
        expected: Float32Array.from(
          positions,
          (pos) => gumbelSample(logits, temperature, seed, pos),
        ),
        guardsIntact,
      };
    },
  };
}

function matmulSplitCase(): ConformanceCase {
  const [rows, outDim, inDim] = [3, 1000, 36];
  return {
    kernel: "matmul split",
    shape: `${rows}x${outDim}x${inDim} in 256-row blocks, last row`,
    ...PRODUCT,
    async run(gpu) {
      const rng = new Rng(4242);
      const w = rng.uniformArray(outDim * inDim);
      const x = rng.uniformArray(rows * inDim);
      const matrix = uploadMatrix(gpu, w, outDim, inDim, {
        maxBindingBytes: 256 * inDim * 4 + 100,
      });
      if (matrix.chunks.length !== 4) {
        throw new Error(`expected 4 blocks, got ${matrix.chunks.length}`);
      }
      const xBuffer = gpu.upload(x);
      const out = guardedBuffer(gpu, outDim);
      // only the last token's row, as the decoder's classifier does after a prefill
      await gpu.submit(
        await matmulDispatches(gpu, matrix, {
          rows: 1,
          x: xBuffer,
          out: out.range,
          xOffset: (rows - 1) * inDim,
        }),
      );
      const { values, guardsIntact } = await readGuarded(gpu, out);
      return {
        actual: values,
        expected: matmul(w, x.subarray((rows - 1) * inDim), 1, outDim, inDim),
        guardsIntact,
      };
    },
  };
}

function embeddingSplitCase(): ConformanceCase {
  const [dim, vocabSize] = [8, 300];
  return {
    kernel: "embedding split",
    shape: `4x${dim} vocab ${vocabSize} in 64-row blocks`,
    maxNmse: 0,
    maxAbsError: 0,
    async run(gpu) {
      const table = new Rng(77).uniformArray(vocabSize * dim);
      const matrix = uploadMatrix(gpu, table, vocabSize, dim, { maxBindingBytes: 64 * dim * 4 });
      const tokens = Uint32Array.of(0, 299, 64, 130);
      const out = guardedBuffer(gpu, tokens.length * dim);
      await gpu.submit(
        await embeddingDispatches(gpu, matrix, {
          rows: tokens.length,
          tokens: gpu.upload(tokens),
          out: out.range,
        }),
      );
      const { values, guardsIntact } = await readGuarded(gpu, out);
      return { actual: values, expected: embedding(table, tokens, dim), guardsIntact };
    },
  };
}

function copyCase(n: number): ConformanceCase {
  return {
    kernel: "copy",
    shape: `${n}`,
    maxNmse: 0,
    maxAbsError: 0,
    async run(gpu) {
      const src = new Rng(n).uniformArray(n);
      const kernel = await copyKernel(gpu, n);
      const { values, guardsIntact } = await runGuarded(
        gpu,
        n,
        (out) => [kernel.bind({ src: gpu.upload(src), dst: out })],
      );
      return { actual: values, expected: src, guardsIntact };
    },
  };
}

function concat(a: Float32Array, b: Float32Array): Float32Array {
  const out = new Float32Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/**
 * Every kernel at odd sizes (1, 7, 33, 257, 4099) and real LLaMA shapes (dim 288, 768, 2048;
 * hidden 768, 2048, 5632; head dim 48, 64, 128; query heads per KV head 1, 2, 4, 8).
 *
 * @example
 * ```ts
 * import { conformanceCases } from "./conformance.ts";
 * const kernels = new Set(conformanceCases().map((c) => c.kernel));
 * if (!kernels.has("attention decode")) throw new Error("missing");
 * ```
 */
export function conformanceCases(): ConformanceCase[] {
  return [
    matmulCase(1, 1, 1),
    matmulCase(1, 7, 33),
    matmulCase(1, 257, 4099),
    matmulCase(1, 768, 288, 32),
    matmulCase(1, 288, 768, 128),
    matmulCase(1, 5632, 2048),
    matmulCase(1, 2048, 5632),
    matmulCase(7, 33, 257),
    matmulCase(7, 768, 288),
    matmulCase(3, 2048, 2048),
    rmsNormCase(1, 1),
    rmsNormCase(3, 7),
    rmsNormCase(1, 4099),
    rmsNormCase(2, 288),
    rmsNormCase(7, 768),
    rmsNormCase(1, 2048),
    softmaxCase(1, 1),
    softmaxCase(3, 33),
    softmaxCase(1, 4099),
    softmaxCase(1, 32000),
    siluMulCase(1),
    siluMulCase(7),
    siluMulCase(4099),
    siluMulCase(768),
    siluMulCase(5632),
    addCase(1),
    addCase(257),
    addCase(288),
    addCase(2048),
    embeddingCase(1, 1, 1),
    embeddingCase(3, 7, 33),
    embeddingCase(5, 288, 4099),
    embeddingCase(2, 2048, 257),
    ropeCase(1, 7, 2, 0, "interleaved"),
    ropeCase(1, 6, 48, 5, "interleaved"),
    ropeCase(7, 8, 64, 100, "interleaved"),
    ropeCase(3, 32, 128, 1000, "interleaved"),
    ropeCase(1, 6, 48, 5, "half"),
    ropeCase(7, 8, 64, 100, "half"),
    ropeCase(3, 32, 128, 1000, "half"),
    kvAppendCase(1, 1, 1, 0),
    kvAppendCase(7, 33, 40, 3),
    kvAppendCase(1, 288, 16, 15),
    kvAppendCase(3, 256, 64, 62), // the last row falls past maxSeqLen and is dropped
    attentionCase(1, 1, 1, 1, 0),
    attentionCase(1, 6, 6, 48, 32),
    attentionCase(1, 12, 6, 64, 100),
    attentionCase(1, 32, 8, 128, 257),
    attentionCase(1, 32, 4, 128, 300),
    attentionCase(1, 8, 1, 64, 64),
    attentionCase(1, 2, 1, 257, 65),
    attentionCase(1, 32, 2, 64, 200), // 16 heads per KV head: two workgroups share it
    attentionCase(1, 32, 1, 64, 150),
    attentionCase(1, 8, 2, 64, 700, 1), // one workgroup walks every chunk
    attentionCase(1, 8, 2, 64, 700, 3), // three share them; some get one chunk more
    attentionCase(1, 8, 1, 64, 40, 8), // more splits than chunks: idle splits must not count
    attentionCase(3, 8, 8, 64, 300, 2),
    attentionCase(5, 24, 1, 48, 130),
    attentionCase(7, 8, 4, 64, 0),
    attentionCase(33, 6, 6, 48, 0),
    attentionCase(7, 8, 2, 64, 60),
    attentionCase(3, 32, 4, 128, 129),
    argmaxCase(1, false),
    argmaxCase(7, true),
    argmaxCase(4099, true),
    argmaxCase(32000, false),
    argmaxCase(512, false, 0.8),
    argmaxCase(32000, false, 1),
    matmulSplitCase(),
    copyCase(4),
    copyCase(4100),
    embeddingSplitCase(),
    ...variantCases(),
  ];
}

/** Runs `testCase` and judges it; a thrown error is a failed case, not a crash. */
export async function judgeCase(gpu: Gpu, testCase: ConformanceCase): Promise<ConformanceResult> {
  const bounds = { maxNmse: testCase.maxNmse, maxAbsError: testCase.maxAbsError };
  const base = {
    kernel: testCase.kernel,
    shape: testCase.shape,
    variant: testCase.variant ?? "default",
    bounds,
  };
  try {
    const { actual, expected, guardsIntact } = await testCase.run(gpu);
    const stats = compare(actual, expected);
    const passed = guardsIntact && stats.firstNonFinite < 0 && stats.nmse <= testCase.maxNmse &&
      stats.maxAbsError <= testCase.maxAbsError;
    return { ...base, ...stats, guardsIntact, passed };
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    return {
      ...base,
      nmse: NaN,
      maxAbsError: NaN,
      firstNonFinite: -1,
      guardsIntact: false,
      passed: false,
      error: message,
    };
  }
}

/** Runs cases in order, calling `onResult` after each. */
export async function runConformance(
  gpu: Gpu,
  cases: readonly ConformanceCase[] = conformanceCases(),
  onResult?: (result: ConformanceResult) => void,
): Promise<ConformanceResult[]> {
  const results: ConformanceResult[] = [];
  for (const testCase of cases) {
    const result = await judgeCase(gpu, testCase);
    onResult?.(result);
    results.push(result);
  }
  return results;
}

/**
 * The conformance table: kernel, variant, shape, NMSE, max abs error, guards, verdict, under a line
 * naming the adapter.
 *
 * @example
 * ```ts
 * import { formatConformanceTable } from "./conformance.ts";
 * const table = formatConformanceTable([], "test adapter");
 * if (!table.includes("test adapter")) throw new Error("wrong");
 * ```
 */
export function formatConformanceTable(
  results: readonly ConformanceResult[],
  adapter: string,
): string {
  const header = ["kernel", "variant", "shape", "NMSE", "max abs err", "guards", "result"];
  const rows = results.map((r) => [
    r.kernel,
    r.variant,
    r.shape,
    r.nmse.toExponential(2),
    r.maxAbsError.toExponential(2),
    r.guardsIntact ? "intact" : "BROKEN",
    r.passed ? "pass" : `FAIL${r.error ? `: ${r.error.split("\n")[0]}` : ""}`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd();
  const failed = results.filter((r) => !r.passed).length;
  return [
    `adapter: ${adapter}`,
    line(header),
    line(widths.map((w) => "-".repeat(w))),
    ...rows.map(line),
    `${results.length - failed} passed, ${failed} failed`,
  ].join("\n");
}
