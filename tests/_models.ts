// The real llama2.c model in ../shared/models: tests that need it are ignored, with one clear
// message, where it is absent, and fail under CI, where it must be present.
import { requireWebGpu } from "./_gpu.ts";

/** Folder of the shared test models. */
export const MODELS_DIR: string = new URL("../../shared/models/", import.meta.url).pathname;
/** stories260K.bin, a real TinyStories model (GQA: 8 heads, 4 KV heads). */
export const MODEL_PATH: string = `${MODELS_DIR}stories260K.bin`;
/** Its tokenizer. */
export const TOKENIZER_PATH: string = `${MODELS_DIR}tok512.bin`;

const present = await Promise.all(
  [MODEL_PATH, TOKENIZER_PATH].map((p) => Deno.stat(p).then(() => true, () => false)),
);

/** True when the model tests are ignored here. */
export const ignoreModelTests: boolean = !present.every(Boolean) && !requireWebGpu;

if (ignoreModelTests) {
  console.warn(
    `real-model tests ignored: ${MODELS_DIR} lacks stories260K.bin or tok512.bin (required under CI)`,
  );
}

/** The greedy continuation of "Once upon a time" that ../shared/models/README.md documents. */
export const LILY = "Once upon a time, there was a little girl named Lily.";
