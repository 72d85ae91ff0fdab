// A WebAssembly SIMD sum over a memory range: the CPU's read-stream probe at machine speed
// (one thread, four independent f32x4 accumulators, 64 bytes per iteration), so the ceiling
// is the memory system's rather than the JavaScript loop's.

import {
  ADD as F32X4_ADD,
  GET as LOCAL_GET,
  leb,
  LOAD as V128_LOAD,
  name,
  section,
  SET as LOCAL_SET,
  TEE as LOCAL_TEE,
} from "./_wasm_kernels.ts";

// sum(ptr, end): f32; locals 2..5 are the v128 accumulators.
// deno-fmt-ignore
const body = [
  0x01, 0x04, 0x7b, // 4 locals of v128
  0x03, 0x40, // loop
  ...[0, 1, 2, 3].flatMap((k) => [
    LOCAL_GET, 2 + k, LOCAL_GET, 0, ...V128_LOAD(16 * k), ...F32X4_ADD, LOCAL_SET, 2 + k,
  ]),
  LOCAL_GET, 0, 0x41, 0xc0, 0x00, 0x6a, LOCAL_TEE, 0, // ptr += 64
  LOCAL_GET, 1, 0x49, 0x0d, 0x00, // br_if (ptr < end)
  0x0b, // end loop
  LOCAL_GET, 2, LOCAL_GET, 3, ...F32X4_ADD, LOCAL_GET, 4, ...F32X4_ADD, LOCAL_GET, 5,
  ...F32X4_ADD, LOCAL_SET, 2,
  // horizontal sum of the four lanes (f32x4.extract_lane, f32.add)
  ...[0, 1, 2, 3].flatMap((lane) => [LOCAL_GET, 2, 0xfd, 0x1f, lane, ...(lane ? [0x92] : [])]),
  0x0b,
];

// deno-fmt-ignore
const MODULE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // "\0asm", version 1
  ...section(1, [0x01, 0x60, 0x02, 0x7f, 0x7f, 0x01, 0x7d]), // (i32, i32) -> f32
  ...section(3, [0x01, 0x00]),
  ...section(5, [0x01, 0x00, 0x01]), // one memory, at least one page
  ...section(7, [0x02, ...name("sum"), 0x00, 0x00, ...name("mem"), 0x02, 0x00]),
  ...section(10, [0x01, ...leb(body.length), ...body]),
]);

/** A WebAssembly memory of at least `bytes` (filled by the caller) and its SIMD sum. */
export interface WasmStream {
  /** The module's memory. */
  memory: WebAssembly.Memory;
  /** Sums the f32s in bytes `[0, bytes)` (`bytes` a multiple of 64). */
  sum(bytes: number): number;
}

/** Instantiates the sum over a memory grown to `bytes` (at most 4 GiB minus a page). */
export function wasmStream(bytes: number): WasmStream {
  const instance = new WebAssembly.Instance(new WebAssembly.Module(MODULE));
  const memory = instance.exports.mem as WebAssembly.Memory;
  const pages = Math.ceil(bytes / 65536);
  memory.grow(pages - memory.buffer.byteLength / 65536);
  const sum = instance.exports.sum as (ptr: number, end: number) => number;
  return { memory, sum: (n) => sum(0, n) };
}
