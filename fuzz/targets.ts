/**
 * Every fuzz target, by name. A new file format registers here: a {@linkcode FuzzTarget}, or,
 * for a model format, `modelTarget({ name, write, load })` from `./llama2c.ts`.
 *
 * @module
 */
import { LLAMA2C_TARGETS } from "./llama2c.ts";
import type { FuzzTarget } from "./target.ts";

/** The registered targets. */
export const FUZZ_TARGETS: readonly FuzzTarget[] = [...LLAMA2C_TARGETS];
