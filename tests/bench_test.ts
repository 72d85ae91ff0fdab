import { expect } from "expect";
import { BENCH_HELP, benchMain, parseContexts } from "../bench/main.ts";
import { runLlama2c, syntheticTokenizer } from "../bench/llama2c.ts";
import { type BenchResults, RESULTS_SCHEMA } from "../bench/report/report.ts";
import { attentionName, checkPositions, kvHeadVariants, runMatrix } from "../bench/matrix.ts";
import { makeConfig, parseCheckpoint, preset, Tokenizer } from "../model/mod.ts";
import { ignoreGpuTests } from "./_gpu.ts";

function memoryIo() {
  const files = new Map<string, string>();
  const printed: string[] = [];
  const io = {
    print: (text: string) => printed.push(text),
    progress: () => {},
    writeFile: (path: string, text: string) => {
      files.set(path, text);
      return Promise.resolve();
    },
    readFile: (path: string) => Promise.resolve(files.get(path) ?? ""),
  };
  return { io, files, printed };
}

Deno.test({
  name: "deno task bench --quick runs end to end: repeated cells, checks, JSON, Markdown and SVG",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const { io, files, printed } = memoryIo();
    const backend = ignoreGpuTests ? "cpu" : "both";
    // --quick, narrowed for the suite: one shape and context, small probes (the test checks
    // plumbing, not bandwidth; the probes' size is recorded beside the cache size).
    const args = ["--quick", "--backend", backend, "--out", "out", "--preset", "stories260K"];
    const code = await benchMain([
      ...args,
      ...["--contexts", "16", "--probe-mib", "32", "--sweep-mib", "8", "--no-llama-cpp"],
      "--no-precision", // the precision axis has its own test (bench_precision_test.ts)
      ...["--kernels", "softmax"], // and the time model's families
    ], io);
    expect(printed.join("\n")).not.toContain("bench:");
    expect(code).toBe(0);
    const results: BenchResults = JSON.parse(files.get("out/results.json")!);
    expect(results.schema).toBe(RESULTS_SCHEMA);
    expect(results.quick).toBe(true);
    expect(results.settings.reps).toBe(3);
    expect(results.settings.probeBytes).toBe(32 << 20);
    // every core's ceilings, the sweep to --sweep-mib, the self-check and the time model
    expect(results.cpuCeilings!.sweep.map((p) => p.bytes / 2 ** 20)).toEqual([1, 4, 8]);
    expect(results.cpuCeilings!.threads).toBe(navigator.hardwareConcurrency);
    const ceilingReport = files.get("out/report.md")!;
    expect(ceilingReport).toContain("## Ceilings (every core)");
    expect(ceilingReport).toMatch(/All \d+ figures checked|CEILING EXCEEDED/);
    expect(ceilingReport).toContain("## Calibrated time model");
    expect(results.timeModel!.cells.filter((c) => c.phase === "decode").length).toBe(
      results.cells.filter((c) => c.phase === "decode").length,
    );
    expect(results.peers ?? []).toEqual([]); // no peer without --llama2c, with --no-llama-cpp
    expect(results.rejected).toEqual([]);
    const backends = backend === "both" ? ["cpu", "webgpu"] as const : ["cpu"] as const;
    for (const b of backends) {
      const roofline = results.rooflines[b]!;
      // the probes' own samples (a kernel that outran the read probe is the read ceiling then)
      const read = roofline.probeReadGbPerS ?? roofline.readGbPerS;
      for (const s of [read, roofline.copyGbPerS, roofline.peakGflopPerS]) {
        expect(s.n).toBe(3);
        expect(s.min).toBeGreaterThan(0);
      }
      if (roofline.readSource) {
        const source = results.kernels.find((k) =>
          k.backend === b && roofline.readSource === `kernel ${k.kernel} ${k.variant} ${k.shape}`
        )!;
        expect(roofline.readGbPerS).toEqual(source.gbPerS);
        expect(source.bytes).toBeGreaterThan(results.cpuCeilings!.knee.kneeBytes);
        expect(roofline.readGbPerS.median).toBeGreaterThan(read.median);
      }
      for (const cache of ["kv-cache", "recompute"]) {
        for (const attention of ["MHA", "GQA-2", "MQA"]) {
          expect(
            results.cells.some((c) =>
              c.backend === b && c.cache === cache && c.attention === attention &&
              c.phase === "decode"
            ),
          ).toBe(true);
        }
      }
      expect(results.cells.some((c) => c.backend === b && c.phase === "prefill")).toBe(true);
      // --kernels softmax: softmax and the time model's families, no other
      const kernelNames = new Set(
        results.kernels.filter((k) => k.backend === b).map((k) => k.kernel),
      );
      for (const name of ["matvec", "softmax", "attention decode", "rmsNorm", "rope"]) {
        expect(kernelNames).toContain(name);
      }
      expect(kernelNames.has("argmax")).toBe(false);
    }
    for (const cell of results.cells) {
      const ms = cell.msPerToken;
      // the headline is wall-clock, every raw sample kept; GPU time is its own field
      expect(ms).toEqual(cell.timing.wallMs);
      expect(cell.timing.samples!.wallMs).toHaveLength(ms.n);
      expect(Math.min(...cell.timing.samples!.wallMs)).toBe(ms.min);
      if (cell.timing.gpuMs) expect(cell.gpuMsPerToken).toEqual(cell.timing.gpuMs);
      expect(ms.n).toBe(3); // --quick: no extra rounds where the samples spread wide
      expect(ms.min).toBeGreaterThan(0);
      expect(ms.min <= ms.median && ms.median <= ms.max).toBe(true);
      expect(cell.tokensPerSecond.median).toBeCloseTo(1000 / ms.median, 6);
      expect(cell.kvBytes).toBe(cell.kvBytesPerToken * cell.context);
      expect(cell.bytesPerToken).toBeCloseTo(cell.weightBytesPerToken + cell.kvTrafficPerToken, 6);
      // CPU prefill runs token by token and is costed so
      if (cell.phase === "prefill" && cell.backend === "cpu") {
        expect(cell.execution).toBe("sequential");
      }
    }
    // cached decode: one call of 32 tokens from the context; recompute: 2 positions at the
    // same mean position
    const decode = results.cells.filter((c) => c.phase === "decode");
    expect(results.settings.decodePositions).toBe(32);
    expect(new Set(decode.map((c) => c.meanPosition))).toEqual(new Set([31.5]));
    for (const c of decode) {
      expect(c.positions).toEqual(c.cache === "kv-cache" ? [16, 47] : [31, 32]);
    }
    // every timed path other than the CPU reference was checked; one-row decode with a cache
    // past the first attention chunks (64-192 positions; split across workgroups for GQA/MQA)
    const timedVariants = new Set(
      results.cells.filter((c) => !(c.backend === "cpu" && c.cache === "kv-cache")).map((c) =>
        `${c.shape} ${c.attention} ${c.backend} ${c.cache}`
      ),
    );
    for (const variant of timedVariants) {
      const check = results.checks.find((c) => c.variant === variant)!;
      expect(check.positions).toContain(variant.endsWith("kv-cache") ? 300 : 37);
      expect(check.maxNmse).toBeLessThanOrEqual(1e-6);
    }
    const kvPerToken = (attention: string) =>
      results.cells.find((c) => c.attention === attention)!.kvBytesPerToken;
    expect(kvPerToken("MHA") / kvPerToken("MQA")).toBe(8);
    const mqa = results.speedups.find((s) => s.comparison === "MQA vs MHA")!;
    expect(mqa.kvBytesRatio).toBeCloseTo(8, 6);
    expect(mqa.bytesRatio).toBeLessThan(mqa.kvBytesRatio); // the weights are shared
    for (const s of results.speedups) {
      expect(s.measured.lo <= s.measured.ratio && s.measured.ratio <= s.measured.hi).toBe(true);
      expect(s.measured.resamples).toBe(2000);
      expect(s.measured.differs).toBe(s.measured.lo > 1 || s.measured.hi < 1);
      expect(s.predicted).toBeGreaterThan(0);
    }
    // WebGPU's wall cost of a submit and a read-back, where it ran
    if (backend === "both") {
      expect(results.syncCosts!.submit.wallMs.min).toBeGreaterThan(0);
      expect(results.syncCosts!.readBack.samples!.wallMs).toHaveLength(3);
    }
    // the attention-only ablation: MHA, GQA-2, MQA at 256 and 4096 on each backend, bytes per
    // token from the K/V heads alone, the FLOPs the same
    const ablation = results.ablation!;
    expect(ablation.rejected).toEqual([]);
    expect(ablation.contexts).toEqual([256, 4096]);
    for (const b of backends) {
      const at = (attention: string, context: number) =>
        ablation.cells.find((c) =>
          c.backend === b && c.attention === attention && c.context === context
        )!;
      for (const context of [256, 4096]) {
        expect(at("MHA", context).kvBytesPerToken).toBe(2 * 4 * (context + 1) * 8 * 64);
        expect(at("MHA", context).kvBytesPerToken / at("MQA", context).kvBytesPerToken).toBe(8);
        expect(at("GQA-2", context).flopsPerToken).toBe(at("MHA", context).flopsPerToken);
        expect(at("MQA", context).timing.samples!.wallMs.length).toBeGreaterThanOrEqual(3);
      }
      const mqa = ablation.speedups.find((s) =>
        s.backend === b && s.attention === "MQA" && s.context === 4096
      )!;
      expect(mqa.flopsRatio).toBe(1);
      expect(mqa.measured.lo).toBeLessThanOrEqual(mqa.measured.hi);
    }
    // the batch axis: b = 1 and 4 for MHA and MQA on the paged layout, the three layouts at b = 4
    const batch = results.batch!;
    expect(batch.rejected).toEqual([]);
    for (const b of backends) {
      for (const size of [1, 4]) {
        for (const attention of ["MHA", "MQA"]) {
          const cell = batch.cells.find((c) =>
            c.backend === b && c.batch === size && c.attention === attention && c.layout === "paged"
          )!;
          expect(cell.msPerStep.n).toBeGreaterThanOrEqual(3);
          expect(cell.tokensPerSecond.max).toBeCloseTo(size * 1000 / cell.wallMsPerStep.min, 6);
          // weights once per step, each sequence's cache by itself
          expect(cell.cost.kvReadBytes).toBe(
            size * (cell.meanPosition + 1) * kvPerToken(attention),
          );
        }
      }
      const layouts = batch.cells.filter((c) =>
        c.backend === b && c.batch === 4 && c.attention === "MHA"
      );
      expect(layouts.map((c) => c.layout).sort()).toEqual(["contiguous", "paged", "sliding"]);
    }
    expect(batch.crossovers.length).toBeGreaterThan(0);
    const capacity = (attention: string) =>
      batch.capacity.find((c) =>
        c.layout === "paged" && c.context === 256 && c.attention === attention
      )!;
    expect(capacity("MHA").bytesPerSequence).toBe(8 * capacity("MQA").bytesPerSequence);
    expect(capacity("MQA").sequences).toBe(Math.floor(2 ** 30 / capacity("MQA").bytesPerSequence));
    const report = files.get("out/report.md")!;
    expect(report).toContain("## Batched decoding (`stories260K`)");
    expect(report).toContain("## Decode wall ms/token by mean position");
    expect(report).toContain("| shape | backend | cache | attention |");
    expect(report).toContain("## Roofline");
    expect(report).toContain("## GQA/MQA ablation");
    expect(report).toContain("### Attention alone (the controlled view)");
    expect(report).toContain("also shrinks `wk` and `wv`");
    // the results README: short, one chart, one table of at most 8 rows
    const readme = files.get("out/README.md")!;
    const lines = readme.trimEnd().split("\n");
    expect(lines.length).toBeLessThanOrEqual(45);
    expect(readme).toContain("![decode wall ms/token](bench/results/headline_decode.svg)");
    const rows = lines.filter((l) => l.startsWith("| ") && !l.startsWith("| variant"));
    expect(rows.length).toBeGreaterThan(0);
    expect(rows.length).toBeLessThanOrEqual(8);
    expect(files.get("out/headline_decode.svg")).toContain("stroke-dasharray"); // the model
    const charts = [...files.keys()].filter((f) => f.endsWith(".svg"));
    expect(charts).toContain("out/kv_bytes.svg");
    expect(charts).toContain("out/roofline.svg");
    expect(charts).toContain("out/batch_roofline_cpu.svg");
    expect(charts).toContain("out/batch_tokens_cpu_256.svg");
    expect(charts).toContain("out/decode_stories260K_cpu.svg");
    expect(files.get("out/decode_stories260K_cpu.svg")).toContain('class="error-bar"');
    for (const chart of charts) {
      const svg = files.get(chart)!;
      expect(svg.startsWith("<svg")).toBe(true);
      expect(svg.trim().endsWith("</svg>")).toBe(true);
      expect(svg).not.toContain("NaN");
    }
    expect(printed.join("\n")).toContain("decode wall ms/token by mean position:");
    // --from re-renders the same report from the JSON alone
    const report1 = files.get("out/report.md");
    files.delete("out/report.md");
    expect(await benchMain(["--from", "out/results.json", "--out", "out"], io)).toBe(0);
    expect(files.get("out/report.md")).toBe(report1);
    // ... and refuses a schema-1 file, saying why
    files.set("old.json", JSON.stringify({ schema: 1, cells: [] }));
    printed.length = 0;
    expect(await benchMain(["--from", "old.json"], io)).toBe(1);
    expect(printed.join("\n")).toContain("old.json: schema 1");
    files.set("two.json", JSON.stringify({ schema: 2, cells: [] }));
    printed.length = 0;
    expect(await benchMain(["--from", "two.json"], io)).toBe(1);
    expect(printed.join("\n")).toContain("two.json: schema 2");
  },
});

Deno.test("bench --help and bad flags", async () => {
  let { io, printed } = memoryIo();
  expect(await benchMain(["--help"], io)).toBe(0);
  expect(printed).toEqual([BENCH_HELP]);
  for (
    const [args, message] of [
      [["--backend", "tpu"], 'bench: --backend: expected cpu, webgpu or both, got "tpu"'],
      [["--preset", "GPT-5"], 'bench: --preset: unknown shape "GPT-5"'],
      [
        ["--kernels", "softmax,gemm"],
        'bench: --kernels: unknown kernel family "gemm"; known: matmul,',
      ],
      [
        ["--contexts", "16..x"],
        'bench: --contexts: expected "LO..HI" or a list of positive integers, got "16..x"',
      ],
      [["--frobnicate"], "bench: Unknown option '--frobnicate'"],
    ] as const
  ) {
    ({ io, printed } = memoryIo());
    expect(await benchMain([...args], io)).toBe(2);
    expect(printed.join("\n")).toContain(message);
  }
});

Deno.test("logits are checked inside and past the first attention chunks", () => {
  expect(checkPositions(4096, false)).toEqual([0, 37, 300, 560]);
  expect(checkPositions(4096, true)).toEqual([0, 37, 300]);
  expect(checkPositions(256, false)).toEqual([0, 37]);
});

Deno.test("contexts double over a range or follow a list", () => {
  expect(parseContexts("16..128")).toEqual([16, 32, 64, 128]);
  expect(parseContexts("16..100")).toEqual([16, 32, 64]);
  expect(parseContexts("64, 16,16")).toEqual([16, 64]);
});

Deno.test("attention variants: MHA, GQA with 2/4/8 query heads per KV head where they divide, MQA", () => {
  expect(kvHeadVariants(8)).toEqual([8, 4, 2, 1]);
  expect(kvHeadVariants(12)).toEqual([12, 6, 3, 1]);
  expect(kvHeadVariants(6)).toEqual([6, 3, 1]);
  expect(kvHeadVariants(8, true)).toEqual([8, 4, 1]);
  expect(kvHeadVariants(6, true)).toEqual([6, 3, 1]);
  expect(kvHeadVariants(5, true)).toEqual([5, 1]);
  expect([attentionName(8, 8), attentionName(8, 2), attentionName(8, 1)]).toEqual([
    "MHA",
    "GQA-4",
    "MQA",
  ]);
});

Deno.test("the llama2.c peer gets a legacy checkpoint and a tokenizer of the shape and is timed from outside", async () => {
  const config = { ...preset("stories260K"), nLayers: 1 };
  const written = new Map<string, Uint8Array>();
  const commands: string[][] = [];
  // A fake clock: loading takes 100 ms, then each token 2 ms.
  let clock = 0;
  const result = await runLlama2c("/opt/llama2.c/run", "tiny", config, 32, {
    tempDir: () => Promise.resolve("/tmp/peer"),
    writeFile: (path, bytes) => {
      written.set(path, bytes);
      return Promise.resolve();
    },
    now: () => clock,
    run: (program, args) => {
      commands.push([program, ...args]);
      clock += 100 + 2 * (Number(args.at(-1)) - 1);
      return Promise.resolve({
        code: 0,
        stdout: "Once upon\n",
        stderr: "achieved tok/s: 1234.5\n",
      });
    },
  });
  // 31 tokens past the first in 62 ms: 500 tok/s, whatever llama2.c's own timer says
  expect(result).toEqual({
    shape: "tiny",
    tokensPerSecond: 500,
    reportedTokensPerSecond: 1234.5,
    loadMs: 100,
    args: commands[1].slice(1),
  });
  const expected = (n: string) => [
    "/opt/llama2.c/run",
    "/tmp/peer/model.bin",
    "-z",
    "/tmp/peer/tokenizer.bin",
    "-t",
    "0",
    "-n",
    n,
  ];
  expect(commands).toEqual([expected("1"), expected("32")]);
  const checkpoint = parseCheckpoint(written.get("/tmp/peer/model.bin")!);
  expect(checkpoint.format).toBe("legacy");
  expect(checkpoint.config).toEqual(config);
  const tokenizer = Tokenizer.parse(written.get("/tmp/peer/tokenizer.bin")!, "tokenizer.bin", 512);
  expect(tokenizer.encode("hi").length).toBeGreaterThan(1); // byte fallback covers any text
  expect(new TextDecoder().decode(tokenizer.pieces[3 + 0x41])).toBe("<0x41>"); // llama2.c: byte + 3
  expect(Tokenizer.parse(syntheticTokenizer(32000), "t", 32000).vocabSize).toBe(32000);
  const failed = await runLlama2c("/bad/run", "tiny", config, 8, {
    tempDir: () => Promise.resolve("/tmp/peer"),
    writeFile: () => Promise.resolve(),
    run: () =>
      Promise.resolve({ code: 1, stdout: "", stderr: "Couldn't open file /tmp/peer/model.bin\n" }),
  });
  expect(failed.error).toBe("exit 1: Couldn't open file /tmp/peer/model.bin");
  const stopped = await runLlama2c("/bad/run", "tiny", config, 8, {
    tempDir: () => Promise.resolve("/tmp/peer"),
    writeFile: () => Promise.resolve(),
    run: () => Promise.resolve({ code: 0, stdout: "\n", stderr: "" }),
  });
  expect(stopped.error).toBe('no "achieved tok/s" line: it stopped after its first token');
  // BOS's embedding row is zero, so greedy decoding never stops at once
  expect(
    checkpoint.weights.tokenEmbedding.subarray(config.dim, 2 * config.dim).every((v) => v === 0),
  ).toBe(true);
});

Deno.test("the matrix skips cells over the cell budget and after the run's deadline, and says so", async () => {
  const config = makeConfig({
    dim: 16,
    hiddenDim: 32,
    nLayers: 1,
    nHeads: 2,
    nKvHeads: 2,
    vocabSize: 32,
    maxSeqLen: 64,
  });
  const options = {
    shapes: [{ name: "tiny", config }],
    backends: ["cpu" as const],
    contexts: [8, 16, 32],
    decodePositions: 2,
    reps: 3,
    minBatchMs: { cpu: 1, webgpu: 1 },
    rooflines: {},
    llcBytes: 0,
    quick: true,
  };
  // a budget nothing fits: each series measures its first context, then stops
  const tight = await runMatrix({ ...options, cellBudgetS: 1e-9 });
  expect(new Set(tight.cells.map((c) => c.context))).toEqual(new Set([8]));
  expect(tight.skipped.map((s) => `${s.variant} ${s.phase} ${s.fromContext} ${s.reason}`).sort())
    .toEqual([
      "tiny MHA cpu kv-cache decode 16 cell budget",
      "tiny MHA cpu kv-cache prefill 16 cell budget",
      "tiny MHA cpu recompute decode 16 cell budget",
      "tiny MQA cpu kv-cache decode 16 cell budget",
      "tiny MQA cpu kv-cache prefill 16 cell budget",
      "tiny MQA cpu recompute decode 16 cell budget",
    ]);
  // the recompute path was checked against the cached reference before timing
  expect(tight.checks.map((c) => c.variant).sort()).toEqual([
    "tiny MHA cpu recompute",
    "tiny MQA cpu recompute",
  ]);
  expect(tight.checks[0].positions).toEqual([0, 37]);
  // context-major: both shapes' context 8 before either's 16, so that a shape listed later still
  // gets cells when the deadline stops the larger contexts
  const two = await runMatrix({
    ...options,
    shapes: [{ name: "first", config }, { name: "second", config }],
    contexts: [8, 16],
    cellBudgetS: 100,
  });
  const order = two.cells.map((c) => `${c.context} ${c.shape}`);
  expect(order.filter((o, i) => o !== order[i - 1])).toEqual([
    "8 first",
    "8 second",
    "16 first",
    "16 second",
  ]);
  // the later shape: its own attention (MHA here) with the KV cache, on each backend
  expect([
    ...new Set(
      two.cells.filter((c) => c.shape === "second").map((c) => `${c.attention} ${c.cache}`),
    ),
  ]).toEqual(["MHA kv-cache"]);
  expect(new Set(two.cells.filter((c) => c.shape === "first").map((c) => c.attention)))
    .toEqual(new Set(["MHA", "MQA"]));
  // past the deadline no cell starts
  const late = await runMatrix({ ...options, cellBudgetS: 100, deadline: performance.now() - 1 });
  expect(late.cells).toEqual([]);
  expect(late.skipped.every((s) => s.reason === "run time budget" && s.fromContext === 8)).toBe(
    true,
  );
});
