import { expect } from "expect";
import {
  dequantize,
  KvCache,
  kvCacheBytesPerToken,
  quantizationErrorBound,
  quantize,
  roundToF16,
} from "../reference/mod.ts";

Deno.test("KvCache writes keys and values at a position, per layer", () => {
  const cache = new KvCache({ nLayers: 2, maxSeqLen: 3, nKvHeads: 2, headDim: 2 });
  cache.write(1, 2, new Float32Array([1, 2, 3, 4]), new Float32Array([5, 6, 7, 8]));
  expect(Array.from(cache.keys[1].subarray(8, 12))).toEqual([1, 2, 3, 4]);
  expect(Array.from(cache.values[1].subarray(8, 12))).toEqual([5, 6, 7, 8]);
  expect(cache.keys[0].every((v) => v === 0)).toBe(true);
  expect(cache.keys[1].subarray(0, 8).every((v) => v === 0)).toBe(true);
});

Deno.test("KvCache reports bytes per token and in total; GQA shrinks them by the group size", () => {
  const mha = new KvCache({ nLayers: 6, maxSeqLen: 256, nKvHeads: 6, headDim: 48 });
  expect(mha.bytesPerToken).toBe(2 * 6 * 6 * 48 * 4);
  expect(mha.bytes).toBe(mha.bytesPerToken * 256);
  expect(mha.keys[0].byteLength * 2 * 6).toBe(mha.bytes);
  const gqa = kvCacheBytesPerToken({ nLayers: 6, nKvHeads: 2, headDim: 48 });
  expect(mha.bytesPerToken / gqa).toBe(3);
  expect(kvCacheBytesPerToken({ nLayers: 1, nKvHeads: 1, headDim: 8 }, 2)).toBe(32);
});

Deno.test("KvCache rejects writes past maxSeqLen, bad layers and wrong vector lengths", () => {
  const cache = new KvCache({ nLayers: 1, maxSeqLen: 4, nKvHeads: 1, headDim: 2 });
  const v = new Float32Array(2);
  expect(() => cache.write(0, 4, v, v)).toThrow(
    "KvCache position: expected an integer in [0, maxSeqLen 4), got 4",
  );
  expect(() => cache.write(1, 0, v, v)).toThrow(
    "KvCache layer: expected an integer in [0, 1), got 1",
  );
  expect(() => cache.write(0, 0, new Float32Array(3), v)).toThrow(
    "KvCache key (nKvHeads*headDim): expected length 2, got 3",
  );
  expect(() => new KvCache({ nLayers: 1, maxSeqLen: 0, nKvHeads: 1, headDim: 2 })).toThrow(
    "maxSeqLen: expected an integer >= 1, got 0",
  );
});

Deno.test("KvCache in f16 and q8_0 stores what the format keeps and counts the format's bytes", () => {
  const shape = { nLayers: 2, maxSeqLen: 4, nKvHeads: 2, headDim: 16 };
  const key = Float32Array.from({ length: 32 }, (_, i) => Math.sin(i) * 3);
  const value = Float32Array.from({ length: 32 }, (_, i) => Math.cos(i) / 7);
  const f16 = new KvCache(shape, "f16");
  f16.write(1, 3, key, value);
  expect(f16.keys[1].subarray(96)).toEqual(roundToF16(key));
  expect(f16.values[1].subarray(96)).toEqual(roundToF16(value));
  expect(f16.bytesPerToken).toBe(2 * 2 * 32 * 2);
  const q8 = new KvCache(shape, "q8_0");
  q8.write(0, 0, key, value);
  expect(q8.keys[0].subarray(0, 32)).toEqual(dequantize(quantize(key, "q8_0"), "q8_0", 32));
  // One block: scale 3·max|sin| / 127; every value within half a step plus the scale's rounding.
  const bound = quantizationErrorBound(value, "q8_0");
  q8.values[0].subarray(0, 32).forEach((v, i) =>
    expect(Math.abs(v - value[i])).toBeLessThanOrEqual(bound[i])
  );
  expect(q8.bytesPerToken).toBe(2 * 2 * 34);
  expect(() => new KvCache({ ...shape, headDim: 8 }, "q8_0")).toThrow(
    "KV cache q8_0: nKvHeads·headDim must be a multiple of 32, got 16",
  );
  expect(() => new KvCache(shape, "q4_0" as "f16")).toThrow(
    'KV cache format: expected one of f32, f16, q8_0, got "q4_0"',
  );
});
