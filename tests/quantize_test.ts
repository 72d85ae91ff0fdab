import { expect } from "expect";
import {
  bytesPerValue,
  dequantize,
  formatBytes,
  matvec,
  matvecQuantized,
  quantizationErrorBound,
  quantize,
  Rng,
  TENSOR_FORMATS,
} from "../reference/mod.ts";

Deno.test("q8_0 stores ggml's block_q8_0: f16 scale max|x|/127, then int8 rounded half away", () => {
  const x = new Float32Array(32);
  x.set([-127, 0.5, -0.5, 1.5, 2.5, -2.5, 126.4, 3]);
  const bytes = quantize(x, "q8_0");
  expect(bytes.length).toBe(34);
  expect([bytes[0], bytes[1]]).toEqual([0x00, 0x3c]); // d = 127/127 = 1 = f16 0x3c00, little-endian
  expect(Array.from(new Int8Array(bytes.buffer, 2, 8))).toEqual([-127, 1, -1, 2, 3, -3, 126, 3]);
  expect(Array.from(bytes.subarray(10))).toEqual(new Array(24).fill(0));
  expect(Array.from(dequantize(bytes, "q8_0", 32).subarray(0, 8))).toEqual([
    -127,
    1,
    -1,
    2,
    3,
    -3,
    126,
    3,
  ]);
});

Deno.test("q4_0 stores ggml's block_q4_0: d = max/-8, low nibbles values 0..15, high 16..31", () => {
  // The extreme is -8, so d = 1 and each quant is x + 8.
  const x = Float32Array.from({ length: 32 }, (_, i) => i < 16 ? i - 8 : 7 - (i - 16) % 16);
  const bytes = quantize(x, "q4_0");
  expect(bytes.length).toBe(18);
  expect([bytes[0], bytes[1]]).toEqual([0x00, 0x3c]); // f16 1.0
  for (let j = 0; j < 16; j++) {
    expect(bytes[2 + j]).toBe(j | ((15 - j) << 4));
  }
  expect(Array.from(dequantize(bytes, "q4_0", 32))).toEqual(Array.from(x));
});

Deno.test("q4_0 keeps the extreme's sign in the scale; its opposite clamps to quant 15", () => {
  const x = new Float32Array(32);
  x[0] = 8; // the extreme: d = 8 / -8 = -1, stored as f16 0xbc00
  x[1] = -8; // -8 · (1/d) + 8.5 = 16.5 -> 16 -> clamped to 15 -> (15 - 8)·-1 = -7
  x[2] = 2.4; // -2.4 + 8.5 = 6.1 -> 6 -> (6 - 8)·-1 = 2
  const bytes = quantize(x, "q4_0");
  expect([bytes[0], bytes[1]]).toEqual([0x00, 0xbc]);
  expect(bytes[2] & 0x0f).toBe(0);
  expect(Array.from(dequantize(bytes, "q4_0", 32).subarray(0, 4))).toEqual([8, -7, 2, -0]); // 0 = (8 - 8)·-1
});

Deno.test("f32 and f16 store little-endian values", () => {
  expect(Array.from(quantize(new Float32Array([1]), "f32"))).toEqual([0, 0, 0x80, 0x3f]);
  expect(Array.from(quantize(new Float32Array([1, -2]), "f16"))).toEqual([0, 0x3c, 0, 0xc0]);
  expect(dequantize(Uint8Array.of(0, 0x3c, 0, 0xc0), "f16", 2)).toEqual(new Float32Array([1, -2]));
});

Deno.test("quantize-then-dequantize error stays within the documented bound, at every scale", () => {
  const rng = new Rng(3);
  for (const format of TENSOR_FORMATS) {
    for (const scale of [1e-7, 1e-3, 1, 300, 30000]) {
      if (format === "q4_0" && scale > 60000) continue;
      const x = rng.uniformArray(32 * 64, -scale, scale);
      x[5] = -scale; // one block with a value near -max: the q4_0 clamp
      x[6] = scale;
      const y = dequantize(quantize(x, format), format, x.length);
      const bound = quantizationErrorBound(x, format);
      let worstRatio = 0;
      for (let i = 0; i < x.length; i++) {
        const error = Math.abs(x[i] - y[i]);
        if (error > bound[i]) {
          expect({ format, scale, i, x: x[i], y: y[i] }).toEqual({ bound: bound[i] });
        }
        if (bound[i] > 0) worstRatio = Math.max(worstRatio, error / bound[i]);
      }
      // The bound is tight enough to mean something: some value comes close to it.
      if (format !== "f32") expect(worstRatio).toBeGreaterThan(format === "q4_0" ? 0.4 : 0.8);
      if (format === "f32") expect(y).toEqual(x);
    }
  }
});

Deno.test("q8_0 and q4_0 errors are half a step away from q4_0's clamped value", () => {
  const rng = new Rng(4);
  const x = rng.normalArray(32 * 200);
  for (const [format, levels] of [["q8_0", 127], ["q4_0", 8]] as const) {
    const y = dequantize(quantize(x, format), format, x.length);
    for (let b = 0; b < x.length / 32; b++) {
      const block = x.subarray(b * 32, b * 32 + 32);
      let extreme = 0;
      for (const v of block) if (Math.abs(v) > Math.abs(extreme)) extreme = v;
      const step = Math.abs(extreme) / levels;
      for (let j = 0; j < 32; j++) {
        const clamped = format === "q4_0" && -block[j] / step * Math.sign(extreme) > 7.5;
        const allowed = (clamped ? 1 : 0.5) * step * (1 + 2 ** -9) + step * 2 ** -10 * levels;
        expect(Math.abs(block[j] - y[b * 32 + j])).toBeLessThanOrEqual(allowed);
      }
    }
  }
});

Deno.test("formats report their sizes: 4, 2, 34/32, 18/32, then 210, 176 and 144 per 256", () => {
  expect(TENSOR_FORMATS).toEqual(["f32", "f16", "q8_0", "q4_0", "q6_k", "q5_k", "q4_k"]);
  expect(TENSOR_FORMATS.map(bytesPerValue)).toEqual([
    4,
    2,
    34 / 32,
    18 / 32,
    210 / 256,
    176 / 256,
    144 / 256,
  ]);
  expect(TENSOR_FORMATS.map((f) => formatBytes(f, 256))).toEqual([
    1024,
    512,
    272,
    144,
    210,
    176,
    144,
  ]);
  expect(() => formatBytes("q6_k", 96)).toThrow(
    "q6_k: value count must be a multiple of the 256-value block, got 96",
  );
});

Deno.test("matvecQuantized equals the f32 matvec of the dequantized weights", () => {
  const rng = new Rng(5);
  const [outDim, inDim] = [7, 256]; // whole K-quant super-blocks
  const w = rng.uniformArray(outDim * inDim);
  const x = rng.uniformArray(inDim);
  for (const format of TENSOR_FORMATS) {
    const bytes = quantize(w, format);
    const got = matvecQuantized(bytes, format, x, outDim, inDim);
    const want = matvec(dequantize(bytes, format, w.length), x, outDim, inDim);
    for (let r = 0; r < outDim; r++) expect(got[r]).toBeCloseTo(want[r], 6);
  }
  // And the quantized product stays near the exact one: within Σ bound·|x| of each row.
  const exact = matvec(w, x, outDim, inDim);
  for (const format of ["q4_0", "q4_k"] as const) {
    const q4 = matvecQuantized(quantize(w, format), format, x, outDim, inDim);
    const bound = quantizationErrorBound(w, format);
    for (let r = 0; r < outDim; r++) {
      let allowed = 0;
      for (let c = 0; c < inDim; c++) allowed += bound[r * inDim + c] * Math.abs(x[c]);
      expect(Math.abs(q4[r] - exact[r])).toBeLessThanOrEqual(allowed);
    }
  }
});

Deno.test("quantization rejects bad input with one clear error", () => {
  expect(() => quantize(new Float32Array(33), "q8_0")).toThrow(
    "q8_0: value count must be a multiple of the 32-value block, got 33",
  );
  const withNaN = new Float32Array(32);
  withNaN[4] = NaN;
  expect(() => quantize(withNaN, "q4_0")).toThrow(
    "q4_0 value 4: expected a finite number, got NaN",
  );
  expect(() => quantize(new Float32Array([70000]), "f16")).toThrow(
    "f16 value 0: expected a magnitude below 65520",
  );
  expect(() => quantize(new Float32Array(32).fill(1e7), "q8_0")).toThrow(
    "q8_0 block 0: scale",
  );
  expect(() => dequantize(new Uint8Array(17), "q4_0", 32)).toThrow(
    "q4_0 bytes for 32 values: expected length 18, got 17",
  );
  expect(() => quantize(new Float32Array(1), "q5_1" as "q8_0")).toThrow(
    'format: expected one of f32, f16, q8_0, q4_0, q6_k, q5_k, q4_k, got "q5_1"',
  );
  expect(() => matvecQuantized(new Uint8Array(34), "q8_0", new Float32Array(32), 2, 32)).toThrow(
    "expected length 68, got 34",
  );
});

Deno.test("quantize produces byte for byte what llama.cpp's gguf-py produces (fixture)", async () => {
  const fixture = JSON.parse(
    await Deno.readTextFile(new URL("./fixtures/ggml_quants.json", import.meta.url)),
  );
  const values = Float32Array.from(fixture.values as number[]);
  const hex = (bytes: Uint8Array) =>
    Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  for (const format of ["q8_0", "q4_0", "f16"] as const) {
    expect([format, hex(quantize(values, format))]).toEqual([format, fixture[format]]);
  }
});
