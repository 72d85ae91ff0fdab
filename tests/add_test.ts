import { expect } from "expect";
import { add } from "../reference/mod.ts";

Deno.test("add is the elementwise sum and names a length mismatch", () => {
  expect([...add(new Float32Array([1, -2, 0.5]), new Float32Array([2, 2, 0.25]))]).toEqual([
    3,
    0,
    0.75,
  ]);
  expect(() => add(new Float32Array(3), new Float32Array(2))).toThrow(
    "add delta (length of x): expected length 3, got 2",
  );
});
