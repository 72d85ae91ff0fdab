import { expect } from "expect";
import { embedding } from "../reference/mod.ts";

Deno.test("embedding returns the table rows of the tokens, in order", () => {
  const table = Float32Array.from({ length: 12 }, (_, i) => i); // vocab 4, dim 3
  expect(Array.from(embedding(table, [3, 0, 3], 3))).toEqual([9, 10, 11, 0, 1, 2, 9, 10, 11]);
});

Deno.test("embedding rejects out-of-vocabulary ids and a table not divisible by dim", () => {
  const table = new Float32Array(12);
  expect(() => embedding(table, [4], 3)).toThrow(
    "embedding token 0: expected an id in [0, 4), got 4",
  );
  expect(() => embedding(table, [1, -1], 3)).toThrow("got -1");
  expect(() => embedding(table, [0.5], 3)).toThrow("got 0.5");
  expect(() => embedding(table, [0], 5)).toThrow("expected a multiple of dim 5, got length 12");
});
