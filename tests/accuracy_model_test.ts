// Accuracy on the real model: stories260K over the shipped evaluation text (models/eval_text.txt),
// f32 against f16, Q8_0 and Q4_0 weights, on the CPU reference and on WebGPU. Each candidate's
// logits are checked against an independent value, the f32 CPU path run on the references'
// dequantized weights (reference/quantize.ts, itself checked against gguf-py), before its KL
// divergence and perplexity are compared.
import { expect } from "expect";
import {
  type AccuracyReport,
  compareLogits,
  CpuDecoder,
  dequantizeWeights,
  GpuDecoder,
  logitsAlong,
  readCheckpoint,
  readTokenizer,
  storeWeights,
} from "../model/mod.ts";
import { compare, type TensorFormat } from "../reference/mod.ts";
import { MODEL_PATH, TOKENIZER_PATH } from "./_models.ts";
import { ignoreGpuTests, testGpu } from "./_gpu.ts";

const EVAL_TEXT_PATH = new URL("../models/eval_text.txt", import.meta.url);

// tok512's ids of models/eval_text.txt (BOS first), produced once by Tokenizer.encode and
// spot-checked by hand against tok512's pieces (see the test below).
// deno-fmt-ignore
const EVAL_TEXT_IDS = [
  1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 268, 414, 422, 395, 368, 302, 426, 368, 302,
  381, 261, 352, 266, 268, 388, 351, 281, 401, 396, 399, 284, 425, 402, 426, 410, 459, 363, 328,
  281, 337, 266, 335, 345, 268, 388, 322, 265, 282, 295, 433, 404, 295, 345, 270, 277, 372, 426,
  385, 262, 379, 416, 422, 328, 432, 368, 302, 409, 417, 340, 266, 265, 268, 388, 399, 270, 333,
  415, 426, 359, 413, 272, 305, 424, 334, 330, 261, 259, 276, 411, 269, 272, 411, 306, 322, 413,
  414, 261, 282, 414, 264, 426, 368, 302, 286, 296, 418, 426, 346, 280, 389, 297, 309, 262, 424,
  288, 432, 269, 265, 273, 413, 285, 278, 347, 355, 279, 411, 411, 427, 426, 410, 447, 370, 279,
  425, 340, 394, 368, 302, 269, 262, 424, 314, 267, 265, 268, 388, 426, 291, 279, 425, 340, 282,
  425, 419, 260, 418, 265, 268, 388, 335, 312, 419, 329, 412, 433, 318, 361, 290, 312, 280, 314,
  411, 268, 412, 340, 267, 265, 298, 420, 412, 419, 419, 426, 368, 302, 286, 384, 393, 443, 346,
  336, 432, 313, 434, 415, 303, 433, 364, 432, 279, 425, 340, 443, 410, 452, 277, 261, 276, 261,
  298, 347, 418, 374, 426, 436, 291, 279, 425, 340, 336, 432, 313, 473, 425, 412, 340, 443, 436,
  269, 262, 424, 314, 261, 424, 283, 426, 368, 302, 352, 303, 270, 287, 411, 267, 259, 411, 306,
  345, 357, 426, 320, 293, 357, 262, 423, 290, 266, 269, 298, 412, 360, 270, 288, 261, 270, 425,
  428, 426, 313, 442, 413, 410, 293, 298, 347, 418, 267, 329, 409, 417, 264, 432, 269, 312, 410,
  293, 298, 347, 418, 267, 262, 283, 308, 303, 433, 364, 432, 436, 358, 336, 426, 291, 404, 444,
  413, 328, 432, 368, 302, 263, 377, 268, 412, 340, 267, 265, 282, 414, 264, 335, 262, 287, 411,
  268, 276, 380, 387, 265, 279, 425, 340, 426, 342, 337, 266, 267, 428, 316, 386, 261, 306, 328,
  278, 289, 428, 426, 410, 453, 420, 287, 351, 328, 353, 432, 368, 302, 269, 265, 279, 425, 340,
  382, 276, 329, 356, 374, 419, 426,
];

Deno.test({
  name: "the shipped evaluation text tokenizes to the checked-in ids",
  async fn() {
    const text = (await Deno.readTextFile(EVAL_TEXT_PATH)).trimEnd();
    const tokenizer = await readTokenizer(TOKENIZER_PATH, 512);
    expect(tokenizer.encode(text)).toEqual(EVAL_TEXT_IDS);
    expect(tokenizer.decode(EVAL_TEXT_IDS)).toBe(text);
    const piece = (id: number) => new TextDecoder().decode(tokenizer.pieces[id]);
    // By hand from tok512: 403 " Once", 407 " upon", 261 " a", 378 " time", 432 ","; "Ben" has
    // no piece of its own: " B" (368) + "en" (302); " duck" is " d" (279) "u" (425) "ck" (340).
    expect(EVAL_TEXT_IDS.slice(0, 6)).toEqual([1, 403, 407, 261, 378, 432]);
    expect([403, 407, 261, 378, 432, 368, 302, 279, 425, 340].map(piece)).toEqual(
      [" Once", " upon", " a", " time", ",", " B", "en", " d", "u", "ck"],
    );
    expect(EVAL_TEXT_IDS.slice(14, 17)).toEqual([368, 302, 426]); // " B" "en" "." of "named Ben."
    expect(EVAL_TEXT_IDS.at(-1)).toBe(426); // "."
    expect(EVAL_TEXT_IDS).toHaveLength(368); // within stories260K's 512 positions
  },
});

const FORMATS: TensorFormat[] = ["f32", "f16", "q8_0", "q4_0"];

async function model() {
  const { config, weights } = await readCheckpoint(MODEL_PATH);
  return { config, weights, stored: FORMATS.map((f) => storeWeights(config, weights, f)) };
}

/** The largest NMSE of one run's logits against another's, position by position. */
function worstNmse(rows: Float32Array[], expected: Float32Array[]): number {
  return Math.max(...rows.map((row, i) => compare(row, expected[i]).nmse));
}

/**
 * Ordering f32 → f16 → Q8_0 → Q4_0: KL divergences with 95% intervals that do not overlap;
 * perplexity the same for f16 (a change the text cannot resolve), then rising.
 */
function expectOrdered([f32, f16, q8, q4]: AccuracyReport[], f32Kl: number): void {
  expect(f32.kl.high).toBeLessThanOrEqual(f32Kl);
  expect(f16.kl.low).toBeGreaterThan(f32.kl.high);
  expect(q8.kl.low).toBeGreaterThan(f16.kl.high);
  expect(q4.kl.low).toBeGreaterThan(q8.kl.high);
  expect(q8.klP99).toBeGreaterThan(f16.klP99);
  expect(q4.klP99).toBeGreaterThan(q8.klP99);
  expect(Math.abs(f16.perplexity / f32.perplexity - 1)).toBeLessThan(1e-4);
  expect(f16.logPerplexityRatio.low).toBeLessThan(0);
  expect(f16.logPerplexityRatio.high).toBeGreaterThan(0);
  expect(q8.perplexity).toBeGreaterThan(f16.perplexity);
  expect(q4.perplexity).toBeGreaterThan(q8.perplexity * 1.02);
  expect(q4.sameTop1.mean).toBeLessThan(q8.sameTop1.mean);
}

Deno.test({
  name: "stories260K on the CPU: KL divergence and perplexity rise from f32 to f16, Q8_0, Q4_0",
  async fn() {
    const { config, weights, stored } = await model();
    const along = EVAL_TEXT_IDS.slice(0, -1);
    const reference = await logitsAlong(new CpuDecoder(config, weights), along);
    const reports: AccuracyReport[] = [];
    for (const [i, format] of FORMATS.entries()) {
      // f32 is the reference itself (stored f32 is a view of the same weights).
      const rows = format === "f32"
        ? reference
        : await logitsAlong(new CpuDecoder(config, stored[i]), along);
      if (format !== "f32") {
        const independent = await logitsAlong(
          new CpuDecoder(config, dequantizeWeights(stored[i])),
          along,
        );
        // f16: the same products. Q8_0/Q4_0 multiply Q8 activations (reference/q8_activations.ts):
        // each quantized projection adds an NMSE of about 1.6e-5, fifteen in series here (five
        // layers of Q/K/V, Wo and W1/W3; w2's 172-value rows fall back to f16): ~2.4e-4, 4x margin.
        const bound = format === "f16" ? 1e-12 : 1e-3;
        expect({ format, nmse: worstNmse(rows, independent) < bound })
          .toEqual({ format, nmse: true });
      }
      reports.push(compareLogits(rows, reference, EVAL_TEXT_IDS.slice(1)));
    }
    expectOrdered(reports, 0);
    // Measured with float activations: f32 perplexity 3.2272; f16 3.2272 (KL 5.5e-7), Q8_0
    // 3.2347 (3.2e-4), Q4_0 3.5857 (8.9e-2, same top-1 0.87, ln perplexity ratio 0.105
    // [0.065, 0.145]); Q8 activations move Q4_0's perplexity to 3.5896.
    const [, f16, q8, q4] = reports;
    expect(reports[0].perplexity).toBeCloseTo(3.2272, 4);
    expect(f16.kl.mean).toBeLessThan(2e-6);
    expect(q8.kl.mean).toBeLessThan(1e-3);
    expect(q4.kl.mean).toBeLessThan(0.2);
    expect(q4.logPerplexityRatio.low).toBeGreaterThan(0);
    // The KV cache: Q8_0 diverges more than f16 (the perplexity alone would not say which).
    const kv = [];
    for (const kvCache of ["f16", "q8_0"] as const) {
      const rows = await logitsAlong(new CpuDecoder(config, weights, { kvCache }), along);
      kv.push(compareLogits(rows, reference, EVAL_TEXT_IDS.slice(1)));
    }
    expect(kv[1].kl.low).toBeGreaterThan(kv[0].kl.high);
  },
});

Deno.test({
  name: "stories260K on WebGPU: each format's logits as the CPU reference's, ordered alike",
  ignore: ignoreGpuTests,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const gpu = await testGpu();
    const { config, weights, stored } = await model();
    // The first 64 positions: a forward pass per token costs ~16 ms on lavapipe.
    const tokens = EVAL_TEXT_IDS.slice(0, 65);
    const along = tokens.slice(0, -1);
    const reference = await logitsAlong(new CpuDecoder(config, weights), along);
    const reports: AccuracyReport[] = [];
    for (const [i, format] of FORMATS.entries()) {
      const decoder = await GpuDecoder.create(gpu, config, stored[i]);
      try {
        const rows = await logitsAlong(decoder, along);
        // the CPU reference over the stored weights (Q8 activations for Q8_0/Q4_0, as the GPU's
        // kernels; the dequantized path for f32 and f16)
        const independent = await logitsAlong(new CpuDecoder(config, stored[i]), along);
        // Q8_0/Q4_0: the same arithmetic, except where a quant sits on a rounding tie that the
        // GPU's float32 norm and the CPU's float64 one resolve apart: one step of one activation
        // (carried on by the KV cache), within the Q8 activations' budget (1e-3, see above).
        const quantized = format === "q8_0" || format === "q4_0";
        expect({ format, nmse: worstNmse(rows, independent) < (quantized ? 1e-3 : 1e-9) })
          .toEqual({ format, nmse: true });
        reports.push(compareLogits(rows, reference, tokens.slice(1)));
      } finally {
        decoder.destroy();
      }
    }
    // f32 on WebGPU against f32 on the CPU: rounding only (measured KL 6e-13).
    expectOrdered(reports, 1e-9);
  },
});
