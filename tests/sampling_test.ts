import { expect } from "expect";
import {
  argmax,
  gumbelNoise,
  gumbelSample,
  Rng,
  sample,
  Sampler,
  temperatureSoftmax,
  topK,
  topP,
} from "../reference/mod.ts";
import { gumbelFixed, noiseBits } from "../reference/_gumbel.ts";

Deno.test("argmax picks the largest logit, ties to the lowest id, and rejects NaN", () => {
  expect(argmax(new Float32Array([-1, 4, 2, 4]))).toBe(1);
  expect(argmax(new Float32Array([-Infinity, -5]))).toBe(1);
  expect(argmax(new Float32Array([-Infinity, -Infinity]))).toBe(0); // all masked: the first
  expect(() => argmax(new Float32Array([1, NaN]))).toThrow("argmax: logit 1 is NaN");
  expect(() => argmax(new Float32Array(0))).toThrow("at least one logit");
});

Deno.test("temperature sharpens below 1 and flattens above 1", () => {
  const logits = new Float32Array([1, 2]);
  const cold = temperatureSoftmax(logits, 0.5);
  const hot = temperatureSoftmax(logits, 2);
  expect(cold[1]).toBeGreaterThan(temperatureSoftmax(logits, 1)[1]);
  expect(hot[1]).toBeLessThan(temperatureSoftmax(logits, 1)[1]);
  expect(cold[1]).toBeCloseTo(1 / (1 + Math.exp(-2)), 6);
});

Deno.test("topK keeps the k most probable ids, ties to the lower id", () => {
  expect(topK(new Float32Array([0.2, 0.1, 0.4, 0.2, 0.1]), 3)).toEqual([2, 0, 3]);
});

Deno.test("topP keeps ids until the cumulative mass exceeds p (llama2.c's rule at ties)", () => {
  // binary fractions: the cumulative sums are exact, so ties are real ties
  const probs = new Float32Array([0.0625, 0.5, 0.25, 0.125, 0.0625]);
  expect(topP(probs, 0.4)).toEqual([1]);
  expect(topP(probs, 0.5)).toEqual([1, 2]); // 0.5 does not exceed 0.5: one more id
  expect(topP(probs, 0.74)).toEqual([1, 2]);
  expect(topP(probs, 0.75)).toEqual([1, 2, 3]);
  expect(topP(probs, 0.875)).toEqual([1, 2, 3, 0]); // ties: the lower id first
  expect(topP(probs, 1)).toEqual([1, 2, 3, 0, 4]);
});

Deno.test("top-p is taken over the top-k set renormalized, as llama.cpp does", () => {
  // probabilities 0.4, 0.3, 0.2, 0.1; top-k 2 leaves 4/7 and 3/7
  const logits = new Float32Array([0.4, 0.3, 0.2, 0.1].map(Math.log));
  const draw = (options: { topK: number; topP: number }, seed: number) => {
    const sampler = new Sampler({ temperature: 1, seed, ...options });
    const counts = [0, 0, 0, 0];
    for (let i = 0; i < 2000; i++) counts[sampler.sample(logits)]++;
    return counts;
  };
  // 4/7 > 0.5: the nucleus of the top-2 set is token 0 alone (over the full distribution,
  // 0.4 < 0.5 would keep tokens 0 and 1)
  expect(draw({ topK: 2, topP: 0.5 }, 1)).toEqual([2000, 0, 0, 0]);
  // 4/7 < 0.6 < 1: both top-2 tokens, in proportion 4:3
  const both = draw({ topK: 2, topP: 0.6 }, 2);
  expect(both[2] + both[3]).toBe(0);
  expect(both[0] / 2000).toBeCloseTo(4 / 7, 1);
});

Deno.test("temperature comes after top-k and top-p, as in llama.cpp's default chain", () => {
  // softmax([3, 0, -1]) = 0.936, 0.047, 0.017: top-p 0.8 keeps id 0 alone at any temperature.
  // Dividing by T = 2 first (Hugging Face's order) gives 0.736, 0.164, 0.100 and keeps ids 0, 1.
  const rng = new Rng(40);
  const alone = new Float32Array([3, 0, -1]);
  for (let i = 0; i < 500; i++) expect(sample(alone, { temperature: 2, topP: 0.8 }, rng)).toBe(0);
  // softmax([2, 1.5, -5]) = 0.622, 0.377, 0.0006: top-p 0.95 keeps ids 0 and 1, and T = 0.5
  // then draws between them from softmax([4, 3]): id 0 with 1 / (1 + e^-1) = 0.731 (at T = 1
  // it would be 0.622).
  const pair = new Float32Array([2, 1.5, -5]);
  const counts = [0, 0, 0];
  const draws = 20000;
  for (let i = 0; i < draws; i++) counts[sample(pair, { temperature: 0.5, topP: 0.95 }, rng)]++;
  expect(counts[2]).toBe(0);
  const share = counts[0] / draws;
  const sigma = Math.sqrt(0.731 * 0.269 / draws); // 0.0031
  expect(Math.abs(share - 1 / (1 + Math.exp(-1)))).toBeLessThan(4 * sigma);
  // With top-k 1 only the largest logit is left, however hot.
  for (let i = 0; i < 100; i++) expect(sample(pair, { temperature: 50, topK: 1 }, rng)).toBe(0);
});

Deno.test("sampling never returns ids outside top-k or top-p, and follows the distribution", () => {
  const logits = new Float32Array([2, 1, 0, -1, 3]);
  const rng = new Rng(16);
  const counts = new Array(5).fill(0);
  for (let i = 0; i < 4000; i++) counts[sample(logits, { temperature: 1, topK: 2 }, rng)]++;
  expect(counts[1] + counts[2] + counts[3]).toBe(0);
  const p = Math.exp(3) / (Math.exp(3) + Math.exp(2));
  expect(counts[4] / 4000).toBeCloseTo(p, 1);
  for (let i = 0; i < 500; i++) {
    expect([4, 0]).toContain(sample(logits, { temperature: 1, topP: 0.8 }, rng));
  }
});

Deno.test("temperature 0 is greedy; seeded sampling repeats exactly", () => {
  const logits = new Rng(17).uniformArray(512).map((v) => v * 3);
  expect(sample(logits, { temperature: 0 }, new Rng(1))).toBe(argmax(logits));
  const draw = (seed: number) => {
    const s = new Sampler({ temperature: 0.9, topP: 0.95, topK: 40, seed });
    return Array.from({ length: 50 }, () => s.sample(logits));
  };
  expect(draw(42)).toEqual(draw(42));
  expect(draw(42)).not.toEqual(draw(43));
});

Deno.test("sampling rejects top-p outside (0, 1], bad top-k and negative temperature", () => {
  const logits = new Float32Array([1, 2]);
  expect(() => topP(logits, 0)).toThrow("top-p: expected a value in (0, 1], got 0");
  expect(() => new Sampler({ temperature: 1, topP: 1.5 })).toThrow(
    "top-p: expected a value in (0, 1], got 1.5",
  );
  expect(() => topK(logits, 0)).toThrow("top-k: expected an integer >= 1, got 0");
  expect(() => new Sampler({ temperature: -1 })).toThrow(
    "temperature: expected a finite number >= 0, got -1",
  );
  expect(() => temperatureSoftmax(logits, 0)).toThrow(
    "temperature: expected a finite number > 0, got 0",
  );
});

Deno.test("gumbelSample draws from softmax(logits / T) and repeats per (seed, pos)", () => {
  const logits = new Float32Array([1, 0, 2, -1]);
  const temperature = 0.7;
  const probs = temperatureSoftmax(logits, temperature);
  const counts = new Array(4).fill(0);
  const draws = 20000;
  for (let pos = 0; pos < draws; pos++) counts[gumbelSample(logits, temperature, 5, pos)]++;
  counts.forEach((c, i) => expect(Math.abs(c / draws - probs[i])).toBeLessThan(0.015));
  expect(gumbelSample(logits, temperature, 5, 3)).toBe(gumbelSample(logits, temperature, 5, 3));
  expect(gumbelSample(logits, 0, 5, 3)).toBe(2);
  expect(() => gumbelSample(logits, -1, 5, 3)).toThrow(
    "temperature: expected 0 or a number in [1e-30, 1e+30], got -1",
  );
});

Deno.test("gumbelNoise is -ln(-ln u) to 2^-15 over the whole range of u, and always finite", () => {
  // an independent evaluation in f64 of the same u = (2·(bits >> 9) + 1) / 2^24
  const exact = (bits: number) => -Math.log(-Math.log((2 * (bits >>> 9) + 1) / 2 ** 24));
  const at = (bits: number) => gumbelFixed(bits) / 65536;
  // every 61st of the 2^23 values of u, and all of both ends
  const samples: number[] = [];
  for (let m = 0; m < 2 ** 23; m += 61) samples.push(m << 9);
  for (let m = 0; m < 4096; m++) samples.push(m << 9, (2 ** 23 - 1 - m) << 9);
  let worst = 0;
  for (const bits of samples) worst = Math.max(worst, Math.abs(at(bits >>> 0) - exact(bits >>> 0)));
  expect(worst).toBeLessThan(2 ** -15);
  expect(at(0)).toBeCloseTo(-Math.log(24 * Math.LN2), 4); // u = 2^-24
  expect(at(0xffffffff)).toBeCloseTo(16.635532, 4); // u = 1 - 2^-24: finite, unlike u = 1
  // hashed (seed, pos, id) draws: seed 0, pos 0, id 0 hash to 0 bits
  expect(gumbelNoise(0, 0, 0)).toBe(at(0));
  expect(gumbelNoise(3, 9, 11)).toBeCloseTo(exact(noiseBits(3, 9, 11)), 4);
});

Deno.test("gumbelSample: -Infinity never wins, +Infinity always does, NaN is an error", () => {
  const minus = new Float32Array([-Infinity, 0, -Infinity, -50]);
  const plus = new Float32Array([0, Infinity, 5, Infinity]);
  for (let pos = 0; pos < 200; pos++) {
    expect([1, 3]).toContain(gumbelSample(minus, 10, 1, pos));
    expect(gumbelSample(plus, 1, 1, pos)).toBe(1);
  }
  expect(gumbelSample(new Float32Array(3).fill(-Infinity), 1, 1, 0)).toBe(0); // as argmax
  expect(() => gumbelSample(new Float32Array([0, NaN]), 1, 1, 0)).toThrow("logit 1 is NaN");
  expect(() => gumbelSample(new Float32Array(2), 1e-31, 1, 0)).toThrow(
    "temperature: expected 0 or a number in [1e-30, 1e+30], got 1e-31",
  );
});

Deno.test("sample follows argmax on non-finite logits: +Infinity wins, all -Infinity gives 0", () => {
  const rng = new Rng(1);
  for (
    const options of [{ temperature: 1 }, { temperature: 0.7, topK: 2 }, {
      temperature: 1,
      topP: 0.5,
    }]
  ) {
    expect(sample(new Float32Array([0, Infinity, 1, Infinity]), options, rng)).toBe(1);
    expect(sample(new Float32Array([-Infinity, -Infinity, -Infinity]), options, rng)).toBe(0);
    expect(() => sample(new Float32Array([0, NaN]), options, rng)).toThrow(
      "argmax: logit 1 is NaN",
    );
  }
});
