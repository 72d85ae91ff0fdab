// Generation stops at the first non-finite logits, on every backend, with the same message: a
// weight that overflows float32 otherwise makes argmax and sampling choose tokens from garbage.

/** The error of logits after position `pos` holding an Inf or NaN (`detail` says which). */
export function nonFiniteLogitsError(pos: number, detail = ""): RangeError {
  return new RangeError(
    `generation stopped: the logits after position ${pos} are not finite${detail} ` +
      `(the weights or activations overflow float32)`,
  );
}

/** Throws {@linkcode nonFiniteLogitsError} unless every logit is finite. */
export function checkFiniteLogits(logits: Float32Array, pos: number): void {
  for (let i = 0; i < logits.length; i++) {
    if (!Number.isFinite(logits[i])) {
      throw nonFiniteLogitsError(pos, ` (${logits[i]} for token ${i})`);
    }
  }
}
