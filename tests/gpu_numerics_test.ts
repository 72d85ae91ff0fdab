// Numerics the conformance cases' random inputs in [-1, 1] cannot reach: Gumbel noise bit for
// bit over the whole range of u, sampled choices over many seeds and positions, the -Infinity
// and NaN contracts of argmax and softmax, and RMSNorm's eps.
import { expect } from "expect";
import {
  argmaxKernel,
  compileKernel,
  type Gpu,
  rmsNormKernel,
  softmaxKernel,
  STATE,
  STATE_WORDS,
} from "../gpu/mod.ts";
import { GUMBEL_WGSL } from "../gpu/_gumbel.ts";
import { EXACT_FLOAT_WGSL } from "../gpu/_exact_float.ts";
import { f16BitsToF32, f32ToF16Bits } from "../reference/f16.ts";
import { gumbelFixed, mix32, noiseBits } from "../reference/_gumbel.ts";
import { Rng } from "../reference/random.ts";
import { gumbelSample } from "../reference/sampling.ts";
import { rmsNorm } from "../reference/norm.ts";
import { softmax } from "../reference/softmax.ts";
import { gpuTest } from "./_gpu.ts";

const NOISE_WGSL = /* wgsl */ `
${GUMBEL_WGSL}
override COUNT: u32;
@group(0) @binding(0) var<storage, read> input: array<u32>; // (seed, pos, id, raw bits) each
@group(0) @binding(1) var<storage, read_write> out: array<i32>; // (noise of the triple, of the bits)
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x;
  if (i >= COUNT) { return; }
  out[2u * i] = gumbelFixed(noiseBits(input[4u * i], input[4u * i + 1u], input[4u * i + 2u]));
  out[2u * i + 1u] = gumbelFixed(input[4u * i + 3u]);
}`;

gpuTest(
  "GPU Gumbel noise is bit-identical to the CPU's, ends of the range included",
  async (gpu) => {
    const count = 8192;
    const rng = new Rng(2026);
    const input = new Uint32Array(4 * count);
    for (let i = 0; i < count; i++) {
      input[4 * i] = rng.nextUint32(); // seed
      input[4 * i + 1] = i % 3 === 0 ? rng.nextUint32() : i; // position
      input[4 * i + 2] = rng.nextUint32() % 32000; // token id
      // raw bits: both ends of u's 2^23 values (low bits random), the series/log switch, random
      const low = rng.nextUint32() & 0x1ff;
      const m = i < 2048
        ? i
        : i < 4096
        ? 2 ** 23 - 1 - (i - 2048)
        : i < 4160
        ? 2 ** 23 - 16384 - 32 + (i - 4096) // c = 2^24 - (2m + 1) around 32768
        : rng.nextUint32() >>> 9;
      input[4 * i + 3] = ((m << 9) | low) >>> 0;
    }
    input.set([0, 0, 0, 0], 0); // the all-zero triple hashes to 0 bits: u = 2^-24
    input[4 * 1 + 3] = 0xffffffff; // u = 1 - 2^-24, +inf noise before the fix
    const kernel = await compileKernel(gpu, "gumbel noise", NOISE_WGSL, { COUNT: count }, [
      "input",
      "out",
    ], [count / 64]);
    const out = gpu.createBuffer(8 * count);
    await gpu.submit(kernel.bind({ input: gpu.upload(input), out }));
    const actual = new Int32Array((await gpu.readUint32(out, 2 * count)).buffer);
    const mismatches: string[] = [];
    for (let i = 0; i < count && mismatches.length < 5; i++) {
      const [seed, pos, id, bits] = input.subarray(4 * i, 4 * i + 4);
      const fromTriple = gumbelFixed(noiseBits(seed, pos, id));
      const fromBits = gumbelFixed(bits);
      if (actual[2 * i] !== fromTriple) {
        mismatches.push(`(${seed}, ${pos}, ${id}): GPU ${actual[2 * i]}, CPU ${fromTriple}`);
      }
      if (actual[2 * i + 1] !== fromBits) {
        mismatches.push(`bits ${bits.toString(16)}: GPU ${actual[2 * i + 1]}, CPU ${fromBits}`);
      }
    }
    expect(mismatches).toEqual([]);
    expect(actual[0]).toBe(-184256); // −ln(24 ln 2) · 2^16 = −184258.3, to 2^-15
    expect(actual[3]).toBe(1090226); // −ln(−ln(1 − 2^-24)) · 2^16 = 1090226.2: finite
    out.destroy();
  },
);

const EXACT_WGSL = /* wgsl */ `
${EXACT_FLOAT_WGSL}
override COUNT: u32;
@group(0) @binding(0) var<storage, read> input: array<u32>; // (a, b) each
@group(0) @binding(1) var<storage, read_write> out: array<u32>; // a/b, f16(a), f32(f16 b), roundf(a)
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x;
  if (i >= COUNT) { return; }
  let a = input[2u * i];
  let b = input[2u * i + 1u];
  out[4u * i] = exactDivide(a & 0x7fffffffu, b & 0x7fffffffu);
  out[4u * i + 1u] = f16Bits(a);
  out[4u * i + 2u] = f16ToF32Bits(b & 0xffffu);
  out[4u * i + 3u] = u32(roundHalfAway(a));
}`;

gpuTest(
  "GPU integer float rounding: division, f16 and roundf equal IEEE's over the whole range",
  async (gpu) => {
    const count = 16384;
    const rng = new Rng(33);
    const bits = new Uint32Array(1);
    const float = new Float32Array(bits.buffer);
    // Random exponents over the whole range (subnormals, overflow), random significands, and
    // near-ties: significands with few bits set, quotients of small integers, halves.
    const input = new Uint32Array(2 * count);
    for (let i = 0; i < 2 * count; i++) {
      const kind = i % 4;
      if (kind === 0) input[i] = rng.nextUint32();
      else if (kind === 1) input[i] = (rng.nextUint32() & 0xff800000) | (rng.nextUint32() & 0x7);
      else if (kind === 2) {
        float[0] = (rng.nextUint32() % 4096) / 8; // halves and eighths: roundf's ties
        input[i] = bits[0];
      } else {
        float[0] = (rng.nextUint32() % 256) * 2 ** ((rng.nextUint32() % 60) - 40);
        input[i] = bits[0];
      }
    }
    input.set([0x3effffff, 0x42fe0000], 0); // 0.49999997 (rounds to 0), 127
    input.set([0x00000001, 0x42fe0000], 2); // the smallest subnormal / 127: 0
    input.set([0x7f7fffff, 0x00000001], 4); // largest / smallest subnormal: +inf
    const kernel = await compileKernel(gpu, "exact float", EXACT_WGSL, { COUNT: count }, [
      "input",
      "out",
    ], [count / 64]);
    const out = gpu.createBuffer(16 * count);
    await gpu.submit(kernel.bind({ input: gpu.upload(input), out }));
    const actual = await gpu.readUint32(out, 4 * count);
    const asFloat = (u: number) => {
      bits[0] = u;
      return float[0];
    };
    const asBits = (x: number) => {
      float[0] = x;
      return bits[0];
    };
    const mismatches: string[] = [];
    const check = (what: string, got: number, want: number) => {
      if (got !== want && mismatches.length < 8) {
        mismatches.push(`${what}: GPU ${got}, IEEE ${want}`);
      }
    };
    for (let i = 0; i < count; i++) {
      const [a, b] = [input[2 * i], input[2 * i + 1]];
      const [x, y] = [asFloat(a & 0x7fffffff), asFloat(b & 0x7fffffff)];
      if (Number.isFinite(x) && Number.isFinite(y) && y > 0) {
        // Division in double, then rounding to f32, is the correctly rounded f32 quotient.
        check(`${x} / ${y}`, actual[4 * i], asBits(x / y));
      }
      if (!Number.isNaN(asFloat(a))) {
        check(`f16(${asFloat(a)})`, actual[4 * i + 1], f32ToF16Bits(asFloat(a)));
      }
      check(`f16 bits ${b & 0xffff}`, actual[4 * i + 2], asBits(f16BitsToF32(b & 0xffff)));
      const v = asFloat(a);
      if (Math.abs(v) < 2 ** 31) {
        check(`roundf(${v})`, actual[4 * i + 3] | 0, v < 0 ? -Math.round(-v) : Math.round(v));
      }
    }
    expect(mismatches).toEqual([]);
    // By hand: roundf(0.49999997) = 0; 2^-149 / 127 rounds to 0; 3.4e38 / 2^-149 overflows.
    expect([actual[3], actual[4], actual[8]]).toEqual([0, 0, 0x7f800000]);
  },
);

/** Runs `kernel` once per position (each its own 256-byte state slot) and reads the tokens. */
async function chooseAt(
  gpu: Gpu,
  n: number,
  logits: Float32Array,
  options: { temperature: number; seed: number },
  positions: readonly number[],
): Promise<number[]> {
  const kernel = await argmaxKernel(gpu, n, options);
  const slotWords = 64; // 256 bytes: the largest storage offset alignment WebGPU allows
  const initial = new Uint32Array(slotWords * positions.length);
  positions.forEach((pos, k) => {
    initial[k * slotWords + STATE.next] = pos;
    initial[k * slotWords + STATE.token] = 0xdeadbeef;
  });
  const state = gpu.upload(initial);
  const logitsBuffer = gpu.upload(logits);
  await gpu.submit(positions.flatMap((_, k) =>
    kernel.bind({
      logits: logitsBuffer,
      state: { buffer: state, offset: k * slotWords * 4, size: STATE_WORDS * 4 },
    })
  ));
  const words = await gpu.readUint32(state, initial.length);
  state.destroy();
  logitsBuffer.destroy();
  return positions.map((_, k) => words[k * slotWords + STATE.token]);
}

gpuTest("GPU Gumbel-max choices equal the CPU's over many seeds and positions", async (gpu) => {
  const rng = new Rng(77);
  // logits close together (many tokens competitive), masked ids, a wide range at a low temperature
  const close = rng.uniformArray(64);
  const masked = rng.uniformArray(300).map((v, i) => i % 3 === 0 ? -Infinity : v * 4);
  const wide = rng.uniformArray(4099).map((v) => v * 30);
  const large = rng.uniformArray(32000).map((v) => v * 2);
  const cases: [Float32Array, number, number, number][] = [ // logits, temperature, seed, positions
    [close, 1, 0, 512],
    [close, 0.35, 0xffffffff, 512],
    [masked, 1.7, 12345, 256],
    [wide, 0.05, 9, 32],
    [large, 1, 3, 8],
  ];
  const distinct = new Set<number>();
  for (const [logits, temperature, seed, count] of cases) {
    const positions = Array.from({ length: count }, (_, k) => k * 7919 + (k % 2 ? 2 ** 31 : 0));
    const gpuChoices = await chooseAt(gpu, logits.length, logits, { temperature, seed }, positions);
    const cpuChoices = positions.map((pos) => gumbelSample(logits, temperature, seed, pos));
    expect(gpuChoices).toEqual(cpuChoices);
    if (logits === close) cpuChoices.forEach((id) => distinct.add(id));
  }
  expect(distinct.size).toBeGreaterThan(40); // the draws really are spread over the tokens
});

/** Inverse of lowbias32 (`mix32`): multiplies by the inverse constants, undoes the shifts. */
function unmix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x43021123) >>> 0;
  x ^= (x >>> 15) ^ (x >>> 30);
  x = Math.imul(x, 0x1d69e2a5) >>> 0;
  x ^= x >>> 16;
  return x >>> 0;
}

gpuTest(
  "GPU Gumbel-max: the draw whose 32 bits are all ones does not override the logits",
  async (gpu) => {
    // u = 1 − 2^-24 there: the old f32 formula rounded it to 1, an infinite noise that won at any
    // logit. Build the position whose hash gives token 1234 at seed 5 exactly those bits.
    const [n, id, seed] = [4099, 1234, 5];
    const pos = (unmix32((unmix32(0xffffffff) ^ id) >>> 0) ^ mix32(seed)) >>> 0;
    expect(noiseBits(seed, pos, id)).toBe(0xffffffff);
    const logits = new Float32Array(n);
    logits[id] = -40; // noise up to 16.7 cannot lift it over 0 plus noise above −2.9
    const chosen = await chooseAt(gpu, n, logits, { temperature: 1, seed }, [pos, pos + 1]);
    expect(chosen[0]).not.toBe(id);
    expect(chosen).toEqual([
      gumbelSample(logits, 1, seed, pos),
      gumbelSample(logits, 1, seed, pos + 1),
    ]);
  },
);

gpuTest(
  "GPU argmax: all -Infinity gives 0; NaN never wins nor hides its thread's values",
  async (gpu) => {
    const greedy = { temperature: 0, seed: 0 };
    for (const n of [7, 4099]) {
      const allMasked = new Float32Array(n).fill(-Infinity);
      expect(await chooseAt(gpu, n, allMasked, greedy, [0])).toEqual([0]); // 0xffffffff before
      expect(await chooseAt(gpu, n, allMasked, { temperature: 1, seed: 4 }, [0, 1])).toEqual([
        0,
        0,
      ]);
    }
    // NaN first in invocation 0's stride; the maximum later in the same stride
    const logits = new Rng(5).uniformArray(4099);
    logits[0] = NaN;
    logits[2048] = 7;
    expect(await chooseAt(gpu, 4099, logits, greedy, [0])).toEqual([2048]);
    logits[2048] = -Infinity;
    logits[17] = NaN;
    const finite = logits.map((v) => Number.isNaN(v) ? -Infinity : v);
    let best = 0;
    finite.forEach((v, i) => v > finite[best] && (best = i));
    expect(await chooseAt(gpu, 4099, logits, greedy, [0])).toEqual([best]);
    // -0 and +0 tie: the lower id wins; +Infinity wins over everything
    expect(await chooseAt(gpu, 3, new Float32Array([-1, -0, 0]), greedy, [0])).toEqual([1]);
    const withInfinity = new Float32Array([1, Infinity, 3, Infinity]);
    expect(await chooseAt(gpu, 4, withInfinity, greedy, [0])).toEqual([1]);
    expect(await chooseAt(gpu, 4, withInfinity, { temperature: 1, seed: 1 }, [0, 5])).toEqual([
      1,
      1,
    ]);
  },
);

gpuTest(
  "GPU softmax: a row of -Infinity gives zeros as the reference; masked entries 0",
  async (gpu) => {
    const n = 70;
    const x = new Rng(8).uniformArray(3 * n);
    x.fill(-Infinity, 0, n); // row 0 masked entirely
    for (let i = n; i < 2 * n; i += 2) x[i] = -Infinity; // row 1 half masked
    const expected = softmax(x, n);
    const kernel = await softmaxKernel(gpu, { rows: 3, n });
    const out = gpu.createBuffer(x.byteLength);
    await gpu.submit(kernel.bind({ x: gpu.upload(x), out }));
    const actual = await gpu.readFloat32(out, x.length);
    expect(Array.from(actual.subarray(0, n))).toEqual(new Array(n).fill(0)); // NaN before
    for (let i = n; i < 3 * n; i++) expect(actual[i]).toBeCloseTo(expected[i], 6);
    for (let i = n; i < 2 * n; i += 2) expect(actual[i]).toBe(0);
    out.destroy();
  },
);

gpuTest("GPU RMSNorm adds eps inside the sqrt: rows of |x| ~ 1e-3", async (gpu) => {
  const dim = 96;
  // row 0: ±1e-3, mean square 1e-6; row 1: random at 1e-3 scale; row 2: zeros
  const x = new Float32Array(3 * dim);
  for (let i = 0; i < dim; i++) x[i] = i % 2 ? -1e-3 : 1e-3;
  x.set(new Rng(9).uniformArray(dim).map((v) => v * 2e-3), dim);
  const weight = new Float32Array(dim).fill(1);
  for (
    const [eps, expected] of [
      // 1e-3 / sqrt(1e-6 + 1e-5); eps outside the sqrt would give 1e-3 / (1e-3 + 1e-5) = 0.990,
      // no eps 1
      [1e-5, 0.30151134],
      [1e-6, 0.70710678], // 1e-3 / sqrt(2e-6)
    ]
  ) {
    const kernel = await rmsNormKernel(gpu, { rows: 3, dim, eps });
    const out = gpu.createBuffer(x.byteLength);
    await gpu.submit(kernel.bind({ x: gpu.upload(x), weight: gpu.upload(weight), out }));
    const actual = await gpu.readFloat32(out, x.length);
    for (let i = 0; i < dim; i++) {
      expect(actual[i]).toBeCloseTo(i % 2 ? -expected : expected, 6);
    }
    const reference = rmsNorm(x, weight, eps);
    for (let i = dim; i < 3 * dim; i++) expect(actual[i]).toBeCloseTo(reference[i], 6);
    expect(Array.from(actual.subarray(2 * dim))).toEqual(new Array(dim).fill(0));
    out.destroy();
  }
});
