/**
 * Seeded mutations of a valid file: bit flips, truncations, extensions, header fields set to
 * extremes, swapped sections, and floats set to NaN, Inf or huge finite values.
 *
 * @module
 */
import type { Rng } from "../reference/random.ts";
import type { FuzzSample } from "./target.ts";

/** The values a header field is set to: zero, negative, the int32 limits, and huge sizes. */
export const EXTREME_VALUES: readonly number[] = [
  0,
  1,
  -1,
  2 ** 31 - 1,
  -(2 ** 31),
  2 ** 24,
  10_000_000,
  65536,
  2,
  3,
];

/** A mutated file and what was done to it, for reproducing a failure. */
export interface Mutation {
  /** The mutated bytes (a copy). */
  bytes: Uint8Array;
  /** The mutations applied, in order. */
  steps: string[];
}

type Mutator = (bytes: Uint8Array, sample: FuzzSample, rng: Rng) => [Uint8Array, string];

const pick = <T>(rng: Rng, items: readonly T[]): T => items[Math.floor(rng.next() * items.length)];
const below = (rng: Rng, n: number) => Math.floor(rng.next() * n);

const MUTATORS: Record<string, Mutator> = {
  bitFlip(bytes, _sample, rng) {
    const flips = 1 + below(rng, 8);
    const where: number[] = [];
    for (let i = 0; i < flips && bytes.length > 0; i++) {
      // half the flips land in the first 64 bytes, where the header is
      const at = rng.next() < 0.5
        ? below(rng, Math.min(64, bytes.length))
        : below(rng, bytes.length);
      bytes[at] ^= 1 << below(rng, 8);
      where.push(at);
    }
    return [bytes, `flip bits at ${where.join(",")}`];
  },
  truncate(bytes, _sample, rng) {
    const length = rng.next() < 0.3
      ? below(rng, Math.min(300, bytes.length))
      : below(rng, bytes.length);
    return [bytes.slice(0, length), `truncate to ${length}`];
  },
  extend(bytes, _sample, rng) {
    const extra = rng.next() < 0.5 ? 1 + below(rng, 8) : 1 + below(rng, 4096);
    const out = new Uint8Array(bytes.length + extra);
    out.set(bytes);
    for (let i = bytes.length; i < out.length; i++) out[i] = below(rng, 256);
    return [out, `extend by ${extra}`];
  },
  field(bytes, sample, rng) {
    let fields = sample.fields.filter((f) => f.offset + f.width <= bytes.length);
    if (fields.length === 0 && bytes.length >= 8) {
      // A format without a map: any aligned word in the first 512 bytes, where headers live.
      const offset = 4 * below(rng, Math.floor((Math.min(512, bytes.length) - 4) / 4));
      const width = offset + 8 <= bytes.length && rng.next() < 0.5 ? 8 : 4;
      fields = [{ name: `bytes[${offset}]`, offset, width }];
    }
    if (fields.length === 0) return MUTATORS.bitFlip(bytes, sample, rng);
    const field = pick(rng, fields);
    const value = rng.next() < 0.8 ? pick(rng, EXTREME_VALUES) : rng.nextUint32() | 0;
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (field.width === 1) view.setUint8(field.offset, value & 0xff);
    else if (field.width === 4) view.setInt32(field.offset, value, true);
    else view.setBigInt64(field.offset, BigInt(value), true);
    return [bytes, `${field.name} = ${field.width === 1 ? value & 0xff : value}`];
  },
  swap(bytes, sample, rng) {
    const sections = sample.sections.filter((s) => s.offset + s.length <= bytes.length);
    if (sections.length < 2) return MUTATORS.bitFlip(bytes, sample, rng);
    let [a, b] = [pick(rng, sections), pick(rng, sections)];
    if (a === b) return MUTATORS.bitFlip(bytes, sample, rng);
    if (a.offset > b.offset) [a, b] = [b, a];
    if (a.offset + a.length > b.offset) return MUTATORS.bitFlip(bytes, sample, rng);
    // a, middle, b becomes b, middle, a: the same size, the contents moved
    const out = new Uint8Array(bytes.length);
    const parts = [
      bytes.subarray(0, a.offset),
      bytes.subarray(b.offset, b.offset + b.length),
      bytes.subarray(a.offset + a.length, b.offset),
      bytes.subarray(a.offset, a.offset + a.length),
      bytes.subarray(b.offset + b.length),
    ];
    let at = 0;
    for (const part of parts) {
      out.set(part, at);
      at += part.length;
    }
    return [out, `swap ${a.name} and ${b.name}`];
  },
  float(bytes, sample, rng) {
    const start = sample.sections[0]?.offset ?? 0;
    const floats = Math.floor((bytes.length - start) / 4);
    if (floats < 1) return MUTATORS.bitFlip(bytes, sample, rng);
    const at = start + 4 * below(rng, floats);
    const value = pick(rng, [NaN, Infinity, -Infinity, 7.9e37, -3e38, 1e-45, 65504]);
    new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).setFloat32(at, value, true);
    return [bytes, `float at ${at} = ${value}`];
  },
};

/** Names of the mutations. */
export const MUTATION_KINDS: readonly string[] = Object.keys(MUTATORS);

/**
 * Applies one to three seeded mutations to a copy of `sample.bytes`.
 *
 * @example
 * ```ts
 * import { Rng } from "../reference/random.ts";
 * import { mutate } from "./mutate.ts";
 * const sample = { bytes: new Uint8Array(64), fields: [{ name: "n", offset: 0, width: 4 as const }], sections: [] };
 * const a = mutate(sample, new Rng(3));
 * if (a.bytes.join() !== mutate(sample, new Rng(3)).bytes.join()) throw new Error("not seeded");
 * ```
 */
export function mutate(sample: FuzzSample, rng: Rng): Mutation {
  let bytes: Uint8Array = sample.bytes.slice();
  const steps: string[] = [];
  const count = 1 + below(rng, 3);
  for (let i = 0; i < count; i++) {
    const [out, step] = MUTATORS[pick(rng, MUTATION_KINDS)](bytes, sample, rng);
    bytes = out;
    steps.push(step);
  }
  return { bytes, steps };
}
