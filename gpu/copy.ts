/**
 * A plain copy `dst[i] = src[i]` of `vec4<f32>`: the memory roofline. Its achieved bandwidth
 * is what the benchmarks compare every kernel and decoder step against.
 *
 * @module
 */
import type { Gpu } from "./device.ts";
import { compileElementwise, elementwiseWgsl, type Kernel } from "./kernel.ts";
import { EXACT, type KernelPair } from "./pair.ts";
import { Rng } from "../reference/random.ts";

const WGSL = elementwiseWgsl(
  `@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<f32>>;`,
  "dst[i] = src[i];",
);

/**
 * Compiles a copy of `n` floats (`n` a multiple of 4). Bindings: `src (n)`, `dst (n)`.
 *
 * @example
 * ```ts ignore
 * const copy = await copyKernel(gpu, 1 << 24);
 * await gpu.submit(copy.bind({ src, dst }));
 * ```
 */
export function copyKernel(gpu: Gpu, n: number): Promise<Kernel<"src" | "dst">> {
  if (n % 4 !== 0) throw new RangeError(`copy: n must be a multiple of 4, got ${n}`);
  return compileElementwise(gpu, `copy ${n}`, WGSL, n / 4, ["src", "dst"]);
}

// ─── Registry entry: this kernel against its reference (collected in `pairs.ts`) ───

/**
 * The plain copy whose bandwidth is the benchmark's roofline; its reference copies the input
 * (returning the input itself would time nothing, and the bench's ceiling check caught it
 * "copying" at thousands of GB/s).
 */
export const COPY_PAIR: KernelPair<{ n: number }, { src: Float32Array }> = {
  family: "copy",
  describe: ({ n }) => `${n}`,
  inputs: ({ n }) => ({ src: new Rng(n).uniformArray(n) }),
  reference: (_, { src }) => src.slice(),
  conformance: [{ n: 4 }, { n: 4100 }],
  bench: { quick: [{ n: 1 << 16 }], full: [{ n: 1 << 22 }] },
  bytes: ({ n }) => 4 * 2 * n,
  flops: () => 0,
  tolerance: EXACT,
  variants: [{
    name: "default",
    record: async (gpu, { n }, { src }, buffers) =>
      (await copyKernel(gpu, n)).bind({ src: buffers.input(src), dst: buffers.output(n) }),
  }],
};
