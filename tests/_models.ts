// The real llama2.c model that ships in models/ (see models/README.md): every clone has it.

/** Folder of the shipped models. */
export const MODELS_DIR: string = new URL("../models/", import.meta.url).pathname;
/** stories260K.bin, a real TinyStories model (GQA: 8 heads, 4 KV heads). */
export const MODEL_PATH: string = `${MODELS_DIR}stories260K.bin`;
/** Its tokenizer. */
export const TOKENIZER_PATH: string = `${MODELS_DIR}tok512.bin`;

/** The greedy continuation of "Once upon a time" that models/README.md documents. */
export const LILY = "Once upon a time, there was a little girl named Lily.";
