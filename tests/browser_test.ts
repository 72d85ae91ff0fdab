// The browser tooling: errors, the page bundle and server, the launcher, the bench page's
// results. The kernels and the decoder in Chromium: browser_conformance_test.ts and
// browser_decode_test.ts. Ignored with one line where no Chromium is installed; under CI a
// missing browser fails.
import { expect } from "expect";
import { BROWSER_HELP, formatKernelBench } from "../browser/main.ts";
import { launchBrowser } from "../browser/chromium.ts";
import { bundlePage, servePage } from "../browser/server.ts";
import { describeAdapter, type KernelBenchReport, pageBenchResults } from "../browser/tasks.ts";
import { benchMain } from "../bench/main.ts";
import { makeConfig } from "../model/config.ts";
import type { KernelResult } from "../bench/measure.ts";
import type { Roofline } from "../bench/probes.ts";
import { summarize } from "../gpu/timing.ts";
import { browser, cli, ignoreBrowserTests } from "./_browser.ts";

Deno.test({
  name: "browser errors: a bad model fails in the page, a timeout stops the run; both exit 1",
  ignore: ignoreBrowserTests,
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      const model = `${dir}/garbage.bin`;
      await Deno.writeFile(model, new Uint8Array(100).fill(7));
      const bad = await cli("decode", "--model", model);
      expect(bad.out.trim()).toMatch(/^browser: in the page: model: .+$/);
      expect(bad.code).toBe(1);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
    const missing = await cli("decode", "--model", "/nonexistent/model.bin");
    expect(missing.out.trim()).toBe("browser: --model: /nonexistent/model.bin does not exist");
    expect(missing.code).toBe(1);
    const late = await cli("conformance", "--timeout", "1");
    expect(late.out.trim()).toBe("browser: no report from the page within 1 s (--timeout)");
    expect(late.code).toBe(1);
  },
});

Deno.test({
  name: "the bundled page touches no Deno API",
  ignore: ignoreBrowserTests,
  async fn() {
    const script = await bundlePage();
    expect(script.length).toBeGreaterThan(10_000);
    expect(script).toContain("requestAdapter");
    expect(script).not.toMatch(/\bDeno\./);
  },
});

Deno.test({
  name: "a launched browser is ended and its profile removed",
  ignore: ignoreBrowserTests,
  async fn() {
    const process = await launchBrowser(browser!, "about:blank");
    await process.close();
    await process.close(); // twice is harmless
    expect(await process.exited).toEqual(expect.any(Number));
    expect(() => Deno.statSync(`/proc/${process.pid}`)).toThrow();
  },
});

Deno.test("browser usage errors get one line and exit 2", async () => {
  for (
    const [args, message] of [
      [
        [],
        "browser: expected a command (conformance, bench, decode, step, page, serve, build), got none",
      ],
      [["run"], 'got "run"'],
      [["conformance", "--bogus"], "Unknown option '--bogus'"],
      [["conformance", "--browser", "/nonexistent/chrome"], "--browser: expected an executable"],
      [["decode", "--steps", "0"], '--steps: expected an integer >= 1, got "0"'],
      [["build"], "build needs --out DIR"],
      [["decode", "--variant", "subgroup64"], "--variant: only with conformance"],
      [["conformance", "--projection", "row"], "--projection: only with decode"],
    ] as const
  ) {
    const { code, out } = await cli(...args);
    expect(out).toContain(message);
    expect(out.trim().split("\n")).toHaveLength(1);
    expect(code).toBe(2);
  }
  expect((await cli("--help")).out).toBe(`${BROWSER_HELP}\n`);
});

const spread = (...samples: number[]) => summarize(samples);

/** A kernel result of one WebGPU (or CPU) kernel taking `ms` per call on `bytes`. */
function kernelResult(backend: "cpu" | "webgpu", ms: number[], bytes = 3456): KernelResult {
  const gbPerS = summarize(ms.map((m) => bytes / m / 1e6));
  return {
    backend,
    kernel: "add",
    variant: "default",
    shape: "288",
    bytes,
    flops: 288,
    dispatches: 1,
    timing: { wallMs: summarize(ms.map((m) => m * 3)), gpuMs: summarize(ms), batch: 100 },
    gbPerS,
    gflopPerS: summarize(ms.map((m) => 288 / m / 1e6)),
    rooflineFraction: gbPerS.median / 5,
    predictedMs: 0.01,
    measuredOverPredicted: summarize(ms).median / 0.01,
    fitsInLlc: false,
  };
}

function roofline(readGbPerS: number): Roofline {
  return {
    readGbPerS: spread(readGbPerS),
    copyGbPerS: spread(readGbPerS / 2),
    peakGflopPerS: spread(10),
    dispatchUs: spread(20),
    probeBytes: 64 << 20,
    gpuTimestamps: true,
  };
}

Deno.test("the page's results.json is one `deno task bench --from` renders", async () => {
  // The page's bench on the CPU backend (same function, same schema) at a tiny shape.
  const kernels: KernelBenchReport = {
    task: "bench",
    adapter: describeAdapter("test adapter", ["subgroups"], "Mozilla/5.0 Chrome/156.0.0.0"),
    settings: { reps: 3, minBatchMs: { cpu: 5, webgpu: 5 }, probeBytes: 64 << 20 },
    rooflines: { cpu: roofline(10) },
    kernels: [kernelResult("cpu", [0.001, 0.0012, 0.0011])],
  };
  const config = makeConfig({
    dim: 16,
    hiddenDim: 32,
    nLayers: 1,
    nHeads: 4,
    nKvHeads: 4,
    vocabSize: 32,
    maxSeqLen: 64,
  });
  const results = await pageBenchResults(undefined, kernels, {
    quick: true,
    machine: {
      cpu: "unknown CPU (browsers do not say)",
      cores: 4,
      memoryGiB: 8,
      caches: [],
      llcBytes: 0,
      os: "Linux",
      deno: "- (in Chrome/156.0.0.0)",
      v8: "- (in Chrome/156.0.0.0)",
    },
    matrix: { shapes: [{ name: "tiny", config }], contexts: [4] },
  });
  expect(results.cells.length).toBeGreaterThan(0);
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/results.json`, JSON.stringify(results));
    let printed = "";
    const code = await benchMain(["--from", `${dir}/results.json`, "--out", dir], {
      print: (t) => printed += t,
      progress: () => {},
      readFile: (p) => Deno.readTextFile(p),
      writeFile: (p, t) => Deno.writeTextFile(p, t),
    });
    expect(code).toBe(0);
    expect(printed).toContain("tiny");
    expect(await Deno.readTextFile(`${dir}/report.md`)).toContain("in Chrome/156.0.0.0");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the kernel bench table: median and range per kernel, Deno beside the browser", () => {
  const run = (adapter: string, browser: string, ms: number[]): KernelBenchReport => ({
    task: "bench",
    adapter: describeAdapter(adapter, [], browser),
    settings: { reps: ms.length, minBatchMs: { cpu: 20, webgpu: 20 }, probeBytes: 64 << 20 },
    rooflines: { webgpu: roofline(5) },
    kernels: [kernelResult("webgpu", ms)],
  });
  // one browser run of 3 samples; Deno, 3 runs whose medians are 0.05, 0.0864 and 0.1 ms
  const browserRun = run("gpu x", "Chrome/1.2", [0.02, 0.01, 0.04]);
  const denoRuns = [0.0864, 0.05, 0.1].map((ms) => run("lavapipe", "Deno/2.9.6", [ms]));
  const lines = formatKernelBench([browserRun], denoRuns).split("\n");
  expect(lines[0]).toBe(
    "browser: gpu x (Chrome/1.2), WebGPU read 5.00 GB/s, copy 2.50 GB/s; median (min-max) of the samples",
  );
  expect(lines[1]).toBe(
    "deno: lavapipe (Deno/2.9.6), WebGPU read 5.00 (5.00-5.00) GB/s, copy 2.50 (2.50-2.50) GB/s; " +
      "3 runs, median (min-max) of their medians",
  );
  // browser: 0.02 ms of 3456 bytes is 0.17 GB/s, 3.5% of 5 GB/s; Deno: 0.0864 ms, 0.04 GB/s, 0.8%
  expect(lines.at(-1)!.replace(/ +/g, " ")).toBe(
    "add default 288 0.020 (0.010-0.040) 0.17 (0.09-0.35) 3.5 " +
      "0.086 (0.050-0.100) 0.04 (0.03-0.07) 0.8 (0.7-1.4)",
  );
});

Deno.test("a browser that exits before the page reports fails the run with its exit code", async () => {
  const { code, out } = await cli("conformance", "--browser", "/bin/false");
  expect(out).toMatch(/^browser: the browser exited \(code 1\) before the page reported/);
  expect(code).toBe(1);
});

Deno.test("the page server: page, script, model files by plain name, reports by POST", async () => {
  const dir = await Deno.makeTempDir();
  const lines: string[] = [];
  const server = servePage({
    script: "console.log(1);",
    files: { "model.bin": `${dir}/weights.bin` },
    modelsDir: dir,
    onLog: (line) => lines.push(line),
  });
  try {
    await Deno.writeFile(`${dir}/weights.bin`, Uint8Array.of(1, 2, 3));
    const get = async (path: string) => {
      const response = await fetch(new URL(path, server.url));
      return { status: response.status, body: new Uint8Array(await response.arrayBuffer()) };
    };
    expect(new TextDecoder().decode((await get("/")).body)).toContain('src="page.js"');
    expect(new TextDecoder().decode((await get("/page.js")).body)).toBe("console.log(1);");
    expect((await get("/models/model.bin")).body).toEqual(Uint8Array.of(1, 2, 3));
    expect((await get("/models/weights.bin")).body).toEqual(Uint8Array.of(1, 2, 3));
    expect((await get("/models/missing.bin")).status).toBe(404);
    expect((await get("/models/..%2Fetc%2Fpasswd")).status).toBe(404);
    expect((await get("/models/.hidden")).status).toBe(404);
    await (await fetch(new URL("/api/log", server.url), { method: "POST", body: "step 1" })).text();
    await (await fetch(new URL("/api/result", server.url), { method: "POST", body: '{"a":1}' }))
      .text();
    expect(lines).toEqual(["step 1"]);
    expect(await server.result).toEqual({ a: 1 });
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("build writes the page and its script for static hosting", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { code, out } = await cli("build", "--out", dir);
    expect(out).toContain(`wrote ${dir}/index.html and ${dir}/page.js`);
    expect(code).toBe(0);
    expect(await Deno.readTextFile(`${dir}/index.html`)).toContain(
      '<script type="module" src="page.js">',
    );
    const script = await Deno.readTextFile(`${dir}/page.js`);
    expect(script).toContain("requestAdapter");
    // A page cannot load Node's modules: one such import (a bench module reading files, pulled
    // in through the report) stops the whole page before it reports anything.
    expect(script.match(/["']node:[a-z_]+["']/g) ?? []).toEqual([]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
