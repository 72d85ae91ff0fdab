/**
 * Float rounding that does not depend on the GPU, for kernels that must store what ggml's
 * quantizers (and the CPU reference) store bit for bit. WGSL lets `x / y` be 2.5 ULP off and
 * lets `pack2x16float`/`quantizeToF16` round as the GPU likes and flush subnormals; these
 * functions work on the bits with integer arithmetic instead: a correctly rounded division,
 * f32 → f16 (nearest even, subnormals, overflow to infinity) and back, and C's `roundf`.
 *
 * @module
 */

/** WGSL functions `exactDivide`, `f16Bits`, `f16ToF32Bits` and `roundHalfAway` (bits in, bits out). */
export const EXACT_FLOAT_WGSL: string = /* wgsl */ `
// A positive finite float's bits as (m, e): value = m · 2^e, m normalized to [2^23, 2^24).
fn exactSignificand(bits: u32) -> vec2<i32> {
  let field = i32(bits >> 23u);
  var m = bits & 0x7fffffu;
  var e = field - 150;
  if (field == 0) { e = -149; } else { m = m | 0x800000u; }
  let shift = countLeadingZeros(m) - 8u;
  return vec2<i32>(i32(m << shift), e - i32(shift));
}

// Bits of a / b, correctly rounded to nearest even (subnormal results, overflow to +inf), for
// a >= 0 and b > 0 finite: a long division of the significands.
fn exactDivide(a: u32, b: u32) -> u32 {
  if (a == 0u) { return 0u; }
  let x = exactSignificand(a);
  let y = exactSignificand(b);
  var rem = u32(x.x);
  let divisor = u32(y.x);
  var e = x.y - y.y;
  if (rem < divisor) { rem = rem << 1u; e = e - 1; } // the quotient in [1, 2)
  var q = 0u; // 25 quotient bits, 2^0 down to 2^-24; what remains is sticky
  for (var i = 0u; i < 25u; i++) {
    q = q << 1u;
    if (rem >= divisor) { rem = rem - divisor; q = q | 1u; }
    rem = rem << 1u;
  }
  let biased = e + 127;
  if (biased >= 255) { return 0x7f800000u; }
  let shift = u32(max(1, 2 - biased)); // to the last place kept: 2^-23 normal, 2^-149 subnormal
  if (shift > 25u) { return 0u; }
  var m = q >> shift;
  let dropped = q & ((1u << shift) - 1u);
  let half = 1u << (shift - 1u);
  if (dropped > half || (dropped == half && (rem != 0u || (m & 1u) == 1u))) { m = m + 1u; }
  // m's implicit bit adds one to the exponent field; a carry to 2^24 reaches the next binade.
  return (u32(max(biased, 1) - 1) << 23u) + m;
}

// f32 bits to f16 bits, to nearest even, subnormals kept, overflow to infinity, NaN quiet.
fn f16Bits(x: u32) -> u32 {
  let sign = (x >> 16u) & 0x8000u;
  let a = x & 0x7fffffffu;
  if (a >= 0x7f800000u) { return sign | select(0x7c00u, 0x7e00u, a > 0x7f800000u); }
  let e = i32(a >> 23u);
  if (e > 142) { return sign | 0x7c00u; } // 2^16 and above
  var m = (a & 0x7fffffu) | 0x800000u;
  var shift = 13u; // normal f16: 10 of the 23 fraction bits stay
  var h = u32(max(e - 112, 0)) << 10u;
  if (e < 113) { // subnormal f16: multiples of 2^-24
    if (e < 102) { return sign; } // below half of 2^-24
    shift = u32(126 - e);
    h = 0u;
  } else {
    m = m & 0x7fffffu;
  }
  h = h + (m >> shift);
  let dropped = m & ((1u << shift) - 1u);
  let half = 1u << (shift - 1u);
  if (dropped > half || (dropped == half && (h & 1u) == 1u)) { h = h + 1u; } // may carry up to inf
  return sign | h;
}

// f16 bits (low 16) to the f32 bits of the same value.
fn f16ToF32Bits(h: u32) -> u32 {
  let sign = (h & 0x8000u) << 16u;
  let e = (h >> 10u) & 0x1fu;
  let m = h & 0x3ffu;
  if (e == 31u) { return sign | 0x7f800000u | (m << 13u); }
  if (e != 0u) { return sign | ((e + 112u) << 23u) | (m << 13u); }
  if (m == 0u) { return sign; }
  let shift = countLeadingZeros(m) - 21u; // m << shift has bit 10 set
  return sign | ((113u - shift) << 23u) | (((m << shift) & 0x3ffu) << 13u);
}

// C's roundf (halves away from zero) of a float's bits, for |x| < 2^31.
fn roundHalfAway(x: u32) -> i32 {
  let e = (x >> 23u) & 0xffu;
  if (e < 126u) { return 0; } // |x| < 0.5
  let m = (x & 0x7fffffu) | 0x800000u;
  var magnitude = 0u;
  if (e >= 150u) { magnitude = m << (e - 150u); } else {
    let shift = 150u - e;
    magnitude = (m + (1u << (shift - 1u))) >> shift;
  }
  return select(i32(magnitude), -i32(magnitude), (x >> 31u) == 1u);
}
`;
