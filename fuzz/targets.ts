/**
 * Every fuzz target, by name. A new file format registers here: a {@linkcode FuzzTarget}, or,
 * for a model format, `modelTarget({ name, write, load })` from `./llama2c.ts`, e.g.
 *
 * ```ts ignore
 * modelTarget({
 *   name: "gguf",
 *   write: (config, weights) => ({ bytes: writeGguf(config, weights), fields: [], sections: [] }),
 *   load: (bytes, source) => readGgufModel(bytes, source), // { config, weights }, errors name source
 * });
 * ```
 *
 * @module
 */
import { LLAMA2C_TARGETS } from "./llama2c.ts";
import type { FuzzTarget } from "./target.ts";

/** The registered targets. */
export const FUZZ_TARGETS: readonly FuzzTarget[] = [...LLAMA2C_TARGETS];
