import { expect } from "expect";
import {
  dequantizeKQuant,
  K_BLOCK_BYTES,
  K_QUANT_FORMATS,
  K_QUANT_GGML_TYPES,
  kQuantBytes,
  kQuantErrorBound,
  type KQuantFormat,
  kQuantScaleMin,
  matvecKQuant,
  quantizeKQuant,
} from "../reference/kquants.ts";
import { dequantize, quantize } from "../reference/quantize.ts";
import { Rng } from "../reference/random.ts";

interface BlockFixture {
  source: string;
  seed: number;
  blocks: number;
  formats: Record<
    KQuantFormat,
    { ggmlType: number; blocksSha256: string; valuesSha256: string; firstBlockValues: string }
  >;
}

const fixture: BlockFixture = JSON.parse(
  await Deno.readTextFile(new URL("./fixtures/kquant_blocks.json", import.meta.url)),
);

async function sha256(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes.slice()));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The random blocks of tests/fixtures/make_kquant_fixtures.py (`random_blocks`), redrawn. */
function redrawBlocks(rng: Rng, format: KQuantFormat, count: number): Uint8Array {
  const size = K_BLOCK_BYTES[format];
  const scaleFields = format === "q6_k" ? [208] : [0, 2];
  const blocks = new Uint8Array(count * size);
  for (let b = 0; b < count; b++) {
    for (let i = 0; i < size; i++) blocks[b * size + i] = rng.nextUint32() & 0xff;
    for (const at of scaleFields) {
      let bits = rng.nextUint32() & 0xffff;
      if (((bits >> 10) & 0x1f) === 0x1f) bits ^= 0x0400; // finite: inf/NaN exponent moved down
      blocks[b * size + at] = bits & 0xff;
      blocks[b * size + at + 1] = bits >> 8;
    }
  }
  return blocks;
}

Deno.test("K-quant dequantization matches gguf-py's bit for bit on 256 random valid blocks each", async () => {
  expect(fixture.source).toContain("gguf-py");
  const rng = new Rng(fixture.seed);
  for (const format of K_QUANT_FORMATS) {
    const expected = fixture.formats[format];
    expect(expected.ggmlType).toBe(K_QUANT_GGML_TYPES[format]);
    const blocks = redrawBlocks(rng, format, fixture.blocks);
    // The same blocks as the script drew (its port of Rng), before comparing their values.
    expect(await sha256(blocks)).toBe(expected.blocksSha256);
    const values = dequantizeKQuant(blocks, format, fixture.blocks * 256);
    const first = new Float32Array(
      Uint8Array.from(atob(expected.firstBlockValues), (c) => c.charCodeAt(0)).buffer,
    );
    // Bit patterns, so that -0 and 0 differ and a diff points at the value.
    expect(new Uint32Array(values.slice(0, 256).buffer)).toEqual(new Uint32Array(first.buffer));
    expect(await sha256(new Uint8Array(values.buffer))).toBe(expected.valuesSha256);
  }
});

Deno.test("kQuantScaleMin unpacks ggml's 6-bit scales and mins (get_scale_min_k4)", () => {
  // Hand-packed: scales sc = [1, 2, 3, 4, 0x35, 0x26, 0x17, 0x3f], mins m = [5, 6, 7, 8, 0x2a, 0x1b, 0x0c, 0x30].
  const bytes = Uint8Array.of(
    1 | (3 << 6), // sc0, sc4's top bits (0x35 >> 4 = 3)
    2 | (2 << 6),
    3 | (1 << 6),
    4 | (3 << 6),
    5 | (2 << 6), // m0, m4's top bits (0x2a >> 4 = 2)
    6 | (1 << 6),
    7 | (0 << 6),
    8 | (3 << 6),
    0x5 | (0xa << 4), // sc4, m4 low nibbles
    0x6 | (0xb << 4),
    0x7 | (0xc << 4),
    0xf | (0x0 << 4),
  );
  const got = Array.from({ length: 8 }, (_, j) => kQuantScaleMin(bytes, 0, j));
  expect(got).toEqual([[1, 5], [2, 6], [3, 7], [4, 8], [0x35, 0x2a], [0x26, 0x1b], [0x17, 0x0c], [
    0x3f,
    0x30,
  ]]);
});

Deno.test("K-quant sizes are ggml's: 144, 176 and 210 bytes per 256 values", () => {
  expect(K_QUANT_FORMATS.map((f) => kQuantBytes(f, 512))).toEqual([288, 352, 420]);
  expect(() => kQuantBytes("q4_k", 320)).toThrow(
    "q4_k: value count must be a multiple of the 256-value super-block, got 320",
  );
  expect(() => kQuantBytes("q8_k" as KQuantFormat, 256)).toThrow(
    'format: expected one of q4_k, q5_k, q6_k, got "q8_k"',
  );
  expect(() => dequantizeKQuant(new Uint8Array(143), "q4_k", 256)).toThrow(
    "q4_k bytes for 256 values: expected length 144, got 143",
  );
});

Deno.test("q4_k/q5_k quantize exactly representable values exactly, with d and dmin as chosen", () => {
  // Sub-block j holds sc[j]·2⁻⁸·q − m[j]·2⁻⁷ for quants q spanning 0..nmax: the largest scale
  // and min are 63, so d = 2⁻⁸ and dmin = 2⁻⁷ (f16 0x1c00 and 0x2000) and every 6-bit scale is
  // exact.
  const sc = [63, 1, 17, 32, 45, 5, 60, 33];
  const m = [0, 63, 10, 2, 50, 17, 33, 63];
  for (const [format, nmax] of [["q4_k", 15], ["q5_k", 31]] as const) {
    const x = new Float32Array(256);
    for (let j = 0; j < 8; j++) {
      for (let i = 0; i < 32; i++) {
        const q = i === 0 ? 0 : i === 1 ? nmax : (i * 7 + j) % (nmax + 1);
        x[32 * j + i] = sc[j] * 2 ** -8 * q - m[j] * 2 ** -7;
      }
    }
    const bytes = quantizeKQuant(x, format);
    expect(Array.from(bytes.subarray(0, 4))).toEqual([0x00, 0x1c, 0x00, 0x20]);
    expect(Array.from({ length: 8 }, (_, j) => kQuantScaleMin(bytes, 4, j))).toEqual(
      sc.map((s, j) => [s, m[j]]),
    );
    expect(dequantizeKQuant(bytes, format, 256)).toEqual(x);
  }
});

Deno.test("q6_k quantizes exactly representable values exactly; the largest scale is -128", () => {
  // Sub-block s holds k[s]·2⁻⁹·l with l in −32..31 and −32 present (ggml maps each sub-block's
  // extreme to −32, then the largest scale to int8 −128): d = −2⁻⁹ (f16 0x9800), scales −k[s].
  const k = [128, 1, 64, 100, 3, 127, 50, 7, 9, 128, 77, 31, 2, 90, 111, 16];
  const x = new Float32Array(256);
  for (let s = 0; s < 16; s++) {
    for (let i = 0; i < 16; i++) {
      const l = i === 0 ? -32 : ((i * 11 + s) % 64) - 32;
      x[16 * s + i] = k[s] * 2 ** -9 * l;
    }
  }
  const bytes = quantizeKQuant(x, "q6_k");
  expect([bytes[208], bytes[209]]).toEqual([0x00, 0x98]);
  expect(Array.from(new Int8Array(bytes.buffer, 192, 16))).toEqual(k.map((v) => -v));
  expect(dequantizeKQuant(bytes, "q6_k", 256)).toEqual(x);
});

Deno.test("K-quant round trips stay within kQuantErrorBound, edge blocks included", () => {
  const rng = new Rng(3);
  const blocks: Float32Array[] = [
    rng.normalArray(256 * 16, 0, 0.02),
    new Float32Array(256), // all zero
    new Float32Array(256).fill(0.75), // constant and positive: the min clamps to 0
    Float32Array.from({ length: 256 }, (_, i) => (i === 77 ? 300 : Math.sin(i) * 1e-3)), // outlier
    Float32Array.from({ length: 256 }, (_, i) => Math.cos(i) * 1e-9), // scales underflow f16
    Float32Array.from({ length: 256 }, (_, i) => -Math.abs(Math.sin(i)) - 1), // all negative
  ];
  for (const format of K_QUANT_FORMATS) {
    for (const x of blocks) {
      const bytes = quantizeKQuant(x, format);
      const y = dequantizeKQuant(bytes, format, x.length);
      const bound = kQuantErrorBound(x, bytes, format);
      for (let i = 0; i < x.length; i++) {
        if (!(Math.abs(x[i] - y[i]) <= bound[i])) {
          throw new Error(`${format} value ${i}: |${x[i]} - ${y[i]}| > ${bound[i]}`);
        }
      }
    }
  }
});

Deno.test("K-quant error orders by bits: q8_0 < q6_k < q5_k < q4_k < q4_0 on normal weights", () => {
  const x = new Rng(11).normalArray(256 * 64, 0, 0.02);
  const rmse = (format: "q8_0" | "q4_0" | KQuantFormat) => {
    const y = format === "q8_0" || format === "q4_0"
      ? dequantize(quantize(x, format), format, x.length)
      : dequantizeKQuant(quantizeKQuant(x, format), format, x.length);
    let sum = 0;
    for (let i = 0; i < x.length; i++) sum += (x[i] - y[i]) ** 2;
    return Math.sqrt(sum / x.length);
  };
  const errors = (["q8_0", "q6_k", "q5_k", "q4_k", "q4_0"] as const).map(rmse);
  for (let i = 1; i < errors.length; i++) expect(errors[i]).toBeGreaterThan(errors[i - 1]);
  // Each bit roughly halves the error: q4_k (4.5 bits) to q5_k (5.5) to q6_k (6.56).
  expect(errors[3] / errors[2]).toBeGreaterThan(1.6);
  expect(errors[2] / errors[1]).toBeGreaterThan(1.6);
});

Deno.test("K-quant quantization names the bad value or block", () => {
  const x = new Float32Array(256);
  x[9] = NaN;
  expect(() => quantizeKQuant(x, "q5_k")).toThrow(
    "q5_k value 9: expected a finite number, got NaN",
  );
  const big = new Float32Array(512);
  big[300] = 1e9; // q4_k: d = 1e9/15/63 > 65504; q6_k: d = 1e9/32/128 > 65504
  expect(() => quantizeKQuant(big, "q4_k")).toThrow(/^q4_k block 1: scale .* exceeds f16's 65504/);
  expect(() => quantizeKQuant(big, "q6_k")).toThrow(/^q6_k block 1: scale .* exceeds f16's 65504/);
  expect(() => quantizeKQuant(new Float32Array(32), "q6_k")).toThrow("multiple of the 256-value");
});

Deno.test("matvecKQuant equals the dequantized matrix times x", () => {
  const rng = new Rng(5);
  const [rows, cols] = [3, 512];
  const x = rng.uniformArray(cols);
  for (const format of K_QUANT_FORMATS) {
    const w = quantizeKQuant(rng.normalArray(rows * cols, 0, 0.05), format);
    const dense = dequantizeKQuant(w, format, rows * cols);
    const y = matvecKQuant(w, format, x, rows, cols);
    for (let r = 0; r < rows; r++) {
      let sum = 0;
      for (let c = 0; c < cols; c++) sum += dense[r * cols + c] * x[c];
      expect(Math.abs(y[r] - sum)).toBeLessThanOrEqual(Math.abs(sum) * 2 ** -22 + 1e-12);
    }
  }
  expect(() => matvecKQuant(new Uint8Array(144), "q4_k", new Float32Array(256), 2, 256)).toThrow(
    "matvecKQuant w (2 rows of 144 q4_k bytes): expected length 288, got 144",
  );
});
