import { expect } from "expect";
import { STATE, STATE_BYTES, STATE_WORDS, stateWords } from "../gpu/state.ts";

Deno.test("the state buffer holds token, pos and next at their words, 16 bytes in all", () => {
  expect(STATE).toEqual({ token: 0, pos: 1, next: 2 });
  expect(STATE_WORDS * 4).toBe(STATE_BYTES);
  expect(STATE_BYTES % 16).toBe(0); // uniform/storage-friendly size
  expect([...stateWords({ token: 7, pos: 3, next: 4 })]).toEqual([7, 3, 4, 0]);
  expect([...stateWords()]).toEqual([0, 0, 0, 0]);
});
