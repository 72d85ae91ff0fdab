// The benchmark's kernels: every registry entry (gpu/pairs.ts) at its bench shapes, the
// reference on the CPU and each variant on WebGPU. Used by `deno task bench`'s kernel table
// and by `deno bench bench/kernels_bench.ts`.
import type { Dispatch, Gpu } from "../gpu/device.ts";
import {
  type AnyKernelPair,
  kernelName,
  type PairBuffers,
  unsupportedReason,
} from "../gpu/pair.ts";
import { KERNEL_PAIRS } from "../gpu/pairs.ts";

/** One kernel variant at one shape, ready to time. */
export interface BenchKernel {
  /** The kernel column, e.g. "matvec". */
  kernel: string;
  /** The variant, e.g. "default". */
  variant: string;
  /** The shape, readable. */
  shape: string;
  /** Unique bytes read plus written per call. */
  bytes: number;
  /** Floating-point operations per call. */
  flops: number;
  /** One call of the reference; only on a shape's first variant (the CPU has no variants). */
  cpu?: () => void;
  /** Why the variant cannot run on `gpu`, or undefined when it can. */
  unsupported(gpu: Gpu): string | undefined;
  /** Compiles the variant and records one call on plain buffers. */
  gpu(gpu: Gpu): Promise<Dispatch[]>;
}

/** Inputs uploaded, outputs allocated (holding their initial values), nothing read back. */
function plainBuffers(gpu: Gpu): PairBuffers {
  return {
    input: (data, label) => gpu.upload(data, label),
    output: (length, initial) =>
      initial ? gpu.upload(initial, "output") : gpu.createBuffer(length * 4, "output"),
  };
}

/**
 * Every entry at its `quick` or `full` bench shapes: each family's default (its first variant),
 * or every variant with `allVariants` (`deno task bench --all-variants`, `deno bench`); tuning
 * measures the variants at the model's own shapes either way.
 */
export function benchKernels(
  quick: boolean,
  pairs: readonly AnyKernelPair[] = KERNEL_PAIRS,
  allVariants = false,
): BenchKernel[] {
  return pairs.flatMap((pair) =>
    (quick ? pair.bench.quick : pair.bench.full).flatMap((shape) => {
      let inputs: unknown;
      const shapeInputs = () => inputs ??= pair.inputs(shape);
      const variants = allVariants ? pair.variants : pair.variants.slice(0, 1);
      return variants.map((variant, i): BenchKernel => ({
        kernel: kernelName(pair, shape),
        variant: variant.name,
        shape: pair.describe(shape),
        bytes: pair.bytes(shape),
        flops: pair.flops(shape),
        cpu: i === 0 ? () => void pair.reference(shape, shapeInputs()) : undefined,
        unsupported: (gpu) => unsupportedReason(variant, shape, gpu),
        gpu: (gpu) => variant.record(gpu, shape, shapeInputs(), plainBuffers(gpu)),
      }));
    })
  );
}
