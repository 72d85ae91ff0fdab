// The kernels in a real browser: headless Chromium (Dawn/Tint, a second WebGPU implementation
// beside Deno's wgpu/naga) runs the conformance cases and a decode. Ignored with one line where
// no Chromium is installed; under CI a missing browser fails.
import { expect } from "expect";
import { BROWSER_HELP, browserMain, formatKernelBench } from "../browser/main.ts";
import { findBrowser, launchBrowser } from "../browser/chromium.ts";
import { bundlePage } from "../browser/server.ts";
import { describeAdapter, type KernelBenchReport, pageBenchResults } from "../browser/tasks.ts";
import { conformanceCases } from "../gpu/conformance.ts";
import { benchMain } from "../bench/main.ts";
import { makeConfig } from "../model/config.ts";
import { requireWebGpu } from "./_gpu.ts";
import { ignoreModelTests, LILY } from "./_models.ts";

const browser = findBrowser();
const ignoreBrowserTests = !browser && !requireWebGpu;
if (ignoreBrowserTests) {
  console.warn(
    "browser tests ignored: no Chromium (apt-get install chromium-headless-shell); required under CI",
  );
}

async function cli(...args: string[]) {
  let out = "";
  let progress = "";
  const code = await browserMain(args, {
    print: (t) => out += `${t}\n`,
    progress: (l) => progress += `${l}\n`,
  });
  return { code, out, progress };
}

Deno.test({
  name: "browser conformance: one case of every kernel passes in headless Chromium",
  ignore: ignoreBrowserTests,
  async fn() {
    const { code, out, progress } = await cli("conformance", "--quick");
    const kernels = new Set(conformanceCases().map((c) => c.kernel));
    expect({ code, out, progress }).toMatchObject({ code: 0 });
    expect(out).toMatch(/^adapter: .+\(.*Chrome\/\d+/m);
    expect(out).toContain(`${kernels.size} passed, 0 failed`);
    for (const kernel of kernels) expect(out).toMatch(new RegExp(`^${kernel} .* pass$`, "m"));
  },
});

Deno.test({
  name: "browser decode: the page's greedy stories260K story is the CPU reference's",
  ignore: ignoreBrowserTests || ignoreModelTests,
  async fn() {
    const { code, out } = await cli("decode", "--steps", "40");
    expect(out).toContain(LILY);
    expect(out).toContain("matches the CPU reference in Deno: all 45 token ids");
    expect(code).toBe(0);
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
      [[], "browser: expected a command (conformance, bench, decode, serve, build), got none"],
      [["run"], 'got "run"'],
      [["conformance", "--bogus"], "Unknown option '--bogus'"],
      [["conformance", "--browser", "/nonexistent/chrome"], "--browser: expected an executable"],
      [["decode", "--steps", "0"], '--steps: expected an integer >= 1, got "0"'],
      [["build"], "build needs --out DIR"],
    ] as const
  ) {
    const { code, out } = await cli(...args);
    expect(out).toContain(message);
    expect(out.trim().split("\n")).toHaveLength(1);
    expect(code).toBe(2);
  }
  expect((await cli("--help")).out).toBe(`${BROWSER_HELP}\n`);
});

Deno.test("the page's results.json is one `deno task bench --from` renders", async () => {
  // The page's bench on the CPU backend (same function, same schema) at a tiny shape.
  const kernels: KernelBenchReport = {
    task: "bench",
    adapter: describeAdapter("test adapter", ["subgroups"], "Mozilla/5.0 Chrome/156.0.0.0"),
    copyGbPerS: { cpu: 10 },
    kernels: [{
      backend: "cpu",
      kernel: "add",
      shape: "8",
      ms: 0.001,
      bytes: 96,
      gbPerS: 0.096,
      rooflineFraction: 0.0096,
    }],
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
    machine: { cpu: "?", cores: 4, memoryGiB: 8, os: "Linux", deno: "- (in Chrome/156.0.0.0)" },
    matrix: { shapes: [{ name: "tiny", config }], contexts: [4] },
  });
  expect(results.cells.length).toBeGreaterThan(0);
  expect(results.machine.adapter).toContain("Chrome/156.0.0.0; features: subgroups");
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
    expect(await Deno.readTextFile(`${dir}/report.md`)).toContain("test adapter");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the kernel bench table shows both backends per kernel", () => {
  const table = formatKernelBench({
    task: "bench",
    adapter: describeAdapter("gpu x", [], "Chrome/1.2"),
    copyGbPerS: { cpu: 20, webgpu: 5 },
    kernels: [
      {
        backend: "cpu",
        kernel: "add",
        shape: "288",
        ms: 0.01,
        bytes: 3456,
        gbPerS: 0.35,
        rooflineFraction: 0.017,
      },
      {
        backend: "webgpu",
        kernel: "add",
        shape: "288",
        ms: 0.02,
        bytes: 3456,
        gbPerS: 0.17,
        rooflineFraction: 0.035,
      },
    ],
  });
  expect(table).toContain("copy bandwidth: cpu 20.00 GB/s, webgpu 5.00 GB/s");
  expect(table.split("\n").at(-1)).toBe("add     288    0.010   0.020      0.17         3.5%");
});
