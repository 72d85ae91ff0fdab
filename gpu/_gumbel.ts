// WGSL twin of reference/_gumbel.ts: the same integer steps, so GPU noise is bit-identical to the
// CPU's. Kept apart so tests can compile it into a kernel that writes the noise out.

/** WGSL functions `mix32`, `noiseBits`, `mulHigh`, `log2Fixed`, `gumbelFixed` (i32, 2^-16 units). */
export const GUMBEL_WGSL = /* wgsl */ `
fn mix32(x: u32) -> u32 { // lowbias32
  var h = x;
  h ^= h >> 16u;
  h *= 0x7feb352du;
  h ^= h >> 15u;
  h *= 0x846ca68bu;
  h ^= h >> 16u;
  return h;
}

fn noiseBits(seed: u32, pos: u32, id: u32) -> u32 { return mix32(id ^ mix32(pos ^ mix32(seed))); }

fn mulHigh(a: u32, b: u32) -> u32 { // high word of the 64-bit product
  let al = a & 0xffffu; let ah = a >> 16u; let bl = b & 0xffffu; let bh = b >> 16u;
  let ll = al * bl; let lh = al * bh; let hl = ah * bl; let hh = ah * bh;
  let mid = (ll >> 16u) + (lh & 0xffffu) + (hl & 0xffffu);
  return hh + (lh >> 16u) + (hl >> 16u) + (mid >> 16u);
}

fn log2Fixed(x: u32) -> u32 { // log2(x), 26 fraction bits, x >= 1
  let lead = countLeadingZeros(x);
  var y = x << lead;
  var fraction = 0u;
  for (var bit = 25i; bit >= 0i; bit--) {
    let square = mulHigh(y, y);
    if (square >= 0x80000000u) { fraction |= 1u << u32(bit); y = square; } else { y = square << 1u; }
  }
  return ((31u - lead) << 26u) | fraction;
}

fn gumbelFixed(bits: u32) -> i32 { // -ln(-ln u) · 2^16, u = (2·(bits >> 9) + 1) / 2^24
  let q = ((bits >> 9u) << 1u) | 1u;
  let c = 16777216u - q;
  var minusLog2A: i32;
  var offset = 0i;
  if (c < 32768u) { // u near 1: a = -ln(1 - t) by its series
    let c2 = c * c;
    let s = c * 65536u + (c2 >> 9u) + mulHigh(c2, c) / 3u;
    minusLog2A = i32((40u << 26u) - log2Fixed(s));
  } else {
    let a = (24u << 26u) - log2Fixed(q);
    minusLog2A = i32(26u << 26u) - i32(log2Fixed(a));
    offset = 24020i; // -ln(ln 2) · 2^16
  }
  let scaled = i32(mulHigh(u32(abs(minusLog2A)), 2977044472u) >> 10u); // · ln 2, 26 -> 16 bits
  return select(scaled, -scaled, minusLog2A < 0i) + offset;
}
`;
