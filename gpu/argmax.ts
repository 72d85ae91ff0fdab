/**
 * Argmax over logits on the GPU, ties to the lowest index, written as a `u32` to `result[0]`
 * (bind the state buffer there and the chosen token feeds the next step's embedding lookup
 * with no read-back). One workgroup: strided scans, then a tree reduction.
 *
 * @module
 */
import type { Gpu } from "./device.ts";
import { checkDimension, compileKernel, type Kernel } from "./kernel.ts";

const WGSL = /* wgsl */ `
override WG: u32 = 256u; // a power of two: the reduction halves it
override N: u32;
@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read_write> result: array<u32>;
var<workgroup> bestValue: array<f32, WG>;
var<workgroup> bestIndex: array<u32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32) {
  var value = -3.402823e38;
  var index = 0xffffffffu;
  for (var i = lid; i < N; i += WG) {
    let v = logits[i];
    if (v > value || index == 0xffffffffu) { value = v; index = i; } // ascending i: ties keep the first
  }
  bestValue[lid] = value;
  bestIndex[lid] = index;
  workgroupBarrier();
  for (var half = WG / 2u; half > 0u; half /= 2u) {
    if (lid < half) {
      let v = bestValue[lid + half];
      let j = bestIndex[lid + half];
      if (v > bestValue[lid] || (v == bestValue[lid] && j < bestIndex[lid])) {
        bestValue[lid] = v;
        bestIndex[lid] = j;
      }
    }
    workgroupBarrier();
  }
  if (lid == 0u) { result[0] = bestIndex[0]; }
}`;

/**
 * Compiles argmax over `n` logits. Bindings: `logits (n)`, `result` (u32; `result[0]` is set).
 *
 * @example
 * ```ts ignore
 * const pick = await argmaxKernel(gpu, 32000);
 * await gpu.submit([pick.bind({ logits, result: state })]);
 * ```
 */
export function argmaxKernel(gpu: Gpu, n: number): Promise<Kernel<"logits" | "result">> {
  checkDimension(`argmax ${n}`, "n", n);
  const workgroupSize = Math.min(256, gpu.limits.maxComputeInvocationsPerWorkgroup);
  return compileKernel(
    gpu,
    `argmax ${n}`,
    WGSL,
    { WG: workgroupSize, N: n },
    ["logits", "result"],
    [1],
  );
}
