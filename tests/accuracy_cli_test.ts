import { expect } from "expect";
import { ACCURACY_HELP, accuracyMain, type AccuracyRow } from "../cli/accuracy.ts";
import { llamaToGguf, readCheckpoint, readTokenizer } from "../model/mod.ts";
import { MODEL_PATH, TOKENIZER_PATH } from "./_models.ts";

async function accuracy(...args: string[]) {
  let stdout = "";
  let stderr = "";
  const code = await accuracyMain(args, { stdout: (t) => stdout += t, stderr: (t) => stderr += t });
  return { code, stdout, stderr };
}

const row = (rows: AccuracyRow[], weights: string, kv: string) =>
  rows.find((r) => r.weights === weights && r.kv === kv)!.report;

Deno.test("accuracy: stories260K over the shipped text by default, as the model test measured", async () => {
  const { code, stdout, stderr } = await accuracy("--weights", "f32,q4_0", "--kv", "f32", "--json");
  expect({ code, stderr: stderr.split("\n").filter((l) => !/^\w+\/\w+: \d+ positions/.test(l)) })
    .toEqual({ code: 0, stderr: [""] });
  const summary = JSON.parse(stdout);
  expect(summary.positions).toBe(367); // tests/accuracy_model_test.ts: 368 ids, BOS first
  expect(summary.chunks).toBe(1);
  expect(summary.matrices).toEqual(["f32"]);
  expect(summary.perplexity).toBeCloseTo(3.2272, 4);
  expect(summary.rows.map((r: AccuracyRow) => `${r.weights}/${r.kv}`)).toEqual([
    "f32/f32",
    "q4_0/f32",
  ]);
  expect(row(summary.rows, "f32", "f32").kl).toEqual({ mean: 0, low: 0, high: 0 });
  // Measured in tests/accuracy_model_test.ts: Q4_0 KL 8.9e-2, perplexity 3.5896 (products over
  // Q8 activations, as llama.cpp's; 3.5857 with float activations).
  const q4 = row(summary.rows, "q4_0", "f32");
  expect(summary.rows[1].heldAs).toEqual(["q4_0", "f16"]);
  expect(q4.kl.mean).toBeCloseTo(0.0888, 3);
  expect(q4.perplexity).toBeCloseTo(3.5896, 3);
  const table = await accuracy("--weights", "q4_0", "--kv", "f32,q8_0");
  const lines = table.stdout.trim().split("\n");
  expect(lines[0]).toMatch(/^model: .*stories260K\.bin \(llama2\.c legacy, matrices f32; 5 layers/);
  expect(lines[1]).toMatch(/eval_text\.txt, 367 positions in 1 chunk; backend cpu$/);
  expect(lines[2]).toBe("reference: the model's float32 weights and KV cache; perplexity 3.2272");
  expect(lines[4]).toMatch(/^\| weights +\| KV +\| mean KL \[95% CI\] +\| median KL/);
  // hiddenDim 172 is not whole 32-value blocks: w2 stays f16, and the label says so.
  expect(lines[6]).toMatch(
    /^\| q4_0 \(held as q4_0\+f16\) +\| f32 +\| 8\.90e-2 \[7\.8\de-2, 9\.9\de-2\] \|/,
  );
  expect(lines).toHaveLength(8);
});

Deno.test("accuracy on a Q8_0 GGUF file: against its own dequantization, its own format diverges by 0", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { config, weights } = await readCheckpoint(MODEL_PATH);
    const tokenizer = await readTokenizer(TOKENIZER_PATH, config.vocabSize);
    const path = `${dir}/stories260K.q8_0.gguf`;
    await Deno.writeFile(path, llamaToGguf(config, weights, { format: "q8_0", tokenizer }));
    const { code, stdout } = await accuracy(
      "--model",
      path,
      "--weights",
      "f32,q8_0,q4_0",
      "--kv",
      "f32",
      "--max-positions",
      "100",
      "--json",
    );
    expect(code).toBe(0);
    const summary = JSON.parse(stdout);
    // w2's 172-value rows fall back to f16, as llama.cpp's converter does.
    expect(summary.matrices.sort()).toEqual(["f16", "q8_0"]);
    expect(summary.positions).toBe(100);
    // Q8_0 of a Q8_0 dequantization is the same bytes (scale max/127 again, the same q): what
    // remains is the Q8 activations' rounding (reference/q8_activations.ts), far below Q4_0's.
    const q8 = row(summary.rows, "q8_0", "f32").kl;
    expect(q8.mean).toBeGreaterThan(0);
    expect(q8.high).toBeLessThan(1e-3);
    expect(row(summary.rows, "q4_0", "f32").kl.low).toBeGreaterThan(1e-3);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("accuracy --text splits a long text into chunks of --context, each from BOS", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const text = `${dir}/long.txt`;
    const story = await Deno.readTextFile(new URL("../models/eval_text.txt", import.meta.url));
    await Deno.writeTextFile(text, `${story.trim()} ${story.trim()}\n`);
    const { code, stdout } = await accuracy(
      "--text",
      text,
      "--context",
      "64",
      "--max-positions",
      "150",
      "--weights",
      "f16",
      "--kv",
      "f32",
      "--json",
    );
    expect(code).toBe(0);
    const summary = JSON.parse(stdout);
    // 150 tokens in chunks of BOS + 63: 63 + 63 + 24 positions.
    expect([summary.positions, summary.chunks]).toEqual([150, 3]);
    expect(row(summary.rows, "f16", "f32").kl.mean).toBeLessThan(1e-5);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("accuracy: bad flags and files give one clear line", async () => {
  const cases: [string[], number, string][] = [
    [
      ["--weights", "q3_k"],
      2,
      'accuracy: --weights: expected one of f32, f16, q8_0, q4_0, q6_k, q5_k, q4_k, got "q3_k"',
    ],
    [["--kv", "f32,q4_0"], 2, 'accuracy: --kv: expected one of f32, f16, q8_0, got "q4_0"'],
    [["--backend", "tpu"], 2, 'accuracy: --backend: expected cpu or webgpu, got "tpu"'],
    [["--context", "1"], 2, 'accuracy: --context: expected an integer >= 2, got "1"'],
    [
      ["--context", "513"],
      2,
      "accuracy: --context: expected at most the model's maxSeqLen 512, got 513",
    ],
    [["--max-positions", "0"], 2, 'accuracy: --max-positions: expected an integer >= 1, got "0"'],
    [["--text", "/no/such.txt"], 1, "accuracy: --text: cannot read /no/such.txt"],
    [["--model", MODEL_PATH], 2, `accuracy: ${MODEL_PATH} has no vocabulary: give --tokenizer`],
  ];
  for (const [args, code, message] of cases) {
    const result = await accuracy(...args);
    expect({ args, code: result.code, stderr: result.stderr.startsWith(message) })
      .toEqual({ args, code, stderr: true });
  }
  const empty = await Deno.makeTempFile();
  try {
    await Deno.writeTextFile(empty, " \n");
    expect((await accuracy("--text", empty)).stderr).toBe(
      `accuracy: --text: ${empty} holds no tokens\n`,
    );
  } finally {
    await Deno.remove(empty);
  }
  const help = await accuracy("--help");
  expect([help.code, help.stdout]).toEqual([0, ACCURACY_HELP + "\n"]);
});
