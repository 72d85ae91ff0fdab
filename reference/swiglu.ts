/**
 * The SwiGLU feed-forward network of LLaMA: `w2(silu(w1·x) ⊙ (w3·x))`.
 *
 * @module
 */
import { checkInteger, checkLength } from "./checks.ts";
import { matvec } from "./matmul.ts";

/**
 * SiLU (swish): `x · sigmoid(x)`.
 *
 * @example
 * ```ts
 * import { silu } from "./swiglu.ts";
 * if (silu(0) !== 0) throw new Error("wrong");
 * ```
 */
export function silu(x: number): number {
  return x / (1 + Math.exp(-x));
}

/**
 * The gated activation `silu(gate[i]) · up[i]`, elementwise.
 *
 * @example
 * ```ts
 * import { siluMul } from "./swiglu.ts";
 * const y = siluMul(new Float32Array([0, 1]), new Float32Array([5, 2]));
 * if (y[0] !== 0 || Math.abs(y[1] - 2 / (1 + Math.exp(-1))) > 1e-6) throw new Error("wrong");
 * ```
 */
export function siluMul(gate: Float32Array, up: Float32Array): Float32Array {
  checkLength("siluMul up (gate length)", up, gate.length);
  const out = new Float32Array(gate.length);
  for (let i = 0; i < gate.length; i++) out[i] = silu(gate[i]) * up[i];
  return out;
}

/** Weights of one SwiGLU feed-forward block. */
export interface SwigluWeights {
  /** Gate projection, `(hiddenDim, dim)`. */
  w1: Float32Array;
  /** Down projection, `(dim, hiddenDim)`. */
  w2: Float32Array;
  /** Up projection, `(hiddenDim, dim)`. */
  w3: Float32Array;
}

/**
 * The feed-forward block `w2 · (silu(w1 · x) ⊙ (w3 · x))` for one token `x: (dim)`.
 *
 * @example
 * ```ts
 * import { swiglu } from "./swiglu.ts";
 * const one = new Float32Array([1]);
 * const y = swiglu(new Float32Array([2]), { w1: one, w2: one, w3: one }, 1, 1);
 * if (Math.abs(y[0] - 2 * 2 / (1 + Math.exp(-2))) > 1e-6) throw new Error("wrong");
 * ```
 */
export function swiglu(
  x: Float32Array,
  weights: SwigluWeights,
  dim: number,
  hiddenDim: number,
): Float32Array {
  checkInteger("dim", dim);
  checkInteger("hiddenDim", hiddenDim);
  checkLength("swiglu x (dim)", x, dim);
  const gate = matvec(weights.w1, x, hiddenDim, dim);
  const up = matvec(weights.w3, x, hiddenDim, dim);
  return matvec(weights.w2, siluMul(gate, up), dim, hiddenDim);
}
