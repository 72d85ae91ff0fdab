/**
 * The decoder state on the GPU: a small `u32` buffer that kernels read instead of CPU-side
 * arguments, so that a decode step, or many, can be recorded once and replayed. This module owns
 * its layout and its creation; nothing else builds one by hand.
 *
 * @module
 */
import type { Gpu } from "./device.ts";

/**
 * Word indices of the state buffer:
 * - `token`: the current token id (written by argmax on the GPU);
 * - `pos`: position of the first row a forward pass processes;
 * - `next`: position of the token being chosen (argmax's noise key; where it is recorded).
 */
export const STATE = { token: 0, pos: 1, next: 2 } as const;

/** Words in the state buffer (one spare, for 16-byte alignment). */
export const STATE_WORDS = 4;

/** Bytes of the state buffer. */
export const STATE_BYTES: number = STATE_WORDS * 4;

/** The fields of a state buffer; absent ones are 0. */
export interface StateFields {
  /** The current token id. */
  token?: number;
  /** Position of the first row a forward pass processes. */
  pos?: number;
  /** Position of the token being chosen. */
  next?: number;
}

/**
 * The state buffer's words for `fields`.
 *
 * @example
 * ```ts
 * import { STATE, stateWords } from "./state.ts";
 * const words = stateWords({ pos: 5 });
 * if (words[STATE.pos] !== 5 || words[STATE.token] !== 0) throw new Error("wrong");
 * ```
 */
export function stateWords(fields: StateFields = {}): Uint32Array {
  const words = new Uint32Array(STATE_WORDS);
  words[STATE.token] = fields.token ?? 0;
  words[STATE.pos] = fields.pos ?? 0;
  words[STATE.next] = fields.next ?? 0;
  return words;
}

/**
 * A state buffer on `gpu` holding `fields`.
 *
 * @example
 * ```ts ignore
 * const state = createState(gpu, { pos: 0 });
 * await gpu.submit(rope.bind({ x, table, state }));
 * ```
 */
export function createState(gpu: Gpu, fields: StateFields = {}, label = "state"): GPUBuffer {
  return gpu.upload(stateWords(fields), label);
}

/**
 * Reads a state buffer's fields back.
 *
 * @example
 * ```ts ignore
 * const { token } = await readState(gpu, state);
 * ```
 */
export async function readState(
  gpu: Gpu,
  state: GPUBuffer,
): Promise<Required<StateFields>> {
  const words = await gpu.readUint32(state, STATE_WORDS);
  return { token: words[STATE.token], pos: words[STATE.pos], next: words[STATE.next] };
}

/** WGSL declaring the state buffer at `binding` of group 0. */
export function stateBinding(binding: number): string {
  return `@group(0) @binding(${binding}) var<storage, read> state: array<u32>;`;
}
