/**
 * The K-quant products (`Q4_K`, `Q5_K`, `Q6_K` weights, see `reference/kquants.ts`): the GPU
 * layout of their super-blocks and the WGSL that reads it directly, each weight dequantized in
 * registers (no f32 copy of the matrix on the GPU). `quant.ts` dispatches them.
 *
 * GPU layout (what {@linkcode packKQuant} builds from GGUF's bytes): `q4_k` (144 bytes) and
 * `q5_k` (176) super-blocks are whole words, so the weights are GGUF's bytes as they are, read
 * as `u32`. `q6_k`'s 210-byte block is not: its 208 bytes of quants and int8 scales stay
 * contiguous (52 words per block) and its f16 `d`s move apart, two per `u32`, as Q8_0's scales
 * do.
 *
 * Work unit: 64 values of one super-block (4 per block). In `q4_k`/`q5_k` unit `c` is values
 * `64c..64c+63` (sub-blocks `2c` and `2c + 1`: the low and high nibbles of the same 32 quant
 * bytes); in `q6_k` unit `2h + k` is the values `128h + 16k + l + 32i` (`l` < 16, `i` < 4),
 * which share 4 of the 16 scales. Layouts: `row`, one invocation per output row looping over
 * its units (best where an invocation is a CPU loop); `cooperative`, a workgroup per output row
 * whose invocations take the row's units in turn (adjacent invocations reading adjacent
 * words), then add their partial sums in a tree in workgroup memory (one float per
 * invocation).
 *
 * @module
 */
import { GpuError } from "../device.ts";
import {
  K_BLOCK_BYTES,
  K_SUPER_BLOCK,
  kQuantBytes,
  type KQuantFormat,
} from "../../reference/kquants.ts";

/** Words per super-block in the GPU layout, by format. */
export const K_BLOCK_WORDS: Readonly<Record<KQuantFormat, number>> = {
  q4_k: 36,
  q5_k: 44,
  q6_k: 52,
};

/** How a K-quant product spreads a row's dot product (see the module documentation). */
export type KQuantLayout = "row" | "cooperative";

/**
 * GGUF's bytes of a `(outDim, inDim)` K-quant matrix in the GPU layout: the block words, and
 * for `q6_k` the f16 `d`s two per word (empty otherwise). Throws, naming the field, unless
 * `inDim` is a multiple of 256 and `bytes` has the matrix's size.
 *
 * @example
 * ```ts
 * import { quantizeKQuant } from "../../reference/kquants.ts";
 * import { packKQuant } from "./kquant.ts";
 * const { weights, scales } = packKQuant(quantizeKQuant(new Float32Array(512).fill(1), "q6_k"), "q6_k", 2, 256);
 * if (weights.length !== 104 || scales.length !== 1) throw new Error("wrong");
 * ```
 */
export function packKQuant(
  bytes: Uint8Array,
  format: KQuantFormat,
  outDim: number,
  inDim: number,
): { weights: Uint32Array; scales: Uint32Array } {
  const what = `pack ${format} ${outDim}x${inDim}`;
  if (inDim % K_SUPER_BLOCK !== 0) {
    throw new GpuError(what, `inDim: expected a multiple of ${K_SUPER_BLOCK}, got ${inDim}`);
  }
  const expected = kQuantBytes(format, outDim * inDim);
  if (bytes.byteLength !== expected) {
    throw new GpuError(what, `expected ${expected} bytes, got ${bytes.byteLength}`);
  }
  if (format !== "q6_k") {
    return { weights: new Uint32Array(bytes.slice().buffer), scales: new Uint32Array(0) };
  }
  const blocks = outDim * inDim / K_SUPER_BLOCK;
  const blockBytes = K_BLOCK_BYTES.q6_k;
  const quants = new Uint8Array(blocks * 208);
  const scales = new Uint16Array(blocks + (blocks % 2));
  for (let b = 0; b < blocks; b++) {
    const at = b * blockBytes;
    quants.set(bytes.subarray(at, at + 208), b * 208);
    scales[b] = bytes[at + 208] | (bytes[at + 209] << 8);
  }
  return { weights: new Uint32Array(quants.buffer), scales: new Uint32Array(scales.buffer) };
}

/** `unitDot(block, part, xb)`: one work unit's dot product with `x` from `xb` (the block's). */
function unitWgsl(format: KQuantFormat): string {
  const x4 = (i: string) => `vec4<f32>(x[${i}], x[${i} + 1u], x[${i} + 2u], x[${i} + 3u])`;
  const nibbles = (word: string, shift: number) =>
    `vec4<f32>(vec4<u32>((${word} >> ${shift}u) & 15u, (${word} >> ${8 + shift}u) & 15u, ` +
    `(${word} >> ${16 + shift}u) & 15u, (${word} >> ${24 + shift}u) & 15u))`;
  if (format === "q6_k") {
    // Bits `shift`, `shift + 1` of each byte of `word`, as the quants' bits 4-5.
    const pairs = (word: string, shift: number) =>
      `(vec4<f32>(vec4<u32>((${word} >> ${shift}u) & 3u, (${word} >> ${8 + shift}u) & 3u, ` +
      `(${word} >> ${16 + shift}u) & 3u, (${word} >> ${24 + shift}u) & 3u)) * 16.0)`;
    return /* wgsl */ `
fn scale6(base: u32, s: u32) -> f32 {
  return f32(extractBits(i32(w[base + 48u + s / 4u]), 8u * (s % 4u), 8u));
}
fn blockScale(b: u32) -> f32 {
  let pair = unpack2x16float(scales[b / 2u]);
  return select(pair.x, pair.y, (b & 1u) == 1u);
}
fn unitDot(block: u32, part: u32, xb: u32) -> f32 {
  let base = block * 52u;
  let h = part / 2u;
  let second = part % 2u;
  let s = 8u * h + second;
  var acc = vec4<f32>(0.0);
  for (var kk = 0u; kk < 4u; kk++) {
    let k = 4u * second + kk;
    let a = w[base + 16u * h + k];
    let b = w[base + 16u * h + 8u + k];
    let q = w[base + 32u + 8u * h + k];
    let xi = xb + 128u * h + 4u * k;
    acc.x += dot(${nibbles("a", 0)} + ${pairs("q", 0)} - 32.0, ${x4("xi")});
    acc.y += dot(${nibbles("b", 0)} + ${pairs("q", 2)} - 32.0, ${x4("xi + 32u")});
    acc.z += dot(${nibbles("a", 4)} + ${pairs("q", 4)} - 32.0, ${x4("xi + 64u")});
    acc.w += dot(${nibbles("b", 4)} + ${pairs("q", 6)} - 32.0, ${x4("xi + 96u")});
  }
  let sc = vec4<f32>(scale6(base, s), scale6(base, s + 2u), scale6(base, s + 4u), scale6(base, s + 6u));
  return blockScale(block) * dot(sc, acc);
}`;
  }
  const five = format === "q5_k";
  const words = K_BLOCK_WORDS[format];
  // Fifth bits of the four bytes of `hb` (qh already shifted to the unit), as 16s.
  const fifth = (shift: number) =>
    `(vec4<f32>(vec4<u32>((hb >> ${shift}u) & 1u, (hb >> ${8 + shift}u) & 1u, ` +
    `(hb >> ${16 + shift}u) & 1u, (hb >> ${24 + shift}u) & 1u)) * 16.0)`;
  return /* wgsl */ `
fn kbyte(base: u32, i: u32) -> u32 {
  return (w[base + i / 4u] >> (8u * (i % 4u))) & 255u;
}
// ggml's get_scale_min_k4 on the 12 scale bytes at block byte 4: (scale, min) of sub-block j.
fn scaleMin(base: u32, j: u32) -> vec2<f32> {
  if (j < 4u) {
    return vec2<f32>(f32(kbyte(base, 4u + j) & 63u), f32(kbyte(base, 8u + j) & 63u));
  }
  let low = kbyte(base, 8u + j);
  return vec2<f32>(f32((low & 15u) | ((kbyte(base, j) >> 6u) << 4u)),
                   f32((low >> 4u) | ((kbyte(base, 4u + j) >> 6u) << 4u)));
}
fn unitDot(block: u32, c: u32, xb: u32) -> f32 {
  let base = block * ${words}u;
  let dm = unpack2x16float(w[base]);
  let s1 = scaleMin(base, 2u * c);
  let s2 = scaleMin(base, 2u * c + 1u);
  var dotLow = 0.0;
  var dotHigh = 0.0;
  var sumLow = 0.0;
  var sumHigh = 0.0;
  for (var k = 0u; k < 8u; k++) {
    let word = w[base + ${five ? 12 : 4}u + 8u * c + k];
    let xl = ${x4("xb + 64u * c + 4u * k")};
    let xh = ${x4("xb + 64u * c + 32u + 4u * k")};${
    five ? `\n    let hb = w[base + 4u + k] >> (2u * c);` : ""
  }
    dotLow += dot(${nibbles("word", 0)}${five ? ` + ${fifth(0)}` : ""}, xl);
    dotHigh += dot(${nibbles("word", 4)}${five ? ` + ${fifth(1)}` : ""}, xh);
    sumLow += dot(xl, vec4<f32>(1.0));
    sumHigh += dot(xh, vec4<f32>(1.0));
  }
  return dm.x * (s1.x * dotLow + s2.x * dotHigh) - dm.y * (s1.y * sumLow + s2.y * sumHigh);
}`;
}

/**
 * The WGSL of a K-quant product `out[t] = W · x[t]` over a row block of `W` (override constants
 * `OUT_DIM`, the block's rows, `IN_DIM`, `X_OFFSET`, `ROWS`, `OUT_STRIDE`, the whole matrix's
 * rows, and `OUT_OFFSET`, the block's first row: row `r` of the block writes
 * `out[t · OUT_STRIDE + OUT_OFFSET + r]`; bindings `w` 0 and `q6_k`'s `scales` 3, the block's
 * own, `x` 1, `out` 2). `row`: grid
 * `(ceil(OUT_DIM / workgroupSize), ROWS)`; `cooperative`: grid `(groupsX, ROWS, ceil(OUT_DIM /
 * groupsX))`, output row `wid.x + wid.z · groupsX`, and `workgroupSize` (a power of two)
 * floats of workgroup memory.
 *
 * @example
 * ```ts
 * import { kQuantWgsl } from "./kquant.ts";
 * if (!kQuantWgsl("q4_k", "cooperative", 64, 65535).includes("array<f32, 64>")) throw new Error("wrong");
 * ```
 */
export function kQuantWgsl(
  format: KQuantFormat,
  layout: KQuantLayout,
  workgroupSize: number,
  groupsX: number,
): string {
  if (layout === "cooperative" && (workgroupSize & (workgroupSize - 1)) !== 0) {
    throw new GpuError(
      `matmul ${format}`,
      `workgroupSize: expected a power of two, got ${workgroupSize}`,
    );
  }
  const header = /* wgsl */ `
override OUT_DIM: u32;
override IN_DIM: u32;
override X_OFFSET: u32 = 0u;
override ROWS: u32 = 1u;
override OUT_STRIDE: u32; // the whole matrix's rows (OUT_DIM is this row block's)
override OUT_OFFSET: u32 = 0u; // the block's first row
const WG: u32 = ${workgroupSize}u;
@group(0) @binding(0) var<storage, read> w: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
${format === "q6_k" ? "@group(0) @binding(3) var<storage, read> scales: array<u32>;" : ""}
${unitWgsl(format)}
`;
  if (layout === "row") {
    return header + /* wgsl */ `
@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let r = gid.x;
  let t = gid.y;
  if (r >= OUT_DIM || t >= ROWS) { return; }
  let xBase = X_OFFSET + t * IN_DIM;
  let blocks = IN_DIM / 256u;
  var acc = 0.0;
  for (var u = 0u; u < 4u * blocks; u++) {
    acc += unitDot(r * blocks + u / 4u, u % 4u, xBase + (u / 4u) * 256u);
  }
  out[t * OUT_STRIDE + OUT_OFFSET + r] = acc;
}`;
  }
  return header + /* wgsl */ `
var<workgroup> partial: array<f32, ${workgroupSize}>;
@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let r = wid.x + wid.z * ${groupsX}u;
  let t = wid.y;
  if (r >= OUT_DIM) { return; } // uniform: the whole workgroup leaves
  let xBase = X_OFFSET + t * IN_DIM;
  let blocks = IN_DIM / 256u;
  var acc = 0.0;
  for (var u = lid; u < 4u * blocks; u += WG) {
    acc += unitDot(r * blocks + u / 4u, u % 4u, xBase + (u / 4u) * 256u);
  }
  partial[lid] = acc;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { partial[lid] += partial[lid + s]; }
    workgroupBarrier();
  }
  if (lid == 0u) { out[t * OUT_STRIDE + OUT_OFFSET + r] = partial[0]; }
}`;
}
