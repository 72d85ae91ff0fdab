/**
 * The kernel-pair contract: what one registry entry (collected in `pairs.ts`) says about a kernel family
 * and its `reference/` oracle, so that the kernel tests, `deno task conformance`, the benchmark's
 * kernel table and the `deno bench` files all come from that one entry.
 *
 * No Deno APIs here (nor in the pair entries and `conformance.ts`): the same entries run in a
 * browser.
 *
 * @module
 */
import type { ProjectionDevice } from "./matmul/projection.ts";
import type { BufferRange, Dispatch, Gpu } from "./device.ts";

/** Error bounds of a comparison with the reference. */
export interface Tolerance {
  /** Largest NMSE that passes. */
  maxNmse: number;
  /** Largest max-abs error that passes. */
  maxAbsError: number;
}

/** For elementwise and normalization kernels. */
export const TIGHT: Tolerance = { maxNmse: 1e-7, maxAbsError: 1e-4 };
/** For reductions over long dot products (matmul, attention). */
export const PRODUCT: Tolerance = { maxNmse: 1e-9, maxAbsError: 1e-3 };
/** Bit-exact: copies, lookups, chosen token ids. */
export const EXACT: Tolerance = { maxNmse: 0, maxAbsError: 0 };

/**
 * What a variant's predicate may look at: the device's features, limits and workgroup budget
 * (the last two as a projection variant's fit takes them).
 */
export interface DeviceCapabilities extends ProjectionDevice {
  /** Features the device was created with (e.g. `shader-f16`, `subgroups`). */
  readonly features: { has(feature: string): boolean };
}

/** Element type of an output, for reading it back as numbers. */
export type OutputType = "f32" | "u32";

/**
 * The buffers a variant records with. The harness decides what they are: conformance
 * surrounds each output with guard regions and reads the outputs back, in allocation order,
 * concatenated, to compare with {@linkcode KernelPair.reference}; the benchmark allocates plain
 * buffers and never reads them.
 */
export interface PairBuffers {
  /** Uploads an input. */
  input(data: Float32Array | Uint32Array, label?: string): GPUBuffer;
  /**
   * An output of `length` words (`type`, f32 by default) holding `initial` (zeros if absent);
   * in-place kernels read it too.
   */
  output(length: number, initial?: Float32Array | Uint32Array, type?: OutputType): BufferRange;
}

/**
 * One implementation of a kernel family (the family's default, a tiled one, an f16 one...).
 * `S` is the family's shape, `I` its inputs.
 */
export interface KernelVariant<S, I> {
  /** Short name, shown in the conformance table's `variant` column, e.g. "default", "tiled". */
  readonly name: string;
  /** Device features the variant needs (it is skipped where one is missing). */
  readonly features?: readonly GPUFeatureName[];
  /** Where it applies beyond its features (a size, an adapter limit); everywhere if absent. */
  applies?(shape: S, device: DeviceCapabilities): boolean;
  /** Bounds replacing the family's (e.g. looser for f16 weights). */
  readonly tolerance?: Tolerance;
  /** Compiles and binds the kernel(s) for `shape` on `inputs`; returns the dispatches. */
  record(gpu: Gpu, shape: S, inputs: I, buffers: PairBuffers): Promise<Dispatch[]>;
}

/**
 * One kernel family and its oracle. `S` is its shape (plain data), `I` its inputs.
 *
 * Byte rule, the same for every family: the unique bytes the call reads plus those it writes
 * (every tensor once, however often a kernel rereads it; the 16-byte state buffer not counted).
 */
export interface KernelPair<S, I> {
  /** Family name, e.g. "matmul". */
  readonly family: string;
  /** The table's kernel column for a shape ("matvec" for one row...); `family` if absent. */
  kernel?(shape: S): string;
  /** The shape, readable, e.g. "7x768x288". */
  describe(shape: S): string;
  /** Seeded inputs for a shape (values in [-1, 1] unless the family needs otherwise). */
  inputs(shape: S): I;
  /** The expected outputs, in the order the variant allocates them, concatenated. */
  reference(shape: S, inputs: I): Float32Array;
  /** Shapes that conformance and the kernel tests check: odd sizes and real LLaMA ones. */
  readonly conformance: readonly S[];
  /** Shapes the benchmark times: `quick` for `--quick`, `full` otherwise. */
  readonly bench: { readonly quick: readonly S[]; readonly full: readonly S[] };
  /** Unique bytes read plus written by one call (see the byte rule above). */
  bytes(shape: S): number;
  /** Floating-point operations of one call (a multiply-add counts 2). */
  flops(shape: S): number;
  /** Bounds of the comparison with the reference. */
  readonly tolerance: Tolerance;
  /** The implementations; the first is the family's default. */
  readonly variants: readonly KernelVariant<S, I>[];
}

/** A registry entry with its shape and input types hidden, for lists of families. */
// deno-lint-ignore no-explicit-any
export type AnyKernelPair = KernelPair<any, any>;

/** A variant of any family. */
// deno-lint-ignore no-explicit-any
export type AnyKernelVariant = KernelVariant<any, any>;

/** Why `variant` cannot run `shape` on `device`, or undefined when it can. */
export function unsupportedReason<S>(
  variant: KernelVariant<S, unknown>,
  shape: S,
  device: DeviceCapabilities,
): string | undefined {
  const missing = (variant.features ?? []).filter((f) => !device.features.has(f));
  if (missing.length > 0) return `needs ${missing.join(", ")}`;
  if (variant.applies && !variant.applies(shape, device)) return "does not apply to this shape";
  return undefined;
}

/** The kernel column of a shape. */
export function kernelName<S>(pair: KernelPair<S, unknown>, shape: S): string {
  return pair.kernel?.(shape) ?? pair.family;
}
