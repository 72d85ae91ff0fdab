/**
 * Generation bookkeeping on the GPU, after argmax: records the chosen token in the history at
 * `state.next`, moves `state.pos` there (when decoding against a KV cache), and advances
 * `state.next`. With it, N decode steps are one recorded command stream with no read-back.
 *
 * @module
 */
import type { Gpu } from "./device.ts";
import { compileKernel, type Kernel } from "./kernel.ts";
import { STATE } from "./state.ts";

const WGSL = /* wgsl */ `
override MOVE_POS: bool; // KV cache: the next forward pass starts at the new token
@group(0) @binding(0) var<storage, read_write> state: array<u32>;
@group(0) @binding(1) var<storage, read_write> history: array<u32>;

@compute @workgroup_size(1)
fn main() {
  let next = state[${STATE.next}u];
  if (next < arrayLength(&history)) { history[next] = state[${STATE.token}u]; }
  if (MOVE_POS) { state[${STATE.pos}u] = next; }
  state[${STATE.next}u] = next + 1u;
}`;

/**
 * Compiles the bookkeeping step. Bindings: `state` (u32, read and written), `history`
 * (u32 per position).
 *
 * @example
 * ```ts ignore
 * const advance = await advanceKernel(gpu, { movePos: true });
 * await gpu.submit([...pick.bind({ logits, state }), ...advance.bind({ state, history })]);
 * ```
 */
export function advanceKernel(
  gpu: Gpu,
  options: { movePos: boolean },
): Promise<Kernel<"state" | "history">> {
  return compileKernel(gpu, "advance", WGSL, { MOVE_POS: options.movePos ? 1 : 0 }, [
    "state",
    "history",
  ], [1]);
}
