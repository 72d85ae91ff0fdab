import { expect } from "expect";
import { GENERATE_HELP, generateMain } from "../cli/generate.ts";
import {
  CpuDecoder,
  makeConfig,
  preset,
  randomWeights,
  serializeCheckpoint,
} from "../model/mod.ts";
import { checkWeightsFitMemory } from "../model/memory.ts";
import { ignoreGpuTests } from "./_gpu.ts";
import { LILY, MODEL_PATH, TOKENIZER_PATH } from "./_models.ts";

async function cli(...args: string[]) {
  let stdout = "";
  let stderr = "";
  const code = await generateMain(args, { stdout: (t) => stdout += t, stderr: (t) => stderr += t });
  return { code, stdout, stderr };
}

Deno.test("generate --help prints the usage and exits 0", async () => {
  const { code, stdout } = await cli("--help");
  expect(code).toBe(0);
  expect(stdout).toBe(GENERATE_HELP + "\n");
  expect(stdout).toContain("--no-kv-cache");
});

Deno.test("wrong flags get one clear line and exit 2", async () => {
  for (
    const [args, message] of [
      [["--bogus"], "generate: Unknown option '--bogus'"],
      [["--backend", "tpu"], 'generate: --backend: expected cpu or webgpu, got "tpu"'],
      [["--temperature=-1"], 'generate: --temperature: expected a number >= 0, got "-1"'],
      [["--temperature", "-1"], 'generate: --temperature: expected a number >= 0, got "-1"'],
      [["--steps", "-1"], 'generate: --steps: expected an integer >= 1, got "-1"'],
      [["--top-k", "-3"], 'generate: --top-k: expected an integer >= 1, got "-3"'],
      [["--seed", "-.5"], 'generate: --seed: expected an integer, got "-.5"'],
      [
        ["--preset", "nonsense"],
        'generate: --preset: expected one of stories260K, stories15M, stories42M, stories110M, TinyLlama-1.1B, Llama-2-7B, got "nonsense"',
      ],
      [["--top-p", "1.5"], 'generate: --top-p: expected a number in (0, 1], got "1.5"'],
      [["--steps", "x"], 'generate: --steps: expected an integer >= 1, got "x"'],
      [["--prompt", "hi"], "generate: --prompt and --prompts-file need --tokenizer"],
      [
        ["--kv-layout", "ring", "--backend", "cpu"],
        'generate: --kv-layout: expected one of contiguous, paged, sliding, got "ring"',
      ],
      [
        ["--kv-layout", "sliding", "--backend", "cpu"],
        "generate: --kv-layout sliding needs --window W",
      ],
      [["--window", "0"], 'generate: --window: expected an integer >= 1, got "0"'],
      [["--max-batch", "65"], 'generate: --max-batch: expected an integer in [1, 64], got "65"'],
      [
        ["--window", "8", "--top-k", "3"],
        "generate: --top-k is not available with batched decoding",
      ],
      [
        ["--prompts-file", "/dev/zero"],
        "generate: --prompts-file /dev/zero: expected a regular file",
      ],
      [["--logits"], "generate: --logits needs --json"],
      [
        ["--preset", "stories260K", "--tokens", "1,999", "--backend", "cpu"],
        'generate: --tokens: "999" is not a token id in [0, 512)',
      ],
    ] as const
  ) {
    const { code, stderr } = await cli(...args);
    expect(code).toBe(2);
    expect(stderr.trim().split("\n")).toHaveLength(1);
    expect(stderr).toContain(message);
  }
});

Deno.test("unreadable files and devices get one clear line and exit 1", async () => {
  for (
    const [args, message] of [
      [["--model", "/nonexistent/m.bin"], "generate: /nonexistent/m.bin: cannot read checkpoint"],
      [
        ["--model", "/dev/zero"],
        "generate: /dev/zero: expected a regular file (a checkpoint), got a character device",
      ],
      [
        ["--tokenizer", "/dev/zero", "--prompt", "hi"],
        "generate: /dev/zero: expected a regular file (a tokenizer), got a character device",
      ],
    ] as const
  ) {
    const { code, stderr } = await cli(...args, "--backend", "cpu");
    expect(code).toBe(1);
    expect(stderr.trim().split("\n")).toHaveLength(1);
    expect(stderr).toContain(message);
  }
});

Deno.test("--json with --tokens on a preset gives ids and speeds; --logits adds every position", async () => {
  const { code, stdout } = await cli(
    "--preset",
    "stories260K",
    "--tokens",
    "1,5,17",
    "--steps",
    "4",
    "--backend",
    "cpu",
    "--temperature",
    "0",
    "--json",
    "--logits",
  );
  expect(code).toBe(0);
  const result = JSON.parse(stdout);
  expect(result.promptTokens).toEqual([1, 5, 17]);
  // the same preset weights (seed 0) on the CPU reference, argmax by hand, stopping at BOS
  const config = preset("stories260K");
  const decoder = new CpuDecoder(config, randomWeights(config, 0));
  const expected: number[] = [];
  const logits: Float32Array[] = [];
  for (const [pos, token] of [1, 5, 17].entries()) logits.push(await decoder.forward(token, pos));
  while (expected.length < 4) {
    const last = logits[logits.length - 1];
    const next = last.indexOf(Math.max(...last));
    if (next === 1) break;
    expected.push(next);
    if (expected.length < 4) logits.push(await decoder.forward(next, 2 + expected.length));
  }
  expect(expected.length).toBeGreaterThan(0);
  expect(result.tokens).toEqual(expected);
  expect(result.prefillTokensPerSecond).toBeGreaterThan(0);
  expect(result.logits).toHaveLength(logits.length);
  expect(result.logits[0]).toHaveLength(512);
  expect(result.logits.at(-1)).toEqual(Array.from(logits.at(-1)!));
});

Deno.test({
  name: "a huge prompt is refused from its length, before encoding",
  fn: async () => {
    // 10 million characters: encoding them would take half a minute; the bound takes a moment
    const { code, stderr } = await cli(
      "--preset",
      "stories260K",
      "--tokenizer",
      TOKENIZER_PATH,
      "--prompt",
      "a".repeat(10_000_000),
      "--backend",
      "cpu",
    );
    expect(code).toBe(2);
    expect(stderr).toMatch(
      /^generate: the prompt has at least \d+ tokens; the model's maxSeqLen is 512 \(see --help\)\n$/,
    );
  },
});

// Two version 1 checkpoints of a tiny model (dim 8, 2 heads, 1 KV head, vocabulary 8), made by
// serializeCheckpoint from randomWeights(config, 1); the first test below proves it.
const FIXTURES = new URL("./fixtures/", import.meta.url).pathname;
const HUGE_CONTEXT = `${FIXTURES}huge_context_v1.bin`; // maxSeqLen 2^31 - 1
const OVERFLOW = `${FIXTURES}overflow_v1.bin`; // token 6's logit is +-Inf at every position

Deno.test("the fixtures are what their comments say", async () => {
  const shape = { dim: 8, hiddenDim: 8, nLayers: 1, nHeads: 2, nKvHeads: 1, vocabSize: 8 };
  const huge = makeConfig({ ...shape, maxSeqLen: 2 ** 31 - 1 });
  expect(await Deno.readFile(HUGE_CONTEXT)).toEqual(
    serializeCheckpoint(huge, randomWeights(huge, 1), "v1"),
  );
  const small = makeConfig({ ...shape, maxSeqLen: 16 });
  const weights = randomWeights(small, 1);
  weights.classifier.fill(0, 6 * 8, 7 * 8);
  weights.classifier[6 * 8 + 3] = 3e38; // one product, 3e38 times a feature scaled by 1e4
  weights.finalNorm[3] = 1e4;
  expect(await Deno.readFile(OVERFLOW)).toEqual(serializeCheckpoint(small, weights, "v1"));
});

Deno.test("a version 1 maxSeqLen of 2^31 - 1 runs sized to the run, and a run too long names file and field", async () => {
  const ok = await cli("--model", HUGE_CONTEXT, "--backend", "cpu", "--steps", "5", "--json");
  expect(ok.code).toBe(0);
  expect(JSON.parse(ok.stdout).promptTokens).toEqual([1]);
  const tooBig = await cli("--model", HUGE_CONTEXT, "--backend", "cpu", "--steps", "2000000000");
  expect(tooBig.code).toBe(1);
  expect(tooBig.stderr).toMatch(
    new RegExp(
      `^generate: ${HUGE_CONTEXT}: maxSeqLen 2147483647, run: a KV cache of 2000000000 positions needs 64\\.0 GB, more than 80% of this machine's`,
    ),
  );
});

for (const backend of ["cpu", "webgpu"]) {
  Deno.test({
    name: `logits that overflow stop generate with an error naming the position on ${backend}`,
    ignore: backend === "webgpu" && ignoreGpuTests,
    sanitizeResources: false,
    sanitizeOps: false,
    fn: async () => {
      for (const temperature of ["0", "0.8"]) {
        const args = ["--model", OVERFLOW, "--backend", backend, "--temperature", temperature];
        const { code, stdout, stderr } = await cli(...args);
        expect(code).toBe(1);
        expect(stdout).toBe(""); // no token was printed: the first logits already overflow
        expect(stderr).toMatch(
          /^generate: generation stopped: the logits after position 0 are not finite( \((-?Infinity|NaN) for token 6\))? \(the weights or activations overflow float32\)\n$/,
        );
      }
    },
  });
}

for (const backend of ["cpu", "webgpu"]) {
  Deno.test({
    name: `generate tells the Lily story from stories260K on ${backend}`,
    ignore: backend === "webgpu" && ignoreGpuTests,
    sanitizeResources: false,
    sanitizeOps: false,
    fn: async () => {
      const args = [
        "--model",
        MODEL_PATH,
        "--tokenizer",
        TOKENIZER_PATH,
        "--prompt",
        "Once upon a time",
        "--temperature",
        "0",
      ];
      const streamed = await cli(...args, "--steps", "40", "--backend", backend);
      expect(streamed.code).toBe(0);
      expect(streamed.stdout.startsWith(LILY)).toBe(true);
      expect(streamed.stderr).toMatch(
        /prefill: 5 tokens, [\d.]+ tokens\/s; decode: 40 tokens, [\d.]+ tokens\/s/,
      );
      const json = JSON.parse(
        (await cli(...args, "--steps", "20", "--backend", backend, "--json")).stdout,
      );
      expect(json.text.startsWith(LILY)).toBe(true);
      expect(json.promptTokens).toEqual([1, 403, 407, 261, 378]);
    },
  });
}

Deno.test({
  name: "a preset too big for this machine's memory is refused with sizes, not a crash",
  // Llama-2-7B needs 27 GB in fp32: refused on machines under ~34 GB, like this project's.
  ignore: Deno.systemMemoryInfo().total * 0.8 > 27.5e9,
  fn: async () => {
    const { code, stderr } = await cli("--preset", "Llama-2-7B", "--backend", "cpu");
    expect(code).toBe(1);
    expect(stderr).toMatch(
      /generate: --preset Llama-2-7B: fp32 weights need 27\.\d GB, more than 80% of this machine's [\d.]+ GB of memory/,
    );
  },
});

Deno.test("checkWeightsFitMemory refuses weights larger than the machine and accepts small ones", () => {
  const total = Deno.systemMemoryInfo().total;
  const layers = Math.ceil(total / (4 * 12 * 1024 * 1024)) + 1; // 1024-wide layers: 12M floats each
  const huge = makeConfig({
    dim: 1024,
    hiddenDim: 2048,
    nLayers: layers,
    nHeads: 8,
    nKvHeads: 8,
    vocabSize: 4,
    maxSeqLen: 4,
  });
  expect(() => checkWeightsFitMemory(huge, "huge")).toThrow(
    /^huge: fp32 weights need [\d.]+ GB, more than 80% of this machine's/,
  );
  checkWeightsFitMemory(preset("stories15M"), "small");
});

for (const backend of ["cpu", "webgpu"] as const) {
  Deno.test({
    name: `a sliding window longer than the run works on ${backend}: the ring holds the run`,
    ignore: backend === "webgpu" && ignoreGpuTests,
    sanitizeResources: false,
    fn: async () => {
      // The issue's command: 5 prompt tokens + 40 steps need 44 positions, the window is 512.
      const args = ["--model", MODEL_PATH, "--tokenizer", TOKENIZER_PATH, "--steps", "40"];
      const common = ["--prompt", "Once upon a time", "--temperature", "0", "--json"];
      const windowed = await cli(
        ...args,
        ...common,
        "--kv-layout",
        "sliding",
        "--window",
        "512",
        "--backend",
        backend,
      );
      expect(windowed.stderr).toBe("");
      expect(windowed.code).toBe(0);
      const result = JSON.parse(windowed.stdout);
      expect(result.sequences[0].text.startsWith(LILY)).toBe(true);
      // A window wider than the run is full attention: the tokens of a plain run.
      const plain = await cli(...args, ...common, "--backend", "cpu");
      expect(result.sequences[0].tokens).toEqual(JSON.parse(plain.stdout).tokens);
    },
  });
}

for (const backend of ["cpu", "webgpu"] as const) {
  Deno.test({
    name: `generate with two prompts on ${backend} batches them and tells each prompt's story`,
    ignore: backend === "webgpu" && ignoreGpuTests,
    sanitizeResources: false,
    fn: async () => {
      const prompts = ["Once upon a time", "The cat"];
      const args = ["--model", MODEL_PATH, "--tokenizer", TOKENIZER_PATH, "--steps", "40"];
      const batched = await cli(
        ...args,
        ...prompts.flatMap((p) => ["--prompt", p]),
        "--temperature",
        "0",
        "--backend",
        backend,
        "--json",
      );
      expect(batched.code).toBe(0);
      const result = JSON.parse(batched.stdout);
      expect(result.kvLayout).toBe("paged");
      expect(result.sequences).toHaveLength(2);
      expect(result.sequences[0].text.startsWith(LILY)).toBe(true);
      // Each sequence's tokens are the ones a run of its prompt alone picks.
      for (const [i, prompt] of prompts.entries()) {
        const alone = await cli(
          ...args,
          "--prompt",
          prompt,
          "--temperature",
          "0",
          "--backend",
          "cpu",
          "--json",
        );
        expect(result.sequences[i].tokens).toEqual(JSON.parse(alone.stdout).tokens);
      }
      expect(result.kvPeakUsedBytes).toBeGreaterThan(0);
      expect(result.kvPeakUsedBytes).toBeLessThanOrEqual(result.kvReservedBytes);
    },
  });
}
