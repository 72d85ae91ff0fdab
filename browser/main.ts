/**
 * `deno task browser`: the same kernels in a real browser. Bundles the page, serves it on
 * 127.0.0.1, starts the installed headless Chromium with WebGPU on, and prints what the page
 * reports: the conformance table, the kernel bench, or a greedy decode checked against the
 * CPU reference in Deno. Always ends the browser it started.
 *
 * @module
 */
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parseFlags, UsageError } from "../cli/flags.ts";
import { readCheckpoint } from "../model/formats/llama2c.ts";
import { CpuDecoder } from "../model/cpu_decoder.ts";
import { generate } from "../model/generate.ts";
import { readTokenizer } from "../model/formats/tokenizer.ts";
import { type BrowserProcess, findBrowser, launchBrowser, NO_BROWSER_HELP } from "./chromium.ts";
import { bundlePage, PAGE_HTML, type PageServer, servePage } from "./server.ts";
import {
  type ConformanceReport,
  type DecodeReport,
  describeAdapter,
  type KernelBenchReport,
  pageKernelBench,
  type PageReport,
  type StepReport,
  type TaskReport,
} from "./tasks.ts";
import { parseLimitsChoice, requestGpu } from "../gpu/device.ts";
import type { KernelResult } from "../bench/measure.ts";
import { type Spread, summarize } from "../gpu/timing.ts";
import { bestMs } from "../gpu/timing.ts";
import { formatText } from "../bench/report/report.ts";

/** The shared models folder beside this checkout. */
const MODELS_DIR = decodeURIComponent(new URL("../models/", import.meta.url).pathname);

/** The help text. */
export const BROWSER_HELP: string = `Usage: deno task browser COMMAND [options]

Commands:
  conformance           every kernel against its reference in headless Chromium; the table
  bench                 the kernel bench on WebGPU in headless Chromium (with --deno, also in
                        Deno on its own adapter, side by side)
  decode                greedy decode of a checkpoint on WebGPU in the page, checked against
                        the CPU reference in Deno
  step                  two decode steps of a TinyLlama-1.1B-shaped model (1 layer, f16 weights,
                        a 131 MB classifier) in the page against the CPU reference there; with
                        --limits default, the check that the decoder fits WebGPU's defaults
  page                  the page users open, in headless Chromium, as if Run were pressed
                        (conformance, quick kernel and decoder bench, decode); --out DIR
                        writes the results.json it offers
  serve                 serve the page for your own browser (open the printed address)
  build                 write the page (index.html, page.js) to --out, to host anywhere

Options:
  --browser PATH        Chromium to run (default: the first installed of the usual paths)
  --quick               conformance: one case per kernel and variant; bench: the quick subset
  --limits L            adapter (default) or default: the page requests only WebGPU's default limits
  --kernel PATH         conformance: check the kernels the module at PATH exports instead
                        (export const kernels: ForeignKernel[]; see docs/kernel-authors.md)
  --variant NAME        conformance: only that variant's cases (e.g. subgroup64)
  --projection NAME     decode: run every decode projection as that variant (e.g. subgroup64)
  --model PATH          decode: llama2.c checkpoint (default models/stories260K.bin)
  --tokenizer PATH      decode: its tokenizer (default models/tok512.bin)
  --prompt TEXT         decode: the prompt (default "Once upon a time")
  --steps N             decode: tokens to generate (default 200)
  --repeat N            bench: N runs, each in a fresh browser; median and range (default 1)
  --deno                bench: also run the same kernels on Deno's WebGPU adapter
  --timeout S           give up after S seconds per browser run (default 300; bench 1200)
  --json                print the page's report as JSON instead of a table
  --port N              serve: the port (default 8000)
  --out DIR             build: where to write the page; page: where to write results.json
  --help                this text

Exit code: 0 when everything passed, 1 on any failure, 2 on bad usage.`;

/** Where output goes (replaceable in tests). */
export interface BrowserIo {
  /** Tables and results (stdout). */
  print(text: string): void;
  /** Progress lines from the page (stderr). */
  progress(line: string): void;
}

function denoIo(): BrowserIo {
  return {
    print: (text) => console.log(text),
    progress: (line) => console.error(`[${new Date().toISOString().slice(11, 19)}] ${line}`),
  };
}

const COMMANDS = ["conformance", "bench", "decode", "step", "page", "serve", "build"] as const;
type Command = typeof COMMANDS[number];

/**
 * Runs `deno task browser` with `args`; returns the exit code (0 ok, 1 failure, 2 bad usage).
 *
 * @example
 * ```ts ignore
 * import { browserMain } from "./main.ts";
 * Deno.exit(await browserMain(["conformance"]));
 * ```
 */
export async function browserMain(args: string[], io: BrowserIo = denoIo()): Promise<number> {
  try {
    return await run(args, io);
  } catch (error) {
    io.print(
      `browser: ${error instanceof Error ? error.message : error}${
        error instanceof UsageError ? " (see --help)" : ""
      }`,
    );
    return error instanceof UsageError ? 2 : 1;
  }
}

async function run(args: string[], io: BrowserIo): Promise<number> {
  const [command, ...rest] = args;
  if (command === "--help" || command === "-h") {
    io.print(BROWSER_HELP);
    return 0;
  }
  if (!COMMANDS.includes(command as Command)) {
    throw new UsageError(
      `expected a command (${COMMANDS.join(", ")}), got ${command ? `"${command}"` : "none"}`,
    );
  }
  const flags = parseFlags(rest, {
    browser: { type: "string" },
    quick: { type: "boolean" },
    limits: { type: "string" },
    variant: { type: "string" },
    projection: { type: "string" },
    kernel: { type: "string" },
    model: { type: "string" },
    tokenizer: { type: "string" },
    prompt: { type: "string" },
    steps: { type: "string" },
    timeout: { type: "string" },
    json: { type: "boolean" },
    repeat: { type: "string" },
    deno: { type: "boolean" },
    port: { type: "string" },
    out: { type: "string" },
    help: { type: "boolean" },
  });
  if (flags.help) {
    io.print(BROWSER_HELP);
    return 0;
  }
  const positive = (name: string, value: string | undefined, fallback: number) => {
    const n = Number(value ?? fallback);
    if (!Number.isInteger(n) || n < 1) {
      throw new UsageError(`--${name}: expected an integer >= 1, got "${value}"`);
    }
    return n;
  };
  if (command === "build") return await build(flags.out, io);
  if (command === "serve") return await serve(positive("port", flags.port, 8000), io);

  const steps = positive("steps", flags.steps, 200);
  const timeoutS = positive("timeout", flags.timeout, command === "bench" ? 1200 : 300);
  let browserPath: string | undefined;
  try {
    browserPath = findBrowser(flags.browser);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  if (!browserPath) throw new Error(NO_BROWSER_HELP);
  const files: Record<string, string> = {};
  const query = new URLSearchParams({ task: command });
  if (command === "decode") {
    files["model.bin"] = flags.model ?? `${MODELS_DIR}stories260K.bin`;
    files["tokenizer.bin"] = flags.tokenizer ?? `${MODELS_DIR}tok512.bin`;
    for (
      const [flag, path] of [["model", files["model.bin"]], ["tokenizer", files["tokenizer.bin"]]]
    ) {
      try {
        Deno.statSync(path);
      } catch {
        throw new Error(`--${flag}: ${path} does not exist`);
      }
    }
    query.set("prompt", flags.prompt ?? "Once upon a time");
    query.set("steps", `${steps}`);
  }
  if (flags.quick) query.set("quick", "1");
  try {
    if (parseLimitsChoice(flags.limits) === "default") query.set("limits", "default");
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  for (const [flag, applies] of [["variant", "conformance"], ["projection", "decode"]] as const) {
    const value = flags[flag];
    if (value === undefined) continue;
    if (command !== applies) throw new UsageError(`--${flag}: only with ${applies}`);
    query.set(flag, value);
  }
  let kernelScript: string | undefined;
  if (flags.kernel !== undefined) {
    if (command !== "conformance") throw new UsageError("--kernel: only with conformance");
    try {
      Deno.statSync(flags.kernel);
    } catch {
      throw new Error(`--kernel: ${flags.kernel} does not exist`);
    }
    io.progress(`bundling ${flags.kernel}`);
    kernelScript = await bundlePage(pathToFileURL(resolve(flags.kernel)));
    query.set("kernel", flags.kernel);
  }

  const repeat = positive("repeat", flags.repeat, 1);
  io.progress("bundling the page");
  const script = await bundlePage();
  if (command === "bench") {
    const runs: KernelBenchReport[] = [];
    const denoRuns: KernelBenchReport[] = [];
    for (let i = 0; i < repeat; i++) {
      if (repeat > 1) io.progress(`run ${i + 1} of ${repeat}`);
      runs.push(
        await inBrowser(browserPath, script, files, query, timeoutS, io) as KernelBenchReport,
      );
      if (flags.deno) denoRuns.push(await denoKernelBench(!!flags.quick, io));
    }
    io.print(
      flags.json
        ? JSON.stringify({ chromium: runs, deno: denoRuns }, null, 2)
        : formatKernelBench(runs, denoRuns),
    );
    return 0;
  }
  if (command === "page") {
    const report = await inBrowser(browserPath, script, files, query, timeoutS, io, MODELS_DIR);
    return await printPage(report as PageReport, flags.out, io);
  }
  const report = await inBrowser(browserPath, script, files, query, timeoutS, io, undefined, {
    kernelScript,
  });
  if (flags.json) io.print(JSON.stringify(report, null, 2));
  if (report.task === "conformance") return printConformance(report, io, !flags.json);
  if (report.task === "step") return printStep(report, io);
  if (report.task !== "decode") throw new Error(`the page reported a ${report.task} run`);
  return await checkDecode(report, files, flags.prompt ?? "Once upon a time", steps, io);
}

/** The same kernel bench in this Deno process, on Deno's own WebGPU adapter. */
async function denoKernelBench(quick: boolean, io: BrowserIo): Promise<KernelBenchReport> {
  const gpu = await requestGpu();
  try {
    const adapter = describeAdapter(
      gpu.adapterDescription,
      gpu.device.features,
      `Deno/${Deno.version.deno}`,
    );
    io.progress(`the same kernels in Deno on ${adapter.description}`);
    return await pageKernelBench(gpu, adapter, { quick, webgpuOnly: true }, io.progress);
  } finally {
    gpu.destroy();
  }
}

/** Serves the page, runs the browser at it, and returns the page's report. */
async function inBrowser(
  browserPath: string,
  script: string,
  files: Record<string, string>,
  query: URLSearchParams,
  timeoutS: number,
  io: BrowserIo,
  modelsDir?: string,
  extra: { kernelScript?: string } = {},
): Promise<TaskReport> {
  let server: PageServer | undefined;
  let browser: BrowserProcess | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  // Ctrl-C or a kill still ends the browser.
  const interrupt = () => {
    Promise.all([browser?.close(), server?.close()]).finally(() => Deno.exit(130));
  };
  const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
  for (const signal of signals) Deno.addSignalListener(signal, interrupt);
  try {
    server = servePage({ script, files, modelsDir, onLog: io.progress, ...extra });
    io.progress(`starting ${browserPath}`);
    browser = await launchBrowser(browserPath, `${server.url}?${query}`);
    const crashed = browser.exited.then((code) => {
      throw new Error(
        `the browser exited (code ${code}) before the page reported:\n${browser!.stderrTail()}`,
      );
    });
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`no report from the page within ${timeoutS} s (--timeout)`)),
        timeoutS * 1000,
      );
    });
    const report = await Promise.race([server.result, crashed, timedOut]) as
      | TaskReport
      | { error: string };
    if ("error" in report) throw new Error(`in the page: ${report.error}`);
    return report;
  } finally {
    clearTimeout(timer);
    for (const signal of signals) Deno.removeSignalListener(signal, interrupt);
    await browser?.close();
    await server?.close();
  }
}

function printConformance(report: ConformanceReport, io: BrowserIo, table: boolean): number {
  if (table) io.print(report.table);
  return report.failures.length === 0 && report.passed > 0 ? 0 : 1;
}

/**
 * "median (min-max)": of one run, its own samples' spread; of several, the spread of their
 * medians.
 */
function spread(values: readonly Spread[], digits: number): string {
  const f = (x: number) => x.toFixed(digits);
  if (values.length === 1) {
    const [one] = values;
    return one.n > 1 ? `${f(one.median)} (${f(one.min)}-${f(one.max)})` : f(one.median);
  }
  const medians = summarize(values.map((v) => v.median));
  return `${f(medians.median)} (${f(medians.min)}-${f(medians.max)})`;
}

/**
 * The kernel bench on WebGPU as a table: per kernel, variant and shape, ms per call (GPU time
 * where timestamps exist), GB/s and the fraction of the adapter's read-stream bandwidth, each
 * as "median (min-max)": of one run's samples, or of several runs' medians; with `deno` runs,
 * the same columns for Deno's adapter beside them.
 *
 * @example
 * ```ts
 * import { formatKernelBench } from "./main.ts";
 * import { summarize } from "../gpu/timing.ts";
 * const s = (...xs: number[]) => summarize(xs);
 * const roofline = { readGbPerS: s(10), copyGbPerS: s(8), peakGflopPerS: s(50), dispatchUs: s(20), probeBytes: 1 << 26, gpuTimestamps: true };
 * const run = {
 *   task: "bench" as const,
 *   adapter: { description: "test", features: [], browser: "Chrome/1" },
 *   settings: { reps: 3, minBatchMs: { cpu: 20, webgpu: 20 }, probeBytes: 1 << 26 },
 *   rooflines: { webgpu: roofline },
 *   kernels: [{
 *     backend: "webgpu" as const, kernel: "add", variant: "default", shape: "8", bytes: 96, flops: 8, dispatches: 1,
 *     timing: { wallMs: s(0.02), gpuMs: s(0.01, 0.01, 0.02), batch: 100 }, gbPerS: s(0.0096), gflopPerS: s(0.0008),
 *     rooflineFraction: 0.00096, predictedMs: 0.01, measuredOverPredicted: 1, fitsInLlc: true,
 *   }],
 * };
 * const table = formatKernelBench([run]);
 * if (!table.includes("0.010 (0.010-0.020)")) throw new Error("wrong");
 * ```
 */
export function formatKernelBench(
  runs: readonly KernelBenchReport[],
  deno: readonly KernelBenchReport[] = [],
): string {
  const keyOf = (k: KernelResult) => `${k.kernel}|${k.variant}|${k.shape}`;
  const webgpu = (reports: readonly KernelBenchReport[]) =>
    reports.flatMap((r) => r.kernels.filter((k) => k.backend === "webgpu"));
  const [browserKernels, denoKernels] = [webgpu(runs), webgpu(deno)];
  const keys = [...new Set([...browserKernels, ...denoKernels].map(keyOf))];
  const columns = (kernels: KernelResult[], key: string) => {
    const mine = kernels.filter((k) => keyOf(k) === key);
    if (mine.length === 0) return ["-", "-", "-"];
    return [
      spread(mine.map((k) => bestMs(k.timing)), 3),
      spread(mine.map((k) => k.gbPerS), 2),
      spread(mine.map((k) => summarize([k.rooflineFraction * 100])), 1),
    ];
  };
  const rows = keys.map((key) => [
    ...key.split("|"),
    ...columns(browserKernels, key),
    ...(deno.length ? columns(denoKernels, key) : []),
  ]);
  const header = [
    "kernel",
    "variant",
    "shape",
    "browser ms",
    "browser GB/s",
    "% of read",
    ...(deno.length ? ["deno ms", "deno GB/s", "% of read"] : []),
  ];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd();
  const ceiling = (reports: readonly KernelBenchReport[], field: "readGbPerS" | "copyGbPerS") =>
    reports.every((r) => r.rooflines.webgpu)
      ? spread(reports.map((r) => r.rooflines.webgpu![field]), 2)
      : "-";
  const describe = (reports: readonly KernelBenchReport[], who: string) =>
    `${who}: ${reports[0].adapter.description} (${reports[0].adapter.browser}), WebGPU read ${
      ceiling(reports, "readGbPerS")
    } GB/s, copy ${ceiling(reports, "copyGbPerS")} GB/s; ${
      reports.length > 1
        ? `${reports.length} runs, median (min-max) of their medians`
        : "median (min-max) of the samples"
    }`;
  return [
    describe(runs, "browser"),
    ...(deno.length ? [describe(deno, "deno")] : []),
    line(header),
    line(widths.map((w) => "-".repeat(w))),
    ...rows.map(line),
  ].join("\n");
}

/** The logit NMSE within which a step's logits match the CPU reference's. */
const STEP_NMSE = 1e-9;

/** Prints the decode-step check: the limits, the dispatches and each position's NMSE. */
function printStep(report: StepReport, io: BrowserIo): number {
  const limits = Object.entries(report.limits).map(([k, v]) => `${k} ${v}`).join(", ");
  io.print(
    `${report.shape} in the page (${report.adapter.description}, ${report.adapter.browser}); ` +
      `limits: ${limits}; largest matrix ${report.largestMatrixBytes} bytes; ` +
      `${report.dispatchesPerToken} dispatches per token`,
  );
  let failed = 0;
  for (const p of report.positions) {
    const ok = p.firstNonFinite === -1 && p.nmse < STEP_NMSE;
    if (!ok) failed++;
    io.print(
      `position ${p.position} token ${p.token}: logit NMSE ${p.nmse.toExponential(2)} against ` +
        `the CPU reference${p.firstNonFinite === -1 ? "" : `, non-finite at ${p.firstNonFinite}`}` +
        ` ${ok ? "ok" : `FAILED (expected < ${STEP_NMSE})`}`,
    );
  }
  return failed === 0 && report.positions.length > 0 ? 0 : 1;
}

/** Prints the page's story and checks its tokens against the CPU reference's in Deno. */
async function checkDecode(
  report: DecodeReport,
  files: Record<string, string>,
  prompt: string,
  steps: number,
  io: BrowserIo,
): Promise<number> {
  io.print(report.text);
  io.print(
    `in the page (${report.adapter.description}, ${report.adapter.browser}${
      report.projection ? `, ${report.projection} projections` : ""
    }): prefill ${
      report.prefillTokensPerSecond.toFixed(1)
    } tokens/s, decode ${report.tokens.length} tokens at ${
      report.decodeTokensPerSecond.toFixed(1)
    } tokens/s`,
  );
  const { config, weights } = await readCheckpoint(files["model.bin"]);
  const tokenizer = await readTokenizer(files["tokenizer.bin"], config.vocabSize);
  const promptTokens = tokenizer.encode(prompt);
  const expected = await generate(new CpuDecoder(config, weights), promptTokens, {
    steps: Math.min(steps, config.maxSeqLen - promptTokens.length),
    temperature: 0,
  });
  const got = [...report.promptTokens, ...report.tokens];
  const want = [...promptTokens, ...expected.tokens];
  const first = want.findIndex((t, i) => got[i] !== t);
  if (first < 0 && got.length === want.length) {
    io.print(`matches the CPU reference in Deno: all ${want.length} token ids`);
    return 0;
  }
  const at = first < 0 ? Math.min(got.length, want.length) : first;
  io.print(
    `MISMATCH with the CPU reference in Deno at token ${at}: expected ${want[at]}, got ${
      got[at]
    } (${got.length} vs ${want.length} tokens)`,
  );
  return 1;
}

async function printPage(
  report: PageReport,
  out: string | undefined,
  io: BrowserIo,
): Promise<number> {
  if (report.conformance) io.print(report.conformance.table);
  if (report.results) io.print(`\n${formatText(report.results)}`);
  if (report.decode) io.print(`\n${report.decode.text}`);
  if (report.error) io.print(`\nthe page stopped: ${report.error}`);
  if (report.results && out) {
    await Deno.mkdir(out, { recursive: true });
    await Deno.writeTextFile(`${out}/results.json`, JSON.stringify(report.results, null, 2) + "\n");
    io.print(`\nwrote ${out}/results.json (deno task bench --from ${out}/results.json renders it)`);
  }
  const failed = report.error !== undefined || (report.conformance?.failures.length ?? 0) > 0 ||
    (report.results?.rejected.length ?? 0) > 0;
  return failed ? 1 : 0;
}

async function build(out: string | undefined, io: BrowserIo): Promise<number> {
  if (!out) throw new UsageError("build needs --out DIR");
  const script = await bundlePage();
  await Deno.mkdir(out, { recursive: true });
  await Deno.copyFile(PAGE_HTML, `${out}/index.html`);
  await Deno.writeTextFile(`${out}/page.js`, script);
  io.print(
    `wrote ${out}/index.html and ${out}/page.js; serve the folder over https or from ` +
      `localhost (WebGPU needs a secure context), with models/ beside them for the decode`,
  );
  return 0;
}

async function serve(port: number, io: BrowserIo): Promise<number> {
  const script = await bundlePage();
  const server = servePage({ script, modelsDir: MODELS_DIR, port });
  io.print(`serving the page at ${server.url} (models from ${MODELS_DIR}); Ctrl-C stops`);
  await new Promise<void>((resolve) => Deno.addSignalListener("SIGINT", resolve));
  await server.close();
  return 0;
}

if (import.meta.main) Deno.exit(await browserMain(Deno.args));
