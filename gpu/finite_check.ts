/**
 * Watches GPU-resident generation for overflow: scans the logits for an Inf or NaN and records
 * the smallest position whose logits held one, so generation that never reads logits back can
 * still stop with an error naming the position instead of choosing tokens from garbage.
 *
 * @module
 */
import type { Gpu } from "./device.ts";
import { compileKernel, type Kernel } from "./kernel.ts";
import { checkInteger } from "../reference/checks.ts";
import { STATE } from "./state.ts";

/** What the fault buffer holds while every logit seen so far was finite. */
export const NO_FAULT = 0xffffffff;

const WGSL = /* wgsl */ `
override WG: u32 = 256u;
override N: u32;
@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> state: array<u32>;
@group(0) @binding(2) var<storage, read_write> fault: array<atomic<u32>>;

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32) {
  var bad = false;
  for (var i = lid; i < N; i += WG) {
    // Exponent bits all ones: Inf or NaN. Bit tests survive fast-math, x != x may not.
    if ((bitcast<u32>(logits[i]) & 0x7f800000u) == 0x7f800000u) { bad = true; }
  }
  // The logits being scanned follow position next - 1, the last one processed.
  if (bad) { atomicMin(&fault[0], state[${STATE.next}u] - 1u); }
}`;

/**
 * Compiles the check over `n` logits. Bindings: `logits (n)`, `state` (u32, reads `next`),
 * `fault` (one u32, set to {@linkcode NO_FAULT} before use; lowered to the position whose
 * logits were not finite).
 *
 * @example
 * ```ts ignore
 * const check = await finiteCheckKernel(gpu, 32000);
 * const fault = gpu.upload(Uint32Array.of(NO_FAULT));
 * await gpu.submit(check.bind({ logits, state, fault }));
 * if ((await gpu.readUint32(fault))[0] !== NO_FAULT) throw new Error("overflow");
 * ```
 */
export function finiteCheckKernel(
  gpu: Gpu,
  n: number,
): Promise<Kernel<"logits" | "state" | "fault">> {
  const name = `finite check ${n}`;
  checkInteger(`${name}: n`, n);
  const workgroupSize = Math.min(256, gpu.limits.maxComputeInvocationsPerWorkgroup);
  return compileKernel(gpu, name, WGSL, { WG: workgroupSize, N: n }, [
    "logits",
    "state",
    "fault",
  ], [1]);
}
