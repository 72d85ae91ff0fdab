/**
 * `deno task convert`: writes a llama2.c checkpoint (or a GGUF file) as GGUF at a chosen tensor
 * format, with the vocabulary of a llama2.c `tokenizer.bin`, for this project and llama.cpp.
 *
 * @module
 */
import { parseFlags, UsageError } from "./flags.ts";
import { llamaToGguf, readModelFile } from "../model/formats/gguf_llama.ts";
import { readTokenizer } from "../model/formats/tokenizer.ts";
import { TENSOR_FORMATS, type TensorFormat } from "../reference/quantize.ts";

/** The converter's help text. */
export const CONVERT_HELP: string = `Usage: deno task convert --model PATH --out PATH [options]

  --model PATH       llama2.c checkpoint (or GGUF file) to convert
  --out PATH         GGUF file to write
  --tokenizer PATH   llama2.c tokenizer.bin to embed as the GGUF vocabulary
  --weights FORMAT   ${TENSOR_FORMATS.join(", ")} (default f32); norms stay f32; a
                     matrix whose rows are not whole blocks falls back: a K-quant to q8_0
                     (rows of 32 values), q8_0/q4_0 to f16
  --name NAME        general.name (default: the model file's name)
  --help             this text`;

/**
 * Runs the converter with `args`; returns the exit code (0 ok, 1 failure, 2 bad usage).
 *
 * @example
 * ```ts ignore
 * Deno.exit(await convertMain(["--model", "m.bin", "--out", "m.gguf", "--weights", "q8_0"]));
 * ```
 */
export async function convertMain(
  args: string[],
  log: (text: string) => void = (text) => console.error(text),
): Promise<number> {
  try {
    const flags = parseFlags(args, {
      model: { type: "string" },
      out: { type: "string" },
      tokenizer: { type: "string" },
      weights: { type: "string" },
      name: { type: "string" },
      help: { type: "boolean" },
    });
    if (flags.help) {
      log(CONVERT_HELP);
      return 0;
    }
    if (!flags.model || !flags.out) throw new UsageError("--model and --out are required");
    const format = (flags.weights ?? "f32") as TensorFormat;
    if (!TENSOR_FORMATS.includes(format)) {
      throw new UsageError(
        `--weights: expected one of ${TENSOR_FORMATS.join(", ")}, got "${flags.weights}"`,
      );
    }
    const model = await readModelFile(flags.model);
    const tokenizer = flags.tokenizer
      ? await readTokenizer(flags.tokenizer, model.config.vocabSize)
      : model.tokenizer;
    const name = flags.name ?? flags.model.split("/").pop()!.replace(/\.(bin|gguf)$/, "");
    const bytes = llamaToGguf(model.config, model.weights, { format, tokenizer, name });
    await Deno.writeFile(flags.out, bytes);
    log(`${flags.out}: ${bytes.length} bytes, ${format}${tokenizer ? ", with vocabulary" : ""}`);
    return 0;
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    log(`convert: ${message}${error instanceof UsageError ? " (see --help)" : ""}`);
    return error instanceof UsageError ? 2 : 1;
  }
}

if (import.meta.main) Deno.exit(await convertMain(Deno.args));
