/**
 * IEEE 754 half precision (binary16, "f16"): conversion from and to float32 with round to
 * nearest, ties to even, subnormals, ±Infinity and NaN. Uses the runtime's `Float16Array` where
 * it has one (Deno 2 does) and exact plain arithmetic otherwise.
 *
 * Error: a finite value of magnitude below 65520 rounds to a half within a relative 2⁻¹¹ (half a
 * unit in the last place, 10 stored mantissa bits) when at least 2⁻¹⁴, and within an absolute
 * 2⁻²⁵ below that (subnormals); from 65520 on it becomes ±Infinity.
 *
 * @module
 */
import { f16BitsToF32Software, f32ToF16BitsSoftware } from "./_f16_software.ts";

/** The largest finite half-precision value. */
export const F16_MAX = 65504;

const RuntimeFloat16Array = (globalThis as { Float16Array?: typeof Float16Array }).Float16Array;
const scratch = RuntimeFloat16Array ? new RuntimeFloat16Array(1) : undefined;
const scratchBits = scratch ? new Uint16Array(scratch.buffer) : undefined;

/**
 * The binary16 bits nearest `x`: round to nearest, ties to even; NaN gives the quiet NaN
 * `0x7e00`; magnitudes from 65520 on give ±Infinity (`0x7c00`, `0xfc00`).
 *
 * @example
 * ```ts
 * import { f32ToF16Bits } from "./f16.ts";
 * if (f32ToF16Bits(1) !== 0x3c00 || f32ToF16Bits(-2) !== 0xc000) throw new Error("wrong");
 * ```
 */
export function f32ToF16Bits(x: number): number {
  if (!scratch || !scratchBits) return f32ToF16BitsSoftware(x);
  if (Number.isNaN(x)) return 0x7e00; // one canonical NaN whatever the payload
  scratch[0] = x;
  return scratchBits[0];
}

/**
 * The value of the binary16 `bits` (only the low 16 bits are read).
 *
 * @example
 * ```ts
 * import { f16BitsToF32 } from "./f16.ts";
 * if (f16BitsToF32(0x3c00) !== 1 || f16BitsToF32(0x0001) !== 2 ** -24) throw new Error("wrong");
 * ```
 */
export function f16BitsToF32(bits: number): number {
  if (!scratch || !scratchBits) return f16BitsToF32Software(bits & 0xffff);
  scratchBits[0] = bits;
  return scratch[0];
}

/**
 * Converts every value to binary16 bits.
 *
 * @example
 * ```ts
 * import { toF16 } from "./f16.ts";
 * if (toF16(new Float32Array([1, 0.5])).join() !== "15360,14336") throw new Error("wrong");
 * ```
 */
export function toF16(values: ArrayLike<number>): Uint16Array {
  if (RuntimeFloat16Array) {
    const halves = RuntimeFloat16Array.from(values);
    const bits = new Uint16Array(halves.buffer);
    for (let i = 0; i < bits.length; i++) if (Number.isNaN(halves[i])) bits[i] = 0x7e00;
    return bits;
  }
  return Uint16Array.from(values, f32ToF16BitsSoftware);
}

/**
 * Converts binary16 bits to float32 values (exactly: every half is a float32).
 *
 * @example
 * ```ts
 * import { fromF16 } from "./f16.ts";
 * if (fromF16(Uint16Array.of(0x3c00, 0xc000)).join() !== "1,-2") throw new Error("wrong");
 * ```
 */
export function fromF16(bits: Uint16Array): Float32Array {
  if (RuntimeFloat16Array) {
    return Float32Array.from(new RuntimeFloat16Array(bits.buffer, bits.byteOffset, bits.length));
  }
  return Float32Array.from(bits, f16BitsToF32Software);
}

/**
 * Rounds every value to the nearest half and back: what storing in f16 does to a tensor.
 *
 * @example
 * ```ts
 * import { roundToF16 } from "./f16.ts";
 * if (roundToF16(new Float32Array([1 + 2 ** -12]))[0] !== 1) throw new Error("wrong");
 * ```
 */
export function roundToF16(values: ArrayLike<number>): Float32Array {
  return fromF16(toF16(values));
}
