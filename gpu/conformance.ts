/**
 * The oracle harness: runs every variant of every registry entry (`pairs.ts`) on its seeded
 * inputs at each conformance shape, compares the outputs with the entry's reference (NMSE, max
 * abs error), and checks that guard regions around every output stay untouched and that no NaN
 * or Inf appears.
 *
 * No Deno APIs: this module runs in a browser too (`cli/conformance.ts` is the Deno CLI).
 *
 * @module
 */
import type { BufferRange, Gpu } from "./device.ts";
import {
  type AnyKernelPair,
  type AnyKernelVariant,
  kernelName,
  type OutputType,
  type PairBuffers,
  type Tolerance,
  unsupportedReason,
} from "./pair.ts";
import { KERNEL_PAIRS } from "./pairs.ts";
import { compare, type ErrorStats } from "../reference/compare.ts";

/** What one run of a case produced. */
export interface CaseRun {
  /** The kernel's outputs, concatenated in allocation order. */
  actual: Float32Array;
  /** The reference's outputs. */
  expected: Float32Array;
  /** Whether every guard word around the outputs kept its sentinel. */
  guardsIntact: boolean;
}

/** One variant of one kernel family at one shape, with its error bounds. */
export interface ConformanceCase extends Tolerance {
  /** The kernel column, e.g. "matvec". */
  kernel: string;
  /** The variant's name, e.g. "default". */
  variant: string;
  /** The shape, readable, e.g. "7x768x288". */
  shape: string;
  /** Why the case cannot run on `gpu`, or undefined when it can. */
  unsupported(gpu: Gpu): string | undefined;
  /** Runs the kernel and its reference. */
  run(gpu: Gpu): Promise<CaseRun>;
}

/** The verdict on one case. */
export interface ConformanceResult extends ErrorStats {
  /** The kernel column. */
  kernel: string;
  /** The variant. */
  variant: string;
  /** The shape. */
  shape: string;
  /** Whether the guards around outputs are intact. */
  guardsIntact: boolean;
  /** NMSE and max-abs within bounds, no NaN/Inf, guards intact, no error. */
  passed: boolean;
  /** Why the case could not run, if it threw. */
  error?: string;
  /** Why the variant does not apply on this device, when it was skipped (not run). */
  skipped?: string;
  /** The case's bounds. */
  bounds: Tolerance;
}

/** Floats of guard on each side of an output: 256 bytes, the storage-offset alignment. */
const GUARD_FLOATS = 64;
const SENTINEL = -1234.5;

/** An output buffer with guard regions on both sides; `range` is what the kernel binds. */
interface GuardedBuffer {
  buffer: GPUBuffer;
  range: GPUBufferBinding;
  length: number;
  type: OutputType;
}

function guardedBuffer(
  gpu: Gpu,
  length: number,
  initial: Float32Array | Uint32Array | undefined,
  type: OutputType,
): GuardedBuffer {
  const whole = new Float32Array(length + 2 * GUARD_FLOATS).fill(SENTINEL);
  if (initial) new Uint32Array(whole.buffer).set(new Uint32Array(initial.buffer), GUARD_FLOATS);
  const buffer = gpu.upload(whole, "guarded output");
  return {
    buffer,
    range: { buffer, offset: GUARD_FLOATS * 4, size: Math.ceil(length / 4) * 16 },
    length,
    type,
  };
}

/** Reads a guarded buffer back: its middle as numbers and whether both guards kept theirs. */
async function readGuarded(
  gpu: Gpu,
  guarded: GuardedBuffer,
): Promise<{ values: Float32Array; guardsIntact: boolean }> {
  const raw = await gpu.read(guarded.buffer, guarded.buffer.size);
  const all = new Float32Array(raw);
  const end = GUARD_FLOATS + guarded.length;
  const guardsIntact = all.subarray(0, GUARD_FLOATS).every((v) => v === SENTINEL) &&
    all.subarray(end).every((v) => v === SENTINEL);
  const values = guarded.type === "u32"
    ? Float32Array.from(new Uint32Array(raw, GUARD_FLOATS * 4, guarded.length))
    : all.slice(GUARD_FLOATS, end);
  return { values, guardsIntact };
}

/** Buffers for a conformance run: inputs uploaded, outputs guarded and remembered. */
function guardedBuffers(gpu: Gpu): PairBuffers & { outputs: GuardedBuffer[] } {
  const outputs: GuardedBuffer[] = [];
  return {
    outputs,
    input: (data, label) => gpu.upload(data, label),
    output(length, initial, type = "f32"): BufferRange {
      const guarded = guardedBuffer(gpu, length, initial, type);
      outputs.push(guarded);
      return guarded.range;
    },
  };
}

function concat(parts: readonly Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** Runs `variant` of `pair` at `shape` into guarded outputs and computes the reference. */
async function runPair(
  gpu: Gpu,
  pair: AnyKernelPair,
  variant: AnyKernelVariant,
  shape: unknown,
): Promise<CaseRun> {
  const inputs = pair.inputs(shape);
  const buffers = guardedBuffers(gpu);
  await gpu.submit(await variant.record(gpu, shape, inputs, buffers));
  const reads = [];
  for (const output of buffers.outputs) reads.push(await readGuarded(gpu, output));
  return {
    actual: concat(reads.map((r) => r.values)),
    expected: (variant.reference ?? pair.reference)(shape, inputs),
    guardsIntact: reads.every((r) => r.guardsIntact),
  };
}

/** The cases of one entry: each variant at each conformance shape. */
export function pairCases(pair: AnyKernelPair): ConformanceCase[] {
  return pair.conformance.flatMap((shape) =>
    pair.variants.map((variant): ConformanceCase => ({
      kernel: kernelName(pair, shape),
      variant: variant.name,
      shape: pair.describe(shape),
      ...(variant.tolerance ?? pair.tolerance),
      unsupported: (gpu) => unsupportedReason(variant, shape, gpu),
      run: (gpu) => runPair(gpu, pair, variant, shape),
    }))
  );
}

/** Every registry entry's cases, in registry order. */
export function conformanceCases(
  pairs: readonly AnyKernelPair[] = KERNEL_PAIRS,
): ConformanceCase[] {
  return pairs.flatMap(pairCases);
}

/** Runs `testCase` and judges it; a thrown error is a failed case, not a crash. */
export async function judgeCase(gpu: Gpu, testCase: ConformanceCase): Promise<ConformanceResult> {
  const bounds = { maxNmse: testCase.maxNmse, maxAbsError: testCase.maxAbsError };
  const base = {
    kernel: testCase.kernel,
    variant: testCase.variant,
    shape: testCase.shape,
    bounds,
  };
  const failed = { nmse: NaN, maxAbsError: NaN, firstNonFinite: -1, guardsIntact: false };
  const skipped = testCase.unsupported(gpu);
  if (skipped) return { ...base, ...failed, passed: false, skipped };
  try {
    const { actual, expected, guardsIntact } = await testCase.run(gpu);
    const stats = compare(actual, expected);
    const passed = guardsIntact && stats.firstNonFinite < 0 && stats.nmse <= testCase.maxNmse &&
      stats.maxAbsError <= testCase.maxAbsError;
    return { ...base, ...stats, guardsIntact, passed };
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    return { ...base, ...failed, passed: false, error: message };
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

/** Which checks a judged (not thrown) case broke, e.g. "NMSE > 1e-7, max abs > 0.0001". */
function failureReason(r: ConformanceResult): string {
  const reasons = [];
  if (r.firstNonFinite >= 0) reasons.push(`NaN/Inf at ${r.firstNonFinite}`);
  if (!r.guardsIntact) reasons.push("wrote outside its output");
  if (r.nmse > r.bounds.maxNmse) reasons.push(`NMSE > ${r.bounds.maxNmse}`);
  if (r.maxAbsError > r.bounds.maxAbsError) reasons.push(`max abs > ${r.bounds.maxAbsError}`);
  return reasons.join(", ");
}

/**
 * The conformance table: kernel, variant, shape, NMSE, max abs error, guards, verdict, under a
 * line naming the adapter. Skipped variants (a missing feature, a shape they do not serve) are
 * counted with their reasons, not listed.
 */
export function formatConformanceTable(
  results: readonly ConformanceResult[],
  adapter: string,
): string {
  const header = ["kernel", "variant", "shape", "NMSE", "max abs err", "guards", "result"];
  const ran = results.filter((r) => !r.skipped);
  const rows = ran.map((r) => [
    r.kernel,
    r.variant,
    r.shape,
    r.nmse.toExponential(2),
    r.maxAbsError.toExponential(2),
    r.guardsIntact ? "intact" : "BROKEN",
    r.passed ? "pass" : `FAIL: ${r.error ? r.error.split("\n")[0] : failureReason(r)}`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd();
  const failed = ran.filter((r) => !r.passed).length;
  const skipped = results.length - ran.length;
  return [
    `adapter: ${adapter}`,
    line(header),
    line(widths.map((w) => "-".repeat(w))),
    ...rows.map(line),
    `${ran.length - failed} passed, ${failed} failed${
      skipped
        ? `, ${skipped} skipped (${
          [...new Set(results.map((r) => r.skipped).filter(Boolean))].join("; ")
        })`
        : ""
    }`,
  ].join("\n");
}
