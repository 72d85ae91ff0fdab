// The bench's ceilings (all-core WebAssembly probes, the cache knee, the self-check), the
// calibrated time model and the llama.cpp peer's plumbing. Small and fast: the probes run on a
// few MiB, and llama.cpp itself runs only where it is installed (about two seconds).
import { expect } from "expect";
import { ceilingKernels, FMA_CHAINS, RELAXED_SIMD } from "../bench/_wasm_kernels.ts";
import { findCacheKnee, readCeilingAt, type SweepPoint } from "../bench/cache_knee.ts";
import { type CpuCeilings, measureCpuCeilings, sweepSizes } from "../bench/ceilings.ts";
import { ceilingChecks, ceilingVerdict } from "../bench/report/ceilings.ts";
import { raiseReadCeiling } from "../bench/measure.ts";
import { type PrecisionCell, precisionStreams, stepTerms } from "../bench/precision_cells.ts";
import { validateTimeModel } from "../bench/report/time_model.ts";
import { predictCell, type TimeModelParams } from "../bench/time_model.ts";
import type { DecoderCell } from "../bench/matrix.ts";
import {
  type LlamaCppIo,
  locateLlamaCpp,
  NODE_SCRIPT_NAME,
  parseLlamaCppOutput,
  runLlamaCpp,
  writePeerGguf,
} from "../bench/llama_cpp.ts";
import { makeConfig, preset } from "../model/config.ts";
import { peerOurs } from "../bench/main.ts";
import { parseGgufModel } from "../model/formats/gguf_llama.ts";
import { summarize } from "../gpu/timing.ts";

const spread = (x: number) => summarize([x]);
const point = (mib: number, gbs: number): SweepPoint => ({
  bytes: mib * 2 ** 20,
  readGbPerS: spread(gbs),
});

/** Every core's ceilings with the cache knee at 32 MiB: 26 GB/s up to it, 16 beyond. */
function cpuCeilingsKneeAt32MiB(): CpuCeilings {
  const sweep = [point(1, 140), point(32, 26), point(2048, 16)];
  return {
    threads: 2,
    readGbPerS: spread(16),
    copyGbPerS: spread(14),
    fmaGflopPerS: spread(60),
    fmaFused: true,
    sweep,
    knee: findCacheKnee(sweep),
    elapsedS: 1,
  };
}

/** A WebGPU roofline whose read probe streams 3 GB/s. */
const PROBE_3_GBPS = {
  readGbPerS: spread(3),
  copyGbPerS: spread(3),
  peakGflopPerS: spread(100),
  dispatchUs: spread(20),
  probeBytes: 2 ** 27,
  gpuTimestamps: true,
};

Deno.test("the WebAssembly ceiling kernels sum, copy and multiply-add exactly as written", () => {
  const pages = 4;
  const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
  const k = ceilingKernels(memory, pages, false);
  const f = new Float32Array(memory.buffer);
  for (let i = 0; i < 4096; i++) f[i] = i % 7;
  // 0..6 repeated: 585 full cycles of 21 and a tail 0..0 (4096 = 585 * 7 + 1)
  expect(k.sum(0, 4096 * 4)).toBe(585 * 21);
  expect(k.sum(64, 128)).toBe([16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31]
    .reduce((s, i) => s + (i % 7), 0));
  k.copy(0, 8192 * 4, 1024 * 4);
  expect(Array.from(f.subarray(8192, 8192 + 1024))).toEqual(Array.from(f.subarray(0, 1024)));
  expect(f[8192 + 1024]).toBe(0); // stops at the end
  // The recurrence in float32, chain by chain: a = a * m + c, rounded after each operation.
  const m = Math.fround(0.999999), c = Math.fround(1e-7);
  let total = 0;
  const lanes: number[] = [];
  for (let chain = 0; chain < FMA_CHAINS; chain++) {
    let a = Math.fround(1 + chain / 10);
    for (let i = 0; i < 1000; i++) a = Math.fround(Math.fround(a * m) + c);
    lanes.push(a);
  }
  // the module adds chains 1..7 into chain 0 in f32, then the four (equal) lanes
  let sum = lanes[0];
  for (let chain = 1; chain < FMA_CHAINS; chain++) sum = Math.fround(sum + lanes[chain]);
  total = Math.fround(Math.fround(Math.fround(sum + sum) + sum) + sum);
  expect(k.fma(1000)).toBe(total);
  // fused (relaxed SIMD, where the runtime has it): one rounding per step (the product of two
  // floats is exact in a double), or the unfused result where the CPU has no FMA
  if (RELAXED_SIMD) {
    const fusedLanes = Array.from({ length: FMA_CHAINS }, (_, chain) => {
      let a = Math.fround(1 + chain / 10);
      for (let i = 0; i < 1000; i++) a = Math.fround(a * m + c);
      return a;
    });
    let fusedSum = fusedLanes[0];
    for (let chain = 1; chain < FMA_CHAINS; chain++) {
      fusedSum = Math.fround(fusedSum + fusedLanes[chain]);
    }
    const fusedTotal = Math.fround(
      Math.fround(Math.fround(fusedSum + fusedSum) + fusedSum) + fusedSum,
    );
    expect([fusedTotal, total]).toContain(ceilingKernels(memory, pages, true).fma(1000));
  }
});

Deno.test("every core's ceilings: workers on one shared memory report a sweep, copy and FMA peak", async () => {
  const c = await measureCpuCeilings({ threads: 2, maxBytes: 4 * 2 ** 20, reps: 1, minMs: 2 });
  expect(c.threads).toBe(2);
  expect(c.sweep.map((p) => p.bytes / 2 ** 20)).toEqual([1, 2, 4]);
  for (
    const s of [
      c.readGbPerS,
      c.copyGbPerS,
      c.fmaGflopPerS,
      ...c.sweep.map((p) => p.readGbPerS),
    ]
  ) {
    expect(s.median).toBeGreaterThan(0.1);
    expect(Number.isFinite(s.median)).toBe(true);
  }
  expect(c.readGbPerS).toEqual(c.sweep[2].readGbPerS);
  expect(sweepSizes(2 ** 30, true).map((b) => b / 2 ** 20)).toEqual([1, 4, 16, 64, 256, 1024]);
  expect(sweepSizes(3 * 2 ** 20, false).map((b) => b / 2 ** 20)).toEqual([1, 2, 3]);
});

Deno.test("the cache knee is the last working set read 1.5x faster than memory; /sys plays no part", () => {
  // a flat sweep: nothing is cache-resident, nothing is marked
  const flat = findCacheKnee([point(1, 10), point(64, 10.5), point(1024, 10)]);
  expect(flat.kneeBytes).toBe(0);
  // a virtual machine's host cache (e.g. /sys says 260 MiB) does not matter: 32 MiB is measured
  const vm = findCacheKnee([
    point(1, 140),
    point(8, 60),
    point(32, 26),
    point(64, 19),
    point(256, 15),
    point(2048, 16),
  ]);
  expect(vm.kneeBytes).toBe(32 * 2 ** 20);
  expect(vm.conclusive).toBe(true);
  // a sweep that stops at 2x the knee cannot tell memory from cache
  expect(findCacheKnee([point(1, 50), point(16, 40), point(32, 12)]).conclusive).toBe(false);
  expect(() => findCacheKnee([])).toThrow("cache sweep: expected points, got none");
  // the ceiling for a working set is the bandwidth at the largest point not above it
  const sweep = [point(1, 140), point(32, 26), point(2048, 16)];
  expect(readCeilingAt(sweep, 0.5 * 2 ** 20)).toBe(140);
  expect(readCeilingAt(sweep, 40 * 2 ** 20)).toBe(26);
  expect(readCeilingAt(sweep, 4 * 2 ** 30)).toBe(16);
});

/** A decode cell of `config`-like figures with only what the checks and the model read. */
function cell(overrides: Partial<DecoderCell>): DecoderCell {
  return {
    shape: "s",
    backend: "cpu",
    cache: "kv-cache",
    attention: "MHA",
    nHeads: 2,
    nKvHeads: 2,
    phase: "decode",
    context: 16,
    positions: [16, 17],
    meanPosition: 16.5,
    execution: "sequential",
    timing: { wallMs: spread(1), batch: 1 },
    msPerToken: spread(1),
    tokensPerSecond: spread(1000),
    kvBytesPerToken: 0,
    kvBytes: 0,
    weightBytesPerToken: 0,
    kvTrafficPerToken: 0,
    bytesPerToken: 1e6,
    flopsPerToken: 1e6,
    dispatchesPerToken: 10,
    gbPerS: spread(1),
    gflopPerS: spread(1),
    rooflineFraction: 0,
    predictedMs: 1,
    measuredOverPredicted: 1,
    workingSetBytes: 40 * 2 ** 20,
    fitsInLlc: false,
    ...overrides,
  };
}

Deno.test("the bench checks cells, kernels and peers against their ceilings and says which break one", () => {
  const cpuCeilings = cpuCeilingsKneeAt32MiB();
  const ok = ceilingChecks({
    cells: [cell({ gbPerS: spread(20) })], // 40 MiB: 26 GB/s allowed
    kernels: [],
    rooflines: {},
    cpuCeilings,
    peers: [{
      label: "llama.cpp",
      shape: "s",
      tokensPerSecond: spread(500),
      ceilingTokensPerSecond: 600,
    }],
  });
  expect(ok.map((c) => c.unit)).toEqual(["GB/s", "GFLOP/s", "tok/s"]);
  expect(ceilingVerdict(ok)).toBe(
    "All 3 figures checked (cells, kernels, decode steps, peers) are at or below their ceilings.",
  );
  const broken = ceilingChecks({
    cells: [cell({ gbPerS: spread(30) })],
    kernels: [],
    rooflines: {},
    cpuCeilings,
    peers: [{
      label: "llama2.c",
      shape: "s",
      tokensPerSecond: spread(700),
      ceilingTokensPerSecond: 600,
    }],
  });
  const verdict = ceilingVerdict(broken);
  expect(verdict).toContain("CEILING EXCEEDED by 2 of 3 figures");
  expect(verdict).toContain("s MHA cpu kv-cache decode ctx 16 30.0 GB/s > 26.0");
  expect(verdict).toContain("llama2.c on s 700 tok/s > 600");
});

Deno.test("a kernel beyond the cache that outruns the read probe becomes the read ceiling, named", () => {
  const probe = PROBE_3_GBPS;
  // bytes / (GB/s) gives each kernel's ms: 60 MB at 6 GB/s is 10 ms
  const kernel = (name: string, gbPerS: number, fitsInLlc: boolean, bytes = 6e7) => ({
    backend: "webgpu" as const,
    kernel: name,
    variant: "row",
    shape: "big",
    bytes,
    flops: bytes / 2,
    dispatches: 1,
    timing: {
      wallMs: spread(bytes / gbPerS / 1e6 + 5),
      gpuMs: spread(bytes / gbPerS / 1e6),
      batch: 1,
    },
    gbPerS: spread(gbPerS),
    gflopPerS: spread(gbPerS / 2),
    rooflineFraction: gbPerS / 3,
    predictedMs: NaN,
    measuredOverPredicted: NaN,
    fitsInLlc,
  });
  const knee = 32 << 20;
  const { rooflines, kernels } = raiseReadCeiling({ webgpu: probe, cpu: probe }, [
    kernel("matvec", 4, false),
    kernel("projection", 6, false),
    kernel("copy", 9, true, 1e6), // in the cache: not a memory figure, no raise
  ], knee);
  expect(rooflines.webgpu!.readGbPerS.median).toBe(6);
  expect(rooflines.webgpu!.probeReadGbPerS!.median).toBe(3);
  expect(rooflines.webgpu!.readSource).toBe("kernel projection row big");
  expect(rooflines.cpu).toEqual(probe); // no CPU kernel: unchanged
  expect(kernels.map((k) => k.rooflineFraction)).toEqual([4 / 6, 1, 9 / 6]);
  // the time model at the raised ceiling: 60 MB at 6 GB/s is 10 ms, plus one 20 µs dispatch;
  // the matvec's 15 ms measured is 1.5x of about 10 ms
  expect(kernels[1].predictedMs).toBeCloseTo(10.02, 2);
  expect(kernels[0].measuredOverPredicted).toBeCloseTo(15 / 10.02, 2);
  // the self-check holds WebGPU kernels beyond the cache to it
  const cpuCeilings = cpuCeilingsKneeAt32MiB();
  expect(cpuCeilings.knee.kneeBytes).toBe(knee);
  const checks = ceilingChecks({ cells: [], kernels, rooflines, cpuCeilings });
  expect(checks.map((c) => c.subject)).toEqual([
    "kernel webgpu matvec row big",
    "kernel webgpu projection row big",
  ]);
  expect(ceilingVerdict(checks)).toContain("All 2 figures checked");
  // a probe no kernel beats stays the ceiling
  const kept = raiseReadCeiling({ webgpu: probe }, [kernel("matvec", 2.5, false)], knee);
  expect(kept.rooflines.webgpu).toEqual(probe);
  // an unknown knee (0) tells no kernel's bytes from the cache's: nothing is raised
  const unknown = raiseReadCeiling({ webgpu: probe }, [kernel("projection", 6, false)], 0);
  expect(unknown.rooflines.webgpu).toEqual(probe);
});

Deno.test("a decode step that outruns every kernel raises the read ceiling again; its terms and the self-check follow", () => {
  const probe = PROBE_3_GBPS;
  const knee = 32 << 20;
  // the kernel table's fastest stream beyond the cache: 60 MB in 10 ms, 6 GB/s
  const matvec = {
    backend: "webgpu" as const,
    kernel: "matvec",
    variant: "row",
    shape: "big",
    bytes: 6e7,
    flops: 3e7,
    dispatches: 1,
    timing: { wallMs: spread(15), gpuMs: spread(10), batch: 1 },
    gbPerS: spread(6),
    gflopPerS: spread(3),
    rooflineFraction: 2,
    predictedMs: NaN,
    measuredOverPredicted: NaN,
    fitsInLlc: false,
  };
  const first = raiseReadCeiling({ webgpu: probe }, [matvec], knee);
  expect(first.rooflines.webgpu!.readSource).toBe("kernel matvec row big");
  // decode steps: 300 MB per token in 40, 42 and 50 ms (7.14 GB/s by the median), a small one
  // inside the cache (1 MB in 0.05 ms: 20 GB/s, not a memory figure), and one that did not run
  const step = (shape: string, bytesPerToken: number, samples?: number[]) => ({
    shape,
    backend: "webgpu" as const,
    weights: "f32" as const,
    kv: "f32" as const,
    context: 64,
    bytesPerToken,
    dispatchesPerToken: 100,
    ...(samples
      ? { samples, msPerToken: summarize(samples).median, spread: [40, 50] as [number, number] }
      : {}),
  } as PrecisionCell);
  const steps = [step("tiny", 3e8, [40, 42, 50]), step("small", 1e6, [0.05]), step("none", 3e8)];
  const streams = precisionStreams(steps);
  expect(streams.map((s) => s.source)).toEqual([
    "decode step tiny f32/f32 at context 64",
    "decode step small f32/f32 at context 64",
  ]);
  expect(streams[0].gbPerS.median).toBeCloseTo(3e8 / 42e6, 9);
  expect(streams[0].gbPerS.max).toBeCloseTo(3e8 / 40e6, 9);
  const again = raiseReadCeiling(first.rooflines, first.kernels, knee, streams);
  const ceiling = again.rooflines.webgpu!;
  expect(ceiling.readGbPerS.median).toBeCloseTo(3e8 / 42e6, 9);
  expect(ceiling.probeReadGbPerS!.median).toBe(3); // the probe's own figure, not the kernel's
  expect(ceiling.readSource).toBe("decode step tiny f32/f32 at context 64");
  expect(again.kernels[0].rooflineFraction).toBeCloseTo(6 / (3e8 / 42e6), 9);
  // the step's terms against the raised ceiling: its bytes take its whole 42 ms, so the rest is
  // minus its 100 dispatches at 20 µs (2 ms), where the kernel's 6 GB/s left it at -10 ms
  const terms = stepTerms(steps[0], ceiling.readGbPerS.median, ceiling.dispatchUs.median);
  expect(terms.readCeilingFraction).toBeCloseTo(1, 9);
  expect(terms.terms!.bytes).toBeCloseTo(42, 9);
  expect(terms.terms!.dispatches).toBeCloseTo(2, 9);
  expect(terms.terms!.rest).toBeCloseTo(-2, 9);
  expect(stepTerms(steps[0], 6, 20).terms!.rest).toBeCloseTo(42 - 50 - 2, 9);
  expect(stepTerms(steps[2], 6, 20)).toEqual({});
  // the self-check holds the steps beyond the knee to the adapter's read ceiling (its fastest
  // sample): under the raised one, and over the kernel's 6 GB/s
  const cpuCeilings = cpuCeilingsKneeAt32MiB();
  const cpuStep = { ...step("cpu", 4e8, [10]), backend: "cpu" as const }; // 40 GB/s > 16
  const precision = [...steps, cpuStep];
  const held = ceilingChecks({
    cells: [],
    kernels: [],
    rooflines: again.rooflines,
    cpuCeilings,
    precision,
  });
  expect(held.map((c) => `${c.subject} ${c.measured > c.ceiling ? "over" : "ok"}`)).toEqual([
    "decode step tiny webgpu f32/f32 ok",
    "decode step cpu cpu f32/f32 over",
  ]);
  const old = ceilingChecks({
    cells: [],
    kernels: [],
    rooflines: first.rooflines,
    cpuCeilings,
    precision,
  });
  expect(ceilingVerdict(old)).toContain("CEILING EXCEEDED by 2 of 2 figures");
  expect(ceilingVerdict(old)).toContain("decode step tiny webgpu f32/f32 7.14 GB/s > 6.00");
});

Deno.test("the calibrated time model prices each term from its measured rate", () => {
  const config = makeConfig({
    dim: 64,
    hiddenDim: 128,
    nLayers: 2,
    nHeads: 4,
    nKvHeads: 4,
    vocabSize: 32,
    maxSeqLen: 64,
  });
  const params: TimeModelParams = {
    matvecGflopPerS: 1,
    matrixGflopPerSByShape: { s: 2 },
    matmulGflopPerS: 4,
    attentionGflopPerS: 0.5,
    dispatchUs: 10,
    syncUs: 1000,
    recordedDispatchesPerToken: { s: 30 },
    smallKernels: { rmsNorm: { us: 11, elements: 32 } },
  };
  // positions 16 and 17: 17.5 keys on average, 2 layers x 4 heads x 16 features x 4 FLOPs each
  const attention = 2 * 4 * 16 * 4 * 17.5;
  const p = predictCell(cell({ flopsPerToken: 1e6 + attention }), config, params);
  expect(p.terms.attention).toBeCloseTo(attention / 0.5e6, 12);
  expect(p.terms.matrix).toBeCloseTo(1e6 / 2e6, 12); // the shape's own matrix rate
  // 2 layers x 2 norms of 64 elements: 10 µs a call plus 1 µs per 32 elements beyond it
  expect(p.terms.small).toBeCloseTo(2 * 2 * (10 + 1 * 64 / 32) / 1000, 12);
  expect(p.terms.dispatch).toBeCloseTo(10 * 10 / 1000, 12); // the cell's count on the CPU
  expect(p.terms.sync).toBe(0);
  const gpu = predictCell(
    cell({ backend: "webgpu", flopsPerToken: 1e6 + attention }),
    config,
    { ...params, smallKernels: {} },
  );
  expect(gpu.terms.dispatch).toBeCloseTo(30 * 10 / 1000, 12); // the recorded plan's 30
  expect(gpu.terms.small).toBe(0);
  // recompute runs passes of many rows: the matmul rate prices its matrix work
  const recompute = predictCell(
    cell({ cache: "recompute", flopsPerToken: 1e6 + attention }),
    config,
    params,
  );
  expect(recompute.terms.matrix).toBeLessThan(1e6 / 4e6);
  expect(recompute.terms.matrix).toBeGreaterThan(0.9 * 1e6 / 4e6);
  expect(gpu.terms.sync).toBeCloseTo(1.5, 12); // three round trips per 2-token generate call
  const v = (measuredMs: number, cache = "kv-cache") => ({
    cell: `s MHA cpu ${cache} decode ctx 16`,
    backend: "cpu" as const,
    phase: "decode" as const,
    measuredMs,
    predictedMs: 1,
    terms: { matrix: 1, attention: 0, small: 0, dispatch: 0, sync: 0 },
  });
  const [met] = validateTimeModel([v(1), v(0.7), v(1.45), v(1.2), v(5)]);
  expect(met.within).toBe(0.8);
  expect(met.meets).toBe(true);
  const [missed] = validateTimeModel([v(1), v(3, "recompute"), v(0.2)], [2.5, 3]);
  expect(missed.meets).toBe(false);
  [0.2, 0.6, 1, 2, 3].forEach((q, i) => expect(missed.quantiles[i]).toBeCloseTo(q, 12));
  expect(missed.missing.join(" | ")).toContain("a matmul rate per pass size");
  expect(missed.missing.join(" | ")).toContain("cache residency");
  expect(missed.missing.join(" | ")).toContain("the load average was 3.0 per core");
});

function fakeIo(files: Record<string, boolean>, output: string, code = 0) {
  const calls: { program: string; args: string[]; env: Record<string, string> }[] = [];
  const written = new Map<string, Uint8Array>();
  const io: LlamaCppIo = {
    stat: (path) => Promise.resolve(path in files ? { isDirectory: files[path] } : undefined),
    writeFile: (path, bytes) => {
      written.set(path, bytes);
      return Promise.resolve();
    },
    run: (program, args, env) => {
      calls.push({ program, args, env });
      return Promise.resolve({ code, stdout: output, stderr: code ? "boom\n" : "" });
    },
    tempDir: () => Promise.resolve("/tmp/x"),
    remove: () => Promise.resolve(),
  };
  return { io, calls, written };
}

Deno.test("the llama.cpp peer: found or explained, run through llama-bench or node-llama-cpp", async () => {
  const none = fakeIo({}, "");
  expect(await locateLlamaCpp(undefined, none.io)).toMatch(
    /^llama\.cpp not found: run "npm install --prefix .* --ignore-scripts node-llama-cpp/,
  );
  expect(await locateLlamaCpp("/opt/nothing", none.io)).toMatch(
    /^--llama-cpp: "\/opt\/nothing" does not exist; llama\.cpp not found/,
  );
  const empty = fakeIo({ "/opt/dir": true }, "");
  expect(await locateLlamaCpp("/opt/dir", empty.io)).toMatch(
    /^\/opt\/dir: no node_modules\/node-llama-cpp; llama\.cpp not found/,
  );
  const bench = fakeIo(
    { "/opt/llama-bench": false },
    '[{"n_prompt": 0, "n_gen": 64, "samples_ts": [410.5, 420.5]}]',
  );
  const where = await locateLlamaCpp("/opt/llama-bench", bench.io);
  expect(where).toEqual({ kind: "llama-bench", path: "/opt/llama-bench" });
  const run = { threads: 2, steps: 64, reps: 2, timeoutMs: 1000, model: "/tmp/x/model.gguf" };
  const result = await runLlamaCpp(where as never, { ...run, device: "vulkan" }, bench.io);
  expect(result.samples).toEqual([410.5, 420.5]);
  expect(bench.calls[0].args.join(" ")).toBe(
    "-m /tmp/x/model.gguf -p 0 -n 64 -r 2 -t 2 -ngl 99 -o json",
  );
  if (Deno.env.get("GGML_VK_VISIBLE_DEVICES") === undefined) {
    expect(bench.calls[0].env).toEqual({ GGML_VK_VISIBLE_DEVICES: "0" });
  }
  const node = fakeIo(
    { "/opt/nlc": true, "/opt/nlc/node_modules/node-llama-cpp/package.json": false },
    'progress\n{"loadMs": 400, "samples": [300, 310, 305], "device": "cpu"}\n',
  );
  const nodeWhere = await locateLlamaCpp("/opt/nlc", node.io);
  expect(nodeWhere).toEqual({ kind: "node-llama-cpp", dir: "/opt/nlc" });
  const cpu = await runLlamaCpp(nodeWhere as never, { ...run, device: "cpu" }, node.io);
  expect(cpu.samples).toEqual([300, 310, 305]);
  expect(cpu.command).toEqual([
    "node",
    `/opt/nlc/${NODE_SCRIPT_NAME}`,
    "/tmp/x/model.gguf",
    "cpu",
    "2",
    "64",
    "2",
  ]);
  expect(new TextDecoder().decode(node.written.get(`/opt/nlc/${NODE_SCRIPT_NAME}`)))
    .toContain('import { getLlama } from "node-llama-cpp"');
  const failed = fakeIo({ "/opt/llama-bench": false }, "", 3);
  expect((await runLlamaCpp(where as never, { ...run, device: "cpu" }, failed.io)).error)
    .toBe("exit 3: boom");
  expect(parseLlamaCppOutput("node-llama-cpp", '{"samples": [0]}').error).toContain(
    "expected positive samples",
  );
  expect(parseLlamaCppOutput("llama-bench", "not json").error).toBe(
    'llama-bench: unreadable output "not json"',
  );
});

Deno.test("the peers' GGUF holds the bench's weights and a vocabulary gguf readers accept", async () => {
  const config = makeConfig({
    dim: 32,
    hiddenDim: 64,
    nLayers: 1,
    nHeads: 4,
    nKvHeads: 2,
    vocabSize: 300,
    maxSeqLen: 16,
  });
  const { io, written } = fakeIo({}, "");
  const path = await writePeerGguf("/tmp/x", config, io);
  const model = parseGgufModel(written.get(path)!);
  expect(model.config.nKvHeads).toBe(2);
  expect(model.tokenizer?.vocabSize).toBe(300);
  // BOS's row is zero (greedy decoding never stops at once), the rest random
  expect(model.weights.tokenEmbedding.subarray(32, 64).every((x) => x === 0)).toBe(true);
  expect(model.weights.tokenEmbedding.subarray(64, 96).some((x) => x !== 0)).toBe(true);
});

// llama.cpp itself, where installed (the bench's default folder): it must load the GGUF this
// project writes and decode from it. About two seconds on two cores.
const installed = await locateLlamaCpp(undefined).catch(() => "none");
Deno.test({
  name: "llama.cpp (installed) decodes the GGUF the bench writes, on the CPU",
  ignore: typeof installed === "string",
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      const config = makeConfig({
        dim: 64,
        hiddenDim: 128,
        nLayers: 2,
        nHeads: 4,
        nKvHeads: 4,
        vocabSize: 300,
        maxSeqLen: 64,
      });
      const model = await writePeerGguf(dir, config);
      const result = await runLlamaCpp(installed as never, {
        device: "cpu",
        threads: 1,
        steps: 16,
        reps: 2,
        timeoutMs: 60_000,
        model,
      });
      expect(result.error).toBeUndefined();
      expect(result.samples).toHaveLength(2);
      for (const s of result.samples!) expect(s).toBeGreaterThan(1);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("a peer is set beside our cached decode of the model it runs: the shape's own attention, nearest its mean position", () => {
  const gqa = makeConfig({ ...preset("stories15M"), nKvHeads: 2 }); // GQA-3, as the peer decodes it
  const at = (attention: string, backend: "cpu" | "webgpu", context: number, tokS: number) =>
    cell({
      shape: "g",
      attention,
      backend,
      context,
      meanPosition: context + 15.5,
      tokensPerSecond: spread(tokS),
    });
  const cells = [
    at("MHA", "cpu", 112, 50), // another model: never the peer's neighbour
    at("GQA-3", "cpu", 16, 60),
    at("GQA-3", "cpu", 112, 70), // mean position 127.5, nearest the peer's 128
    at("GQA-3", "webgpu", 16, 30),
    cell({ shape: "g", attention: "GQA-3", cache: "recompute", context: 112, meanPosition: 128 }),
  ];
  const ours = peerOurs(cells, "g", gqa, 128);
  expect(ours.cpu).toEqual({ tokensPerSecond: spread(70), meanPosition: 127.5 });
  expect(ours.webgpu).toEqual({ tokensPerSecond: spread(30), meanPosition: 31.5 });
  expect(peerOurs(cells, "other", gqa, 128)).toEqual({});
});
