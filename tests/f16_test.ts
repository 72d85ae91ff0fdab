import { expect } from "expect";
import { f16BitsToF32, f32ToF16Bits, fromF16, roundToF16, toF16 } from "../reference/mod.ts";
import { f16BitsToF32Software, f32ToF16BitsSoftware } from "../reference/_f16_software.ts";
import { Rng } from "../reference/random.ts";

const IMPLEMENTATIONS = [
  ["runtime", f32ToF16Bits, f16BitsToF32],
  ["software", f32ToF16BitsSoftware, f16BitsToF32Software],
] as const;

// Hand-derived from the binary16 definition: 1 sign, 5 exponent (bias 15), 10 mantissa bits.
const ENCODE_TABLE: [number, number][] = [
  [0, 0x0000],
  [-0, 0x8000],
  [1, 0x3c00],
  [-2, 0xc000],
  [0.5, 0x3800],
  [65504, 0x7bff], // largest finite
  [65519.99, 0x7bff], // below the halfway point to 65536
  [65520, 0x7c00], // halfway: ties to even is Infinity
  [1e6, 0x7c00],
  [-1e6, 0xfc00],
  [Infinity, 0x7c00],
  [-Infinity, 0xfc00],
  [NaN, 0x7e00],
  [2 ** -14, 0x0400], // smallest normal
  [2 ** -24, 0x0001], // smallest subnormal
  [1023 * 2 ** -24, 0x03ff], // largest subnormal
  [2 ** -25, 0x0000], // halfway between 0 and the smallest subnormal: even is 0
  [2 ** -25 * 1.5, 0x0001],
  [3 * 2 ** -25, 0x0002], // halfway between subnormals 1 and 2: even is 2
  [1 + 2 ** -11, 0x3c00], // halfway between 1 and its successor: even is 1
  [1 + 3 * 2 ** -11, 0x3c02], // halfway between 0x3c01 and 0x3c02: even is 0x3c02
  [1 + 2 ** -11 + 2 ** -20, 0x3c01], // just past halfway
  [2 - 2 ** -11, 0x4000], // halfway between 0x3fff and 2: even carries into the next binade
  [0.1, 0x2e66],
  [Math.fround(Math.PI), 0x4248],
];

for (const [name, encode, decode] of IMPLEMENTATIONS) {
  Deno.test(`f16 (${name}) encodes the edge-case table`, () => {
    for (const [value, bits] of ENCODE_TABLE) {
      expect([value, encode(value)]).toEqual([value, bits]);
    }
  });

  Deno.test(`f16 (${name}) decodes all 65536 bit patterns and re-encodes every non-NaN`, () => {
    for (let bits = 0; bits < 65536; bits++) {
      const exponent = (bits >> 10) & 31;
      const mantissa = bits & 1023;
      const sign = bits >> 15 ? -1 : 1;
      const expected = exponent === 31
        ? (mantissa ? NaN : sign * Infinity)
        : sign * (exponent === 0
          ? mantissa / 1024 * 2 ** -14
          : (1 + mantissa / 1024) * 2 ** (exponent - 15));
      const value = decode(bits);
      if (!Object.is(value, expected)) expect([bits, value]).toEqual([bits, expected]);
      const back = encode(value);
      const want = Number.isNaN(expected) ? 0x7e00 : bits;
      if (back !== want) expect([bits, back]).toEqual([bits, want]);
    }
  });

  Deno.test(`f16 (${name}) rounds every midpoint to even and every near-midpoint to nearest`, () => {
    for (let bits = 0; bits < 0x7bff; bits++) {
      const low = f16BitsToF32Software(bits);
      const high = f16BitsToF32Software(bits + 1);
      const middle = (low + high) / 2; // exact in double precision
      const nudge = (high - low) * 2 ** -12;
      const even = bits % 2 === 0 ? bits : bits + 1;
      for (
        const [value, want] of [[middle, even], [middle - nudge, bits], [middle + nudge, bits + 1]]
      ) {
        const got = encode(value);
        if (got !== want) expect([value, got]).toEqual([value, want]);
        const negative = encode(-value);
        if (negative !== (want | 0x8000)) {
          expect([-value, negative]).toEqual([-value, want | 0x8000]);
        }
      }
    }
  });
}

Deno.test("f16 runtime and software conversions agree on 200000 random float32 bit patterns", () => {
  const rng = new Rng(12);
  const bits = new Uint32Array(1);
  const f32 = new Float32Array(bits.buffer);
  for (let i = 0; i < 200_000; i++) {
    bits[0] = rng.nextUint32();
    const value = f32[0];
    if (f32ToF16Bits(value) !== f32ToF16BitsSoftware(value)) {
      expect([value, f32ToF16Bits(value)]).toEqual([value, f32ToF16BitsSoftware(value)]);
    }
  }
});

Deno.test("toF16, fromF16 and roundToF16 convert arrays like the scalar functions", () => {
  const values = new Float32Array([1, -0, 65520, NaN, 2 ** -25 * 1.5, 0.1]);
  expect(Array.from(toF16(values))).toEqual([0x3c00, 0x8000, 0x7c00, 0x7e00, 0x0001, 0x2e66]);
  expect(Array.from(fromF16(Uint16Array.of(0x3c00, 0xfc00, 0x0001)))).toEqual([
    1,
    -Infinity,
    2 ** -24,
  ]);
  expect(roundToF16(new Float32Array([0.1]))[0]).toBe(0.0999755859375);
});
