/**
 * Conformance cases of the kernel variants: every projection variant with every epilogue (and
 * the RMSNorm prologue) at odd and real shapes, and the tiled prefill attention, each against
 * the `reference/` functions composed the unfused way.
 *
 * @module
 */
import type { ConformanceCase } from "./conformance.ts";
import { guardedBuffer, readGuarded, runGuarded, stateBuffer } from "./conformance.ts";
import { foldNormWeight, fuseQkv, interleaveGateUp } from "./fused_weights.ts";
import {
  PROJECTION_VARIANTS,
  projectionKernel,
  type ProjectionShape,
  type ProjectionVariant,
} from "./projection.ts";
import { tiledAttentionKernel } from "./attention_tiled.ts";
import { decodeAttention } from "../reference/attention.ts";
import { matmul } from "../reference/matmul.ts";
import { rmsNorm } from "../reference/norm.ts";
import { Rng } from "../reference/random.ts";
import { rope, type RopeLayout, ropeTable } from "../reference/rope.ts";
import { siluMul } from "../reference/swiglu.ts";

const PRODUCT = { maxNmse: 1e-9, maxAbsError: 1e-3 };
/** The fused forms reorder the norm's products; their error is that of a product, plus RoPE's. */
const FUSED = { maxNmse: 1e-8, maxAbsError: 2e-3 };

function normRows(x: Float32Array, norm: Float32Array | undefined): Float32Array {
  return norm ? rmsNorm(x, norm) : x;
}

/** `out = W·x` (`store`) or `out += W·x` (`add`), optionally normed, optionally one block. */
function storeCase(
  variant: ProjectionVariant,
  rows: number,
  outDim: number,
  inDim: number,
  options: { add?: boolean; norm?: boolean; block?: [start: number, units: number] } = {},
): ConformanceCase {
  const { add = false, norm = false, block } = options;
  const [start, units] = block ?? [0, outDim];
  const tags = [norm && "norm", block && `rows ${start}..${start + units - 1}`].filter(Boolean);
  return {
    kernel: `projection ${add ? "add" : "store"}`,
    variant: variant.name,
    shape: `${rows}x${outDim}x${inDim}${tags.length ? ` ${tags.join(" ")}` : ""}`,
    ...(norm ? FUSED : PRODUCT),
    async run(gpu) {
      const rng = new Rng(outDim * 17 + inDim + rows);
      const w = rng.uniformArray(outDim * inDim);
      const x = rng.uniformArray(rows * inDim);
      const initial = rng.uniformArray(rows * outDim);
      const normWeight = norm ? rng.uniformArray(inDim) : undefined;
      const blockW = w.subarray(start * inDim, (start + units) * inDim);
      const kernel = await projectionKernel(
        gpu,
        { rows, units, inDim },
        { kind: add ? "add" : "store" },
        variant,
        { norm, unitOffset: start, outStride: outDim },
      );
      const gpuW = gpu.upload(normWeight ? foldNormWeight(blockW, inDim, normWeight) : blockW);
      const { values, guardsIntact } = await runGuarded(
        gpu,
        rows * outDim,
        (out) => [kernel.bind({ w: gpuW, x: gpu.upload(x), out })],
        initial,
      );
      const product = matmul(w, normRows(x, normWeight), rows, outDim, inDim);
      const expected = initial.slice();
      for (let t = 0; t < rows; t++) {
        for (let r = start; r < start + units; r++) {
          const at = t * outDim + r;
          expected[at] = add ? initial[at] + product[at] : product[at];
        }
      }
      return { actual: values, expected, guardsIntact };
    },
  };
}

/** `out = silu(W1·norm(x)) · (W3·norm(x))` over interleaved W1/W3. */
function siluMulCase(
  variant: ProjectionVariant,
  rows: number,
  hidden: number,
  dim: number,
): ConformanceCase {
  return {
    kernel: "projection siluMul",
    variant: variant.name,
    shape: `${rows}x${hidden}x${dim} norm`,
    ...FUSED,
    async run(gpu) {
      const rng = new Rng(hidden * 5 + dim + rows);
      const w1 = rng.uniformArray(hidden * dim);
      const w3 = rng.uniformArray(hidden * dim);
      const x = rng.uniformArray(rows * dim);
      const normWeight = rng.uniformArray(dim);
      const kernel = await projectionKernel(
        gpu,
        { rows, units: hidden, inDim: dim },
        { kind: "siluMul" },
        variant,
        { norm: true },
      );
      const w = gpu.upload(interleaveGateUp(w1, w3, dim, normWeight));
      const { values, guardsIntact } = await runGuarded(gpu, rows * hidden, (out) => [
        kernel.bind({ w, x: gpu.upload(x), out }),
      ]);
      const xn = rmsNorm(x, normWeight);
      const expected = siluMul(
        matmul(w1, xn, rows, hidden, dim).map((v) => v), // gate
        matmul(w3, xn, rows, hidden, dim),
      );
      return { actual: values, expected, guardsIntact };
    },
  };
}

/** Q, K, V of normed x in one dispatch, RoPE applied, K and V appended to the caches. */
function qkvRopeCase(
  variant: ProjectionVariant,
  rows: number,
  dim: number,
  nHeads: number,
  nKvHeads: number,
  headDim: number,
  pos: number,
  maxSeqLen: number,
  layout: RopeLayout,
): ConformanceCase {
  return {
    kernel: "projection qkvRope",
    variant: variant.name,
    shape: `${rows}x${dim} ${nHeads}/${nKvHeads}x${headDim} at ${pos} of ${maxSeqLen} ${layout}`,
    ...FUSED,
    async run(gpu) {
      const rng = new Rng(dim * 3 + nHeads + pos + rows);
      const qDim = nHeads * headDim;
      const kvDim = nKvHeads * headDim;
      const wq = rng.uniformArray(qDim * dim);
      const wk = rng.uniformArray(kvDim * dim);
      const wv = rng.uniformArray(kvDim * dim);
      const x = rng.uniformArray(rows * dim);
      const normWeight = rng.uniformArray(dim);
      const keys = rng.uniformArray(maxSeqLen * kvDim);
      const values = rng.uniformArray(maxSeqLen * kvDim);
      const shape = { dim, nHeads, nKvHeads, headDim, layout };
      const kernel = await projectionKernel(
        gpu,
        { rows, units: (qDim + 2 * kvDim) / 2, inDim: dim },
        { kind: "qkvRope", nHeads, nKvHeads, headDim, maxSeqLen, layout },
        variant,
        { norm: true },
      );
      const q = guardedBuffer(gpu, rows * qDim);
      const keyCache = guardedBuffer(gpu, keys.length, keys);
      const valueCache = guardedBuffer(gpu, values.length, values);
      await gpu.submit([
        kernel.bind({
          w: gpu.upload(fuseQkv(wq, wk, wv, shape, normWeight)),
          x: gpu.upload(x),
          q: q.range,
          keyCache: keyCache.range,
          valueCache: valueCache.range,
          table: gpu.upload(ropeTable(headDim, maxSeqLen)),
          state: stateBuffer(gpu, pos),
        }),
      ]);
      const got = [await readGuarded(gpu, q), await readGuarded(gpu, keyCache)];
      got.push(await readGuarded(gpu, valueCache));
      const xn = rmsNorm(x, normWeight);
      const expectedQ = matmul(wq, xn, rows, qDim, dim);
      const k = matmul(wk, xn, rows, kvDim, dim);
      const v = matmul(wv, xn, rows, kvDim, dim);
      const expectedKeys = keys.slice();
      const expectedValues = values.slice();
      for (let t = 0; t < rows; t++) {
        const at = pos + t;
        expectedQ.set(
          rope(expectedQ.subarray(t * qDim, (t + 1) * qDim), at, headDim, { layout }),
          t * qDim,
        );
        if (at >= maxSeqLen) continue; // dropped, as the append kernel drops it
        expectedKeys.set(
          rope(k.subarray(t * kvDim, (t + 1) * kvDim), at, headDim, { layout }),
          at * kvDim,
        );
        expectedValues.set(v.subarray(t * kvDim, (t + 1) * kvDim), at * kvDim);
      }
      // rows past the table get NaN queries by design; compare only those in range
      const inRange = Math.max(0, Math.min(rows, maxSeqLen - pos)) * qDim;
      return {
        actual: concat(got[0].values.subarray(0, inRange), got[1].values, got[2].values),
        expected: concat(expectedQ.subarray(0, inRange), expectedKeys, expectedValues),
        guardsIntact: got.every((g) => g.guardsIntact),
      };
    },
  };
}

function tiledAttentionCase(
  rows: number,
  nHeads: number,
  nKvHeads: number,
  headDim: number,
  pos: number,
): ConformanceCase {
  return {
    kernel: "attention prefill",
    variant: "tiled",
    shape: `${rows}x${nHeads}/${nKvHeads}x${headDim} at ${pos}`,
    ...PRODUCT,
    async run(gpu) {
      const rng = new Rng(nHeads * 100 + nKvHeads * 10 + headDim + pos + 1);
      const maxSeqLen = pos + rows + 3; // positions past the last query hold noise it must not see
      const kvDim = nKvHeads * headDim;
      const q = rng.uniformArray(rows * nHeads * headDim);
      const keys = rng.uniformArray(maxSeqLen * kvDim);
      const values = rng.uniformArray(maxSeqLen * kvDim);
      const kernel = await tiledAttentionKernel(gpu, { rows, nHeads, nKvHeads, headDim });
      const { values: actual, guardsIntact } = await runGuarded(
        gpu,
        q.length,
        (out) =>
          kernel.bind({
            q: gpu.upload(q),
            keyCache: gpu.upload(keys),
            valueCache: gpu.upload(values),
            state: stateBuffer(gpu, pos),
            out,
          }),
      );
      const width = nHeads * headDim;
      const expected = new Float32Array(q.length);
      const shape = { nHeads, nKvHeads, headDim };
      for (let t = 0; t < rows; t++) {
        expected.set(
          decodeAttention(q.subarray(t * width, (t + 1) * width), keys, values, pos + t, shape),
          t * width,
        );
      }
      return { actual, expected, guardsIntact };
    },
  };
}

function concat(...parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/**
 * The variants' cases: each projection variant at every shape it applies to, each epilogue,
 * and the tiled prefill attention.
 *
 * @example
 * ```ts
 * import { variantCases } from "./variant_cases.ts";
 * const variants = new Set(variantCases().map((c) => c.variant));
 * if (!variants.has("coop256") || !variants.has("tiled")) throw new Error("missing");
 * ```
 */
export function variantCases(): ConformanceCase[] {
  const cases: ConformanceCase[] = [];
  for (const variant of PROJECTION_VARIANTS) {
    const fits = (rows: number, outDim: number, inDim: number) =>
      variant.applies({ rows, units: outDim, inDim });
    for (
      const [rows, outDim, inDim] of [
        [1, 1, 1],
        [1, 7, 33],
        [1, 257, 4099],
        [1, 768, 288],
        [
          7,
          33,
          257,
        ],
        [17, 288, 96],
        [33, 65, 20],
      ]
    ) {
      if (fits(rows, outDim, inDim)) cases.push(storeCase(variant, rows, outDim, inDim));
    }
    const fused: [ProjectionShape, () => ConformanceCase][] = [
      [
        { rows: 1, units: 300, inDim: 36 },
        () => storeCase(variant, 1, 1000, 36, { norm: true, block: [256, 300] }),
      ],
      [{ rows: 1, units: 288, inDim: 768 }, () => storeCase(variant, 1, 288, 768, { add: true })],
      [{ rows: 1, units: 768, inDim: 288 }, () => siluMulCase(variant, 1, 768, 288)],
      [
        { rows: 1, units: 288, inDim: 288 },
        () => qkvRopeCase(variant, 1, 288, 6, 6, 48, 17, 32, "interleaved"),
      ],
      [
        { rows: 1, units: 96, inDim: 64 },
        () => qkvRopeCase(variant, 1, 64, 8, 2, 16, 31, 32, "half"),
      ],
      [
        { rows: 5, units: 33, inDim: 7 },
        () => storeCase(variant, 5, 33, 7, { add: true, norm: true }),
      ],
      [{ rows: 19, units: 33, inDim: 12 }, () => siluMulCase(variant, 19, 33, 12)],
      [
        { rows: 3, units: 12, inDim: 36 },
        () => qkvRopeCase(variant, 3, 36, 4, 2, 6, 5, 16, "half"),
      ],
      // the last row falls past maxSeqLen: its K and V are dropped
      [
        { rows: 18, units: 48, inDim: 64 },
        () => qkvRopeCase(variant, 18, 64, 4, 1, 16, 0, 17, "interleaved"),
      ],
    ];
    for (const [shape, make] of fused) if (variant.applies(shape)) cases.push(make());
  }
  cases.push(
    tiledAttentionCase(1, 1, 1, 2, 0),
    tiledAttentionCase(7, 8, 4, 64, 0),
    tiledAttentionCase(33, 6, 6, 48, 0),
    tiledAttentionCase(40, 8, 2, 64, 60),
    tiledAttentionCase(5, 24, 1, 48, 130),
    tiledAttentionCase(3, 8, 8, 128, 129),
  );
  return cases;
}
