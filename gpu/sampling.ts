/**
 * Chooses the next token on the GPU: argmax over logits (ties to the lowest id), or, with a
 * temperature, the Gumbel-max draw `argmax(logits / T + g)` whose noise `g` is the same pure
 * function of (seed, position of the drawn token, id) as `gumbelNoise` in the reference. The id goes to
 * `state[STATE.token]`, where the next step's embedding lookup reads it: no read-back.
 *
 * @module
 */
import type { Gpu } from "./device.ts";
import { GpuError } from "./device.ts";
import { compileKernel, type Kernel, WGSL_LOWEST } from "./kernel.ts";
import { checkInteger } from "../reference/_checks.ts";
import { STATE } from "./state.ts";

const WGSL = /* wgsl */ `
override WG: u32 = 256u; // a power of two: the reduction halves it
override N: u32;
override TEMPERATURE: f32 = 0.0; // 0: greedy
override SEED: u32 = 0u;
@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read_write> state: array<u32>;
var<workgroup> bestValue: array<f32, WG>;
var<workgroup> bestIndex: array<u32, WG>;

fn mix32(x: u32) -> u32 { // lowbias32, as gumbelNoise in reference/sampling.ts
  var h = x;
  h ^= h >> 16u;
  h *= 0x7feb352du;
  h ^= h >> 15u;
  h *= 0x846ca68bu;
  h ^= h >> 16u;
  return h;
}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32) {
  var noiseKey = 0u;
  if (TEMPERATURE > 0.0) { noiseKey = mix32(state[${STATE.next}u] ^ mix32(SEED)); }
  var value = ${WGSL_LOWEST};
  var index = 0xffffffffu;
  for (var i = lid; i < N; i += WG) {
    var v = logits[i];
    if (TEMPERATURE > 0.0) {
      let u = (f32(mix32(i ^ noiseKey) >> 8u) + 0.5) / 16777216.0;
      v = v / TEMPERATURE - log(-log(u));
    }
    if (v > value || index == 0xffffffffu) { value = v; index = i; } // ascending i: ties keep the first
  }
  bestValue[lid] = value;
  bestIndex[lid] = index;
  workgroupBarrier();
  for (var half = WG / 2u; half > 0u; half /= 2u) {
    if (lid < half) {
      let v = bestValue[lid + half];
      let j = bestIndex[lid + half];
      if (v > bestValue[lid] || (v == bestValue[lid] && j < bestIndex[lid])) {
        bestValue[lid] = v;
        bestIndex[lid] = j;
      }
    }
    workgroupBarrier();
  }
  if (lid == 0u) { state[${STATE.token}u] = bestIndex[0]; }
}`;

/** Sampling of an {@linkcode argmaxKernel}. */
export interface ArgmaxOptions {
  /** 0 (default) for greedy argmax; above 0 for a Gumbel-max draw at that temperature. */
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
  if (!(temperature >= 0) || !Number.isFinite(temperature)) {
    throw new GpuError(name, `temperature: expected a finite number >= 0, got ${temperature}`);
  }
  const workgroupSize = Math.min(256, gpu.limits.maxComputeInvocationsPerWorkgroup);
  return compileKernel(
    gpu,
    name,
    WGSL,
    { WG: workgroupSize, N: n, TEMPERATURE: temperature, SEED: seed >>> 0 },
    ["logits", "state"],
    [1],
  );
}
