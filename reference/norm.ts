/**
 * Normalization layers: RMSNorm (LLaMA's), and LayerNorm and BatchNorm to compare against.
 *
 * @module
 */
import { checkInteger, checkLength } from "./checks.ts";

/** Default epsilon, as in llama2.c. */
export const DEFAULT_NORM_EPS = 1e-5;

/**
 * `out[i] = weight[i] · x[i] / sqrt(mean(x²) + eps)`, over each row of `x: (rows, dim)` where
 * `dim = weight.length`. Unlike LayerNorm there is no mean subtraction and no bias.
 *
 * @example
 * ```ts
 * import { rmsNorm } from "./norm.ts";
 * const y = rmsNorm(new Float32Array([3, 4]), new Float32Array([1, 1]), 0);
 * // rms of (3, 4) is sqrt(12.5)
 * if (Math.abs(y[0] - 3 / Math.sqrt(12.5)) > 1e-6) throw new Error("wrong");
 * ```
 */
export function rmsNorm(
  x: Float32Array,
  weight: Float32Array,
  eps = DEFAULT_NORM_EPS,
): Float32Array {
  const dim = weight.length;
  checkInteger("rmsNorm weight length (dim)", dim);
  if (x.length % dim !== 0 || x.length === 0) {
    throw new RangeError(`rmsNorm x: expected a multiple of dim ${dim}, got length ${x.length}`);
  }
  if (!(eps >= 0)) throw new RangeError(`rmsNorm eps: expected >= 0, got ${eps}`);
  const out = new Float32Array(x.length);
  for (let row = 0; row < x.length; row += dim) {
    let sumSquares = 0;
    for (let i = 0; i < dim; i++) sumSquares += x[row + i] * x[row + i];
    const scale = 1 / Math.sqrt(sumSquares / dim + eps);
    for (let i = 0; i < dim; i++) out[row + i] = weight[i] * x[row + i] * scale;
  }
  return out;
}

/**
 * LayerNorm, for comparison: each row of `x: (rows, dim)` gets its own mean and variance,
 * `out = (x − mean) / sqrt(var + eps) · weight + bias`.
 *
 * @example
 * ```ts
 * import { layerNorm } from "./norm.ts";
 * const y = layerNorm(new Float32Array([1, 3]), new Float32Array([1, 1]), new Float32Array(2), 0);
 * if (y[0] !== -1 || y[1] !== 1) throw new Error("wrong");
 * ```
 */
export function layerNorm(
  x: Float32Array,
  weight: Float32Array,
  bias: Float32Array,
  eps = DEFAULT_NORM_EPS,
): Float32Array {
  const dim = weight.length;
  checkInteger("layerNorm weight length (dim)", dim);
  checkLength("layerNorm bias (dim)", bias, dim);
  if (x.length % dim !== 0 || x.length === 0) {
    throw new RangeError(`layerNorm x: expected a multiple of dim ${dim}, got length ${x.length}`);
  }
  const out = new Float32Array(x.length);
  for (let row = 0; row < x.length; row += dim) {
    let mean = 0;
    for (let i = 0; i < dim; i++) mean += x[row + i];
    mean /= dim;
    let variance = 0;
    for (let i = 0; i < dim; i++) variance += (x[row + i] - mean) ** 2;
    variance /= dim;
    const scale = 1 / Math.sqrt(variance + eps);
    for (let i = 0; i < dim; i++) out[row + i] = (x[row + i] - mean) * scale * weight[i] + bias[i];
  }
  return out;
}

/**
 * BatchNorm (training-mode statistics), for comparison: one mean and variance per feature,
 * taken across the `batch` rows of `x: (batch, features)`, `features = weight.length`.
 *
 * @example
 * ```ts
 * import { batchNorm } from "./norm.ts";
 * // two samples, one feature: values 1 and 3 become -1 and 1
 * const y = batchNorm(new Float32Array([1, 3]), new Float32Array([1]), new Float32Array(1), 0);
 * if (y[0] !== -1 || y[1] !== 1) throw new Error("wrong");
 * ```
 */
export function batchNorm(
  x: Float32Array,
  weight: Float32Array,
  bias: Float32Array,
  eps = DEFAULT_NORM_EPS,
): Float32Array {
  const features = weight.length;
  checkInteger("batchNorm weight length (features)", features);
  checkLength("batchNorm bias (features)", bias, features);
  if (x.length % features !== 0 || x.length === 0) {
    throw new RangeError(
      `batchNorm x: expected a multiple of features ${features}, got length ${x.length}`,
    );
  }
  const batch = x.length / features;
  const out = new Float32Array(x.length);
  for (let f = 0; f < features; f++) {
    let mean = 0;
    for (let b = 0; b < batch; b++) mean += x[b * features + f];
    mean /= batch;
    let variance = 0;
    for (let b = 0; b < batch; b++) variance += (x[b * features + f] - mean) ** 2;
    variance /= batch;
    const scale = 1 / Math.sqrt(variance + eps);
    for (let b = 0; b < batch; b++) {
      const i = b * features + f;
      out[i] = (x[i] - mean) * scale * weight[f] + bias[f];
    }
  }
  return out;
}
