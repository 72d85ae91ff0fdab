import { expect } from "expect";
import { fuzzMain } from "../fuzz/main.ts";
import { runFuzz } from "../fuzz/run.ts";
import type { FuzzTarget } from "../fuzz/target.ts";
import { FUZZ_TARGETS } from "../fuzz/targets.ts";
import { mutate, MUTATION_KINDS } from "../fuzz/mutate.ts";
import { Rng } from "../reference/random.ts";
import { parseGguf, parseGgufModel } from "../model/mod.ts";

Deno.test("600 mutated checkpoints (legacy, v1) and tokenizers: each runs or is refused naming its file", async () => {
  const report = await runFuzz(FUZZ_TARGETS, { cases: 600, seed: 20261128 });
  expect(report.failures.map((f) => `${f.target} ${f.index}: ${f.detail}`)).toEqual([]);
  for (const target of ["llama2c-legacy", "llama2c-v1", "llama2c-tokenizer", "gguf-v2-rope"]) {
    const counts = report.counts[target];
    // both outcomes occur: the mutations reach past the header, and the loaders reject
    expect(counts.ran).toBeGreaterThan(5);
    expect(counts.rejected).toBeGreaterThan(50);
  }
});

Deno.test("120 mutated K-quant GGUF files (Q4_K, Q5_K, Q6_K blocks, ggml types): each runs or is refused naming its file", async () => {
  const kquant = FUZZ_TARGETS.filter((t) => t.name === "gguf-kquant");
  const mutations = new Set<string>();
  const report = await runFuzz(kquant, {
    cases: 120,
    seed: 20261204,
    onCase: (c) => c.mutations.forEach((m) => mutations.add(m)),
  });
  expect(report.failures.map((f) => `${f.target} ${f.index}: ${f.detail}`)).toEqual([]);
  expect(report.counts["gguf-kquant"].ran).toBeGreaterThan(10);
  expect(report.counts["gguf-kquant"].rejected).toBeGreaterThan(30);
  // The map reaches the tensors' ggml types and the K-quant blocks.
  const steps = [...mutations].join("\n");
  expect(steps).toMatch(/^tensor \S+ type = /m);
  expect(steps).toMatch(/^swap .*blk\.0\.ffn_down\.weight/m);
});

Deno.test("the gguf-v2-rope target writes version 2 files with linear RoPE scaling, and maps its keys", () => {
  const target = FUZZ_TARGETS.find((t) => t.name === "gguf-v2-rope")!;
  const sample = target.sample(new Rng(1));
  const file = parseGguf(sample.bytes);
  expect(file.version).toBe(2);
  expect(parseGgufModel(sample.bytes).config.ropeScaling?.type).toBe("linear");
  const factor = sample.fields.find((f) => f.name === "llama.rope.scaling.factor")!;
  const view = new DataView(sample.bytes.buffer, sample.bytes.byteOffset);
  expect(view.getFloat32(factor.offset, true)).toBe(
    file.metadata.get("llama.rope.scaling.factor")!.value,
  );
  const typeLength = sample.fields.find((f) => f.name === "llama.rope.scaling.type length")!;
  expect(view.getUint32(typeLength.offset, true)).toBe("linear".length);
});

Deno.test("the fuzzer reports a crash, a slow case, a rejected valid file and an unnamed error", async () => {
  const sample = () => ({ bytes: new Uint8Array(64), fields: [], sections: [] });
  const targets: FuzzTarget[] = [
    {
      name: "crash",
      sample,
      exercise: (bytes) => String((undefined as unknown as number[])[bytes.length]),
    },
    {
      name: "slow",
      sample,
      exercise: () => {
        const end = performance.now() + 30;
        while (performance.now() < end) { /* busy */ }
        return "ran";
      },
    },
    {
      name: "picky",
      sample,
      exercise: (_bytes, source) => {
        throw new RangeError(`${source}: refused`);
      },
    },
    {
      name: "anonymous",
      sample,
      exercise: () => {
        throw new RangeError("something is wrong somewhere");
      },
    },
  ];
  const report = await runFuzz(targets, { cases: 40, seed: 3, maxCaseMs: 20 });
  expect(report.counts.crash).toEqual({ failure: 10 });
  expect(report.counts.slow).toEqual({ failure: 10 });
  expect(report.counts.anonymous).toEqual({ failure: 10 });
  // a mutated file may be refused; the unmutated one (one case in ten) must load
  const picky = report.failures.filter((f) => f.target === "picky");
  expect(picky.every((f) => f.mutations.length === 0)).toBe(true);
  expect(report.counts.picky.rejected + (report.counts.picky.failure ?? 0)).toBe(10);
  expect(report.failures.find((f) => f.target === "crash")?.detail).toMatch(/^TypeError: /);
  expect(report.failures.find((f) => f.target === "slow")?.detail).toMatch(/^took \d+ ms/);
});

Deno.test("mutations are seeded and cover every kind", () => {
  const sample = {
    bytes: Uint8Array.from({ length: 512 }, (_, i) => i),
    fields: [{ name: "n", offset: 0, width: 4 as const }],
    sections: [{ name: "a", offset: 8, length: 100 }, { name: "b", offset: 200, length: 40 }],
  };
  const seen = new Set<string>();
  for (let seed = 0; seed < 200; seed++) {
    const a = mutate(sample, new Rng(seed));
    expect(a).toEqual(mutate(sample, new Rng(seed)));
    for (const step of a.steps) seen.add(step.split(" ")[0]);
  }
  // flip, truncate, extend, "n =", swap, float
  expect([...seen].sort()).toEqual(["extend", "flip", "float", "n", "swap", "truncate"]);
  expect(MUTATION_KINDS).toHaveLength(6);
  // a format without a map still gets header words set to extremes
  const unmapped = { ...sample, fields: [] };
  const words = new Set<string>();
  for (let seed = 0; seed < 200; seed++) {
    for (const step of mutate(unmapped, new Rng(seed)).steps) {
      const match = /^bytes\[(\d+)\] = /.exec(step);
      if (match) words.add(match[1]);
    }
  }
  expect(words.size).toBeGreaterThan(10);
  expect([...words].every((w) => Number(w) % 4 === 0 && Number(w) < 512)).toBe(true);
});

Deno.test("deno task fuzz prints counts, and bad flags exit 2", async () => {
  const lines: string[] = [];
  expect(await fuzzMain(["--cases", "9", "--seed", "5"], (l) => lines.push(l))).toBe(0);
  expect(lines[0]).toBe(
    "fuzzing llama2c-legacy, llama2c-v1, llama2c-tokenizer, gguf-f32, gguf-q8_0, gguf-kquant, gguf-v2-rope: 9 cases, seed 5",
  );
  expect(lines.at(-1)).toMatch(/^9 cases, 0 failures; slowest case \d+ ms$/);
  expect(lines.filter((l) => /^(llama2c|gguf)-[\w-]+: /.test(l))).toHaveLength(7);
  const errors: string[] = [];
  expect(await fuzzMain(["--cases", "-1"], (l) => errors.push(l))).toBe(2);
  expect(await fuzzMain(["--target", "gguf9"], (l) => errors.push(l))).toBe(2);
  expect(errors).toEqual([
    'fuzz: --cases: expected an integer >= 0, got "-1" (see --help)',
    'fuzz: --target: expected one of llama2c-legacy, llama2c-v1, llama2c-tokenizer, gguf-f32, gguf-q8_0, gguf-kquant, gguf-v2-rope, got "gguf9" (see --help)',
  ]);
});
