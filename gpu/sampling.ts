/**
 * Chooses the next token on the GPU: argmax over logits (ties to the lowest id), or, with a
 * temperature, the Gumbel-max draw that `gumbelSample` in the reference makes, bit for bit: the
 * noise is the same integer function of (seed, position of the drawn token, id), and the
 * perturbed values are compared as the same integers. The id goes to `state[STATE.token]`, where
 * the next step's embedding lookup reads it: no read-back.
 *
 * Values are classified by their bits, never by float comparisons, which WGSL lets a compiler
 * assume are free of NaN and infinities: `-Infinity` loses to every finite logit and `+Infinity`
 * beats them, all `-Infinity` gives id 0, as the reference's `argmax`. A NaN never wins (all
 * NaN gives id 0), where the reference throws: a kernel cannot.
 *
 * @module
 */
import type { Gpu } from "./device.ts";
import { GpuError } from "./device.ts";
import { compileKernel, type Kernel } from "./kernel.ts";
import { checkInteger } from "../reference/checks.ts";
import { STATE } from "./state.ts";
import { GUMBEL_WGSL } from "./_gumbel.ts";
import { GUMBEL_TEMPERATURE_RANGE } from "../reference/sampling.ts";
import { EXACT, type KernelPair } from "./pair.ts";
import { STATE_WORDS, stateWords } from "./state.ts";
import { Rng } from "../reference/random.ts";
import { gumbelSample } from "../reference/sampling.ts";

const WGSL = /* wgsl */ `
override WG: u32 = 256u; // a power of two: the reduction halves it
override N: u32;
override INVERSE_TEMPERATURE: f32 = 0.0; // 0: greedy
override SEED: u32 = 0u;
@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read_write> state: array<u32>;
// (key, index) pairs: one array of vec2, as wgpu's GL backend zero-initializes workgroup memory
// one element at a time and Mesa's GLSL compile time grows faster than the element count.
var<workgroup> best: array<vec2<u32>, WG>;
${GUMBEL_WGSL}
const NONE = 0xffffffffu;
const EXPONENT = 0x7f800000u;

// u32 keys in the order of the f32 values: NaN 0, -inf 0x007fffff, ..., +inf 0xff800000.
fn orderKey(bits: u32) -> u32 {
  if ((bits & 0x7fffffffu) > EXPONENT) { return 0u; } // NaN
  if ((bits & 0x7fffffffu) == 0u) { return 0x80000000u; } // -0 == +0
  return select(bits | 0x80000000u, ~bits, (bits & 0x80000000u) != 0u);
}

fn isFinite(bits: u32) -> bool { return (bits & EXPONENT) != EXPONENT; }

// The Gumbel-max key, as gumbelKey in reference/_gumbel.ts, as a u32 in the order of the i32.
fn gumbelKey(bits: u32, rowMax: f32, noise: i32) -> u32 {
  if ((bits & 0x7fffffffu) > EXPONENT) { return 0u; } // NaN: below everything
  if (!isFinite(bits)) { return select(1u, NONE, bits == EXPONENT); } // -inf 1, +inf above all
  let floor = -30000i * 65536i;
  var fixed = floor;
  let difference = bitcast<f32>(bits) - rowMax;
  if (isFinite(bitcast<u32>(difference))) {
    let x = difference * INVERSE_TEMPERATURE;
    if (isFinite(bitcast<u32>(x)) && x >= -30000.0) { fixed = i32(x * 65536.0); }
  }
  return bitcast<u32>(fixed + noise) ^ 0x80000000u;
}

// Workgroup-wide (max key, lowest index); the result in best[0].
fn reduce(lid: u32, key: u32, index: u32) {
  best[lid] = vec2<u32>(key, index);
  workgroupBarrier();
  for (var half = WG / 2u; half > 0u; half /= 2u) {
    if (lid < half) {
      let other = best[lid + half];
      let mine = best[lid];
      if (other.x > mine.x || (other.x == mine.x && other.y < mine.y)) { best[lid] = other; }
    }
    workgroupBarrier();
  }
}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32) {
  // Greedy: the largest value. Sampling: the largest finite value, the shift of every logit.
  var key = 0u;
  var index = NONE;
  for (var i = lid; i < N; i += WG) {
    let bits = bitcast<u32>(logits[i]);
    var k = orderKey(bits);
    if (INVERSE_TEMPERATURE > 0.0 && !isFinite(bits)) { k = 0u; }
    if (k > key || index == NONE) { key = k; index = i; } // ascending i: ties keep the first
  }
  reduce(lid, key, index);
  if (INVERSE_TEMPERATURE > 0.0) {
    let maxKey = best[0].x;
    workgroupBarrier();
    let rowMax = bitcast<f32>(select(~maxKey, maxKey & 0x7fffffffu, maxKey >= 0x80000000u));
    let noiseKey = mix32(state[${STATE.next}u] ^ mix32(SEED));
    key = 0u;
    index = NONE;
    for (var i = lid; i < N; i += WG) {
      let k = gumbelKey(bitcast<u32>(logits[i]), rowMax, gumbelFixed(mix32(i ^ noiseKey)));
      if (k > key || index == NONE) { key = k; index = i; }
    }
    reduce(lid, key, index);
  }
  if (lid == 0u) { state[${STATE.token}u] = best[0].y; }
}`;

/** Sampling of an {@linkcode argmaxKernel}. */
export interface ArgmaxOptions {
  /** 0 (default) for greedy argmax; otherwise a Gumbel-max draw at that temperature, in
   * `GUMBEL_TEMPERATURE_RANGE`. */
  temperature?: number;
  /** Seed of the noise stream (a u32). */
  seed?: number;
}

/**
 * Compiles next-token selection over `n` logits. Bindings: `logits (n)`, `state` (u32; writes
 * `token`, reads `next` when sampling).
 *
 * @example
 * ```ts ignore
 * const pick = await argmaxKernel(gpu, 32000);
 * await gpu.submit(pick.bind({ logits, state }));
 * ```
 */
export function argmaxKernel(
  gpu: Gpu,
  n: number,
  options: ArgmaxOptions = {},
): Promise<Kernel<"logits" | "state">> {
  const { temperature = 0, seed = 0 } = options;
  const name = `argmax ${n}${temperature > 0 ? ` T=${temperature}` : ""}`;
  checkInteger(`${name}: n`, n);
  const [low, high] = GUMBEL_TEMPERATURE_RANGE;
  if (!(temperature === 0 || (temperature >= low && temperature <= high))) {
    throw new GpuError(
      name,
      `temperature: expected 0 or a number in [${low}, ${high}], got ${temperature}`,
    );
  }
  // a power of two; one vec2 of workgroup memory per invocation, within the device's budget
  const workgroupSize =
    [256, 128, 64].find((size) =>
      size <= gpu.limits.maxComputeInvocationsPerWorkgroup && size <= gpu.workgroupElementBudget
    ) ?? 64;
  return compileKernel(
    gpu,
    name,
    WGSL,
    {
      WG: workgroupSize,
      N: n,
      // exactly the f32 the reference multiplies by
      INVERSE_TEMPERATURE: temperature > 0 ? Math.fround(1 / temperature) : 0,
      SEED: seed >>> 0,
    },
    ["logits", "state"],
    [1],
  );
}

// ─── Registry entry: this kernel against its reference (collected in `pairs.ts`) ───

/** Shape of the token choice: `n` logits, greedy (temperature 0) or Gumbel-max sampling. */
export interface ArgmaxPairShape {
  /** Logits per call. */
  n: number;
  /** Put the maximum at three ids (the lowest must win). */
  ties: boolean;
  /** 0 is greedy; above 0 a Gumbel-max draw at that temperature. */
  temperature: number;
}

const ARGMAX_SEED = 1234;
/** Noise positions each sampling case draws at (greedy ignores the position). */
const argmaxPositions = ({ temperature }: ArgmaxPairShape) => temperature > 0 ? [0, 1, 2, 77] : [0];

/**
 * The chosen token, written into the state buffer: each output is the whole state, so a kernel
 * that wrote anything but `token` fails too.
 */
export const ARGMAX_PAIR: KernelPair<ArgmaxPairShape, { logits: Float32Array }> = {
  family: "argmax",
  kernel: ({ temperature }) => temperature > 0 ? "argmax gumbel" : "argmax",
  describe: ({ n, ties, temperature }) =>
    `${n}${ties ? " with ties" : ""}${temperature > 0 ? ` T=${temperature}` : ""}`,
  inputs({ n, ties }) {
    const logits = new Rng(n + 13).uniformArray(n);
    if (ties) { for (const i of [n - 1, Math.floor(n / 2), Math.floor(n / 3) + 1]) logits[i] = 2; }
    return { logits };
  },
  reference(shape, { logits }) {
    const states = argmaxPositions(shape).map((next) =>
      stateWords({ next, token: gumbelSample(logits, shape.temperature, ARGMAX_SEED, next) })
    );
    return Float32Array.from(states.flatMap((words) => [...words]));
  },
  conformance: [
    { n: 1, ties: false, temperature: 0 },
    { n: 7, ties: true, temperature: 0 },
    { n: 4099, ties: true, temperature: 0 },
    { n: 32000, ties: false, temperature: 0 },
    { n: 512, ties: false, temperature: 0.8 },
    { n: 32000, ties: false, temperature: 1 },
  ],
  bench: {
    quick: [{ n: 512, ties: false, temperature: 0 }],
    full: [{ n: 32000, ties: false, temperature: 0 }],
  },
  bytes: ({ n }) => 4 * (n + 1),
  flops: ({ n }) => n,
  tolerance: EXACT,
  variants: [{
    name: "default",
    async record(gpu, shape, { logits }, buffers) {
      const { n, temperature } = shape;
      const kernel = await argmaxKernel(gpu, n, { temperature, seed: ARGMAX_SEED });
      const logitsBuffer = buffers.input(logits);
      return argmaxPositions(shape).flatMap((next) =>
        kernel.bind({
          logits: logitsBuffer,
          state: buffers.output(STATE_WORDS, stateWords({ next }), "u32"),
        })
      );
    },
  }],
};
