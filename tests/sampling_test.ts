import { expect } from "expect";
import {
  argmax,
  gumbelSample,
  Rng,
  sample,
  Sampler,
  temperatureSoftmax,
  topK,
  topP,
} from "../reference/mod.ts";

Deno.test("argmax picks the largest logit, ties to the lowest id, and rejects NaN", () => {
  expect(argmax(new Float32Array([-1, 4, 2, 4]))).toBe(1);
  expect(argmax(new Float32Array([-Infinity, -5]))).toBe(1);
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

Deno.test("topP keeps the smallest set whose mass reaches p", () => {
  const probs = new Float32Array([0.05, 0.5, 0.25, 0.15, 0.05]);
  expect(topP(probs, 0.5)).toEqual([1]);
  expect(topP(probs, 0.51)).toEqual([1, 2]);
  expect(topP(probs, 0.75)).toEqual([1, 2]);
  expect(topP(probs, 0.76)).toEqual([1, 2, 3]);
  expect(topP(probs, 1)).toHaveLength(5);
  // smallest: dropping the last kept id falls below p
  const kept = topP(probs, 0.8);
  const mass = (ids: number[]) => ids.reduce((s, i) => s + probs[i], 0);
  expect(mass(kept)).toBeGreaterThanOrEqual(0.8 - 1e-6);
  expect(mass(kept.slice(0, -1))).toBeLessThan(0.8);
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
    "temperature: expected a finite number >= 0, got -1",
  );
});
