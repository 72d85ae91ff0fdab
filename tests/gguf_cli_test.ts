import { expect } from "expect";
import { generateMain } from "../cli/generate.ts";
import { CONVERT_HELP, convertMain } from "../cli/convert.ts";
import { parseGgufModel } from "../model/mod.ts";
import { LILY, MODEL_PATH, TOKENIZER_PATH } from "./_models.ts";

async function generate(...args: string[]) {
  let stdout = "";
  let stderr = "";
  const code = await generateMain(args, { stdout: (t) => stdout += t, stderr: (t) => stderr += t });
  return { code, stdout, stderr };
}

async function convert(...args: string[]) {
  const lines: string[] = [];
  const code = await convertMain(args, (t) => lines.push(t));
  return { code, log: lines.join("\n") };
}

Deno.test({
  name:
    "convert writes stories260K as GGUF; generate --model x.gguf tells the same story from its vocabulary",
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      const story = ["--prompt", "Once upon a time", "--temperature", "0", "--steps", "40"];
      const fromBin = await generate(
        "--model",
        MODEL_PATH,
        "--tokenizer",
        TOKENIZER_PATH,
        ...story,
        "--backend",
        "cpu",
      );
      expect(fromBin.stdout.startsWith(LILY)).toBe(true);
      for (const format of ["f32", "q8_0"]) {
        const out = `${dir}/stories260K.${format}.gguf`;
        const converted = await convert(
          "--model",
          MODEL_PATH,
          "--tokenizer",
          TOKENIZER_PATH,
          "--weights",
          format,
          "--out",
          out,
        );
        expect(converted).toEqual({
          code: 0,
          log: expect.stringMatching(new RegExp(`: \\d+ bytes, ${format}, with vocabulary$`)),
        });
        const model = parseGgufModel(await Deno.readFile(out));
        expect(model.name).toBe("stories260K");
        const fromGguf = await generate("--model", out, ...story, "--backend", "cpu");
        expect(fromGguf.code).toBe(0);
        // f32 is the same model: the same text. q8_0 still starts with the same sentence.
        if (format === "f32") expect(fromGguf.stdout).toBe(fromBin.stdout);
        else expect(fromGguf.stdout.startsWith(LILY)).toBe(true);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("convert and generate give one clear line for bad usage and bad files", async () => {
  expect(await convert("--help")).toEqual({ code: 0, log: CONVERT_HELP });
  expect(await convert("--model", "x.bin")).toEqual({
    code: 2,
    log: "convert: --model and --out are required (see --help)",
  });
  expect(await convert("--model", "x.bin", "--out", "y.gguf", "--weights", "q5_1")).toEqual({
    code: 2,
    log:
      'convert: --weights: expected one of f32, f16, q8_0, q4_0, q6_k, q5_k, q4_k, got "q5_1" (see --help)',
  });
  const missing = await convert("--model", "/nonexistent/x.bin", "--out", "/nonexistent/y.gguf");
  expect(missing.code).toBe(1);
  expect(missing.log).toContain("convert: /nonexistent/x.bin: cannot read checkpoint");
  const prompt = await generate("--prompt", "hi", "--backend", "cpu");
  expect(prompt.code).toBe(2);
  expect(prompt.stderr).toBe(
    "generate: --prompt and --prompts-file need --tokenizer (or a GGUF model, which has a vocabulary) (see --help)\n",
  );
});
