/**
 * The key/value cache of incremental decoding.
 *
 * @module
 */
import { checkInteger, checkLength } from "./checks.ts";
import { bytesPerValue, dequantize, QUANT_BLOCK, quantize } from "./quantize.ts";

/** How a KV cache stores keys and values: float32, f16, or Q8_0 blocks along each position. */
export type KvFormat = "f32" | "f16" | "q8_0";

/** Every {@linkcode KvFormat}. */
export const KV_FORMATS: readonly KvFormat[] = ["f32", "f16", "q8_0"];

/** Dimensions of a KV cache. */
export interface KvCacheShape {
  /** Transformer layers, each with its own keys and values. */
  nLayers: number;
  /** Positions the cache holds. */
  maxSeqLen: number;
  /** Key/value heads per layer (fewer than query heads under GQA/MQA). */
  nKvHeads: number;
  /** Features per head. */
  headDim: number;
}

/**
 * Bytes the cache spends on one token: keys and values, every layer, `bytesPerElement` each
 * (4 for float32). GQA and MQA shrink this by `nHeads / nKvHeads`.
 *
 * @example
 * ```ts
 * import { kvCacheBytesPerToken } from "./kv_cache.ts";
 * // stories260K: 5 layers, 4 KV heads of 8 features
 * if (kvCacheBytesPerToken({ nLayers: 5, nKvHeads: 4, headDim: 8 }) !== 2 * 5 * 32 * 4) throw new Error("wrong");
 * ```
 */
export function kvCacheBytesPerToken(
  shape: Omit<KvCacheShape, "maxSeqLen">,
  bytesPerElement = 4,
): number {
  return 2 * shape.nLayers * shape.nKvHeads * shape.headDim * bytesPerElement;
}

/**
 * Per-layer keys and values, each `(maxSeqLen, nKvHeads·headDim)` row-major. In `f16` or
 * `q8_0` format each written position is quantized (Q8_0: blocks of 32 along the position's
 * `nKvHeads·headDim` values, which must divide) and `keys`/`values` hold what attention reads:
 * the dequantized values. {@linkcode KvCache.bytesPerToken} counts the format's bytes.
 *
 * @example
 * ```ts
 * import { KvCache } from "./kv_cache.ts";
 * const cache = new KvCache({ nLayers: 1, maxSeqLen: 4, nKvHeads: 1, headDim: 2 });
 * cache.write(0, 3, new Float32Array([1, 2]), new Float32Array([3, 4]));
 * if (cache.keys[0][7] !== 2 || cache.bytes !== 64) throw new Error("wrong");
 * ```
 */
export class KvCache {
  /** The cache's dimensions. */
  readonly shape: Readonly<KvCacheShape>;
  /** Features of one position's keys (or values): `nKvHeads·headDim`. */
  readonly kvDim: number;
  /** Keys per layer, `(maxSeqLen, kvDim)`. */
  readonly keys: Float32Array[];
  /** Values per layer, `(maxSeqLen, kvDim)`. */
  readonly values: Float32Array[];

  /** Storage format of keys and values. */
  readonly format: KvFormat;

  /** Allocates a zeroed cache storing `format` (float32 by default). */
  constructor(shape: KvCacheShape, format: KvFormat = "f32") {
    checkInteger("nLayers", shape.nLayers);
    checkInteger("maxSeqLen", shape.maxSeqLen);
    checkInteger("nKvHeads", shape.nKvHeads);
    checkInteger("headDim", shape.headDim);
    if (!KV_FORMATS.includes(format)) {
      throw new RangeError(
        `KV cache format: expected one of ${KV_FORMATS.join(", ")}, got "${format}"`,
      );
    }
    this.shape = { ...shape };
    this.format = format;
    this.kvDim = shape.nKvHeads * shape.headDim;
    if (format === "q8_0" && this.kvDim % QUANT_BLOCK !== 0) {
      throw new RangeError(
        `KV cache q8_0: nKvHeads·headDim must be a multiple of ${QUANT_BLOCK}, got ${this.kvDim}`,
      );
    }
    const size = shape.maxSeqLen * this.kvDim;
    this.keys = Array.from({ length: shape.nLayers }, () => new Float32Array(size));
    this.values = Array.from({ length: shape.nLayers }, () => new Float32Array(size));
  }

  /** Stores one position's key and value vectors (each `kvDim`) in `layer`. */
  write(layer: number, pos: number, key: Float32Array, value: Float32Array): void {
    if (!Number.isInteger(layer) || layer < 0 || layer >= this.shape.nLayers) {
      throw new RangeError(
        `KvCache layer: expected an integer in [0, ${this.shape.nLayers}), got ${layer}`,
      );
    }
    if (!Number.isInteger(pos) || pos < 0 || pos >= this.shape.maxSeqLen) {
      throw new RangeError(
        `KvCache position: expected an integer in [0, maxSeqLen ${this.shape.maxSeqLen}), got ${pos}`,
      );
    }
    checkLength("KvCache key (nKvHeads*headDim)", key, this.kvDim);
    checkLength("KvCache value (nKvHeads*headDim)", value, this.kvDim);
    const stored = (v: Float32Array) =>
      this.format === "f32" ? v : dequantize(quantize(v, this.format), this.format, v.length);
    this.keys[layer].set(stored(key), pos * this.kvDim);
    this.values[layer].set(stored(value), pos * this.kvDim);
  }

  /** Bytes per cached token (keys and values of all layers), in the cache's format. */
  get bytesPerToken(): number {
    return kvCacheBytesPerToken(this.shape, bytesPerValue(this.format));
  }

  /** Bytes of the whole cache (`maxSeqLen` tokens). */
  get bytes(): number {
    return this.bytesPerToken * this.shape.maxSeqLen;
  }
}
