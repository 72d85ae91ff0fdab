/**
 * What every kernel module shares: the compiled-kernel type and the 1-D grid that covers any
 * number of elements. (The GPU-side decoder state is `state.ts`'s.)
 *
 * @module
 */
import { type BufferRange, type Dispatch, type Gpu, GpuError } from "./device.ts";
import { checkInteger } from "../reference/checks.ts";

/** A compiled kernel for one shape: bind buffers to get a {@linkcode Dispatch} to record. */
export interface Kernel<Bindings extends string> {
  /** Kernel name (with its shape), for errors and reports. */
  readonly name: string;
  /**
   * Binds named buffers, checked against the device's binding limits: the dispatches to record
   * (one for most kernels; a kernel in passes, such as split attention, gives several).
   */
  bind(buffers: Record<Bindings, BufferRange>): Dispatch[];
}

/** Compiles `code` and returns a kernel whose bindings are `names`, in binding order. */
export async function compileKernel<Name extends string>(
  gpu: Gpu,
  name: string,
  code: string,
  constants: Record<string, number>,
  names: readonly Name[],
  workgroups: readonly [number, number?, number?],
): Promise<Kernel<Name>> {
  const source = code.includes(WGSL_NAN) ? code + NAN_BITS_DECLARATION : code;
  const pipeline = await gpu.pipeline(name, source, constants);
  return {
    name,
    bind: (buffers) => [gpu.dispatch(name, pipeline, names.map((n) => buffers[n]), workgroups)],
  };
}

/**
 * A grid of `size`-wide workgroups covering `n` elements, folded into y beyond the per-dimension
 * limit. Shaders index with {@linkcode LINEAR_INDEX}.
 */
export function linearGrid(gpu: Gpu, n: number, size: number): [number, number] {
  const groups = Math.max(1, Math.ceil(n / size));
  const maxPerDim = gpu.limits.maxComputeWorkgroupsPerDimension;
  if (groups <= maxPerDim) return [groups, 1];
  const y = Math.ceil(groups / maxPerDim);
  if (y > maxPerDim) {
    throw new GpuError("linearGrid", `${n} elements need more than ${maxPerDim}² workgroups`);
  }
  return [Math.ceil(groups / y), y];
}

/** WGSL computing the element index `i` on a {@linkcode linearGrid}; needs `gid` and `nwg`. */
export const LINEAR_INDEX = "let i = gid.x + gid.y * nwg.x * WG;";

/** WGSL for the lowest finite f32: the start of a running maximum (WGSL has no -inf literal). */
export const WGSL_LOWEST = "-3.402823e38";

/**
 * WGSL for a quiet NaN, written where a kernel must fail loudly rather than return a wrong value.
 * It reads its bits from a private variable, at run time: a NaN constant expression is a
 * shader-creation error (Tint, in Chromium, rejects `bitcast<f32>(0x7fc00000u)`; naga accepts
 * it). {@linkcode compileKernel} declares the variable in shaders that use this.
 */
export const WGSL_NAN = "bitcast<f32>(nan_bits)";

/** The declaration {@linkcode WGSL_NAN} reads (module scope, so order does not matter). */
const NAN_BITS_DECLARATION = "\nvar<private> nan_bits: u32 = 0x7fc00000u;\n";

/** Workgroup size of the one-invocation-per-element kernels. */
export const ELEMENTWISE_WG = 64;

/**
 * WGSL of a kernel with one invocation per element `i < N` on a {@linkcode linearGrid}:
 * `bindings` declares the buffers, `body` computes element `i`.
 */
export function elementwiseWgsl(bindings: string, body: string): string {
  return /* wgsl */ `
override WG: u32 = 64u;
override N: u32;
${bindings}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  ${LINEAR_INDEX}
  if (i >= N) { return; }
  ${body}
}`;
}

/** Compiles an {@linkcode elementwiseWgsl} kernel over `n` elements. */
export function compileElementwise<Name extends string>(
  gpu: Gpu,
  name: string,
  code: string,
  n: number,
  names: readonly Name[],
  constants: Record<string, number> = {},
): Promise<Kernel<Name>> {
  checkInteger(`${name}: n`, n);
  return compileKernel(
    gpu,
    name,
    code,
    { WG: ELEMENTWISE_WG, N: n, ...constants },
    names,
    linearGrid(gpu, n, ELEMENTWISE_WG),
  );
}
