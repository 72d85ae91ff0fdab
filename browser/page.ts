/// <reference lib="dom" />
/**
 * The page's entry point (bundled into `page.js`). Two modes:
 *
 * - `?task=conformance|bench|decode|step`: run that task at once and POST its report (or the error)
 *   as JSON to `/api/result`, progress lines to `/api/log`: what `deno task browser` drives.
 * - no `task`: the interactive page users open on their own GPU, with tables, charts and a
 *   `results.json` download.
 *
 * @module
 */
import { type Gpu, requestGpu } from "../gpu/device.ts";
import { validateForeignKernels } from "../gpu/check_kernel.ts";
import { chartFiles, formatText, type MachineInfo } from "../bench/report/report.ts";
import {
  describeAdapter,
  type PageAdapter,
  pageBenchResults,
  pageConformance,
  pageDecode,
  pageDecodeStep,
  pageKernelBench,
  pageKernelConformance,
  type PageReport,
  type TaskReport,
} from "./tasks.ts";

const params = new URLSearchParams(location.search);
const element = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const logElement = element<HTMLPreElement>("log");

// Progress lines reach the server in order: each POST waits for the previous one.
let posted: Promise<unknown> = Promise.resolve();
function post(path: string, body: string): Promise<unknown> {
  posted = posted.then(() => fetch(path, { method: "POST", body }).catch(() => {}));
  return posted;
}

function log(line: string): void {
  logElement.textContent += `${line}\n`;
  logElement.scrollTop = logElement.scrollHeight;
  if (params.has("task")) post("/api/log", line);
}

function message(error: unknown): string {
  return error instanceof Error ? `${error.message}` : String(error);
}

async function fetchBytes(url: string): Promise<Uint8Array> {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status} ${response.statusText}`);
  return new Uint8Array(await response.arrayBuffer());
}

/** The adapter, with the features its device was created with (those kernels may use). */
function adapterOf(gpu: Gpu): PageAdapter {
  return describeAdapter(
    gpu.adapterDescription,
    gpu.device.features,
    navigator.userAgent,
    gpu.subgroupSizes,
  );
}

/** Runs one task for `deno task browser` and posts the report. */
async function automated(task: string): Promise<void> {
  try {
    // `?limits=default`: only WebGPU's default limits (`deno task browser ... --limits default`)
    const gpu = await requestGpu({
      limits: params.get("limits") === "default" ? "default" : "adapter",
    });
    const adapter = adapterOf(gpu);
    let report: TaskReport;
    if (task === "conformance" && params.has("kernel")) {
      // `--kernel`: the author's module, bundled on its own and served beside the page.
      const url = new URL("/kernel.js", location.href).href;
      const kernels = validateForeignKernels(await import(url), params.get("kernel")!);
      report = await pageKernelConformance(gpu, adapter, kernels, log);
    } else if (task === "conformance") {
      report = await pageConformance(gpu, adapter, {
        quick: params.has("quick"),
        variant: params.get("variant") ?? undefined,
      }, log);
    } else if (task === "bench") {
      report = await pageKernelBench(gpu, adapter, {
        quick: params.has("quick"),
        webgpuOnly: true,
      }, log);
    } else if (task === "decode") {
      const [model, tokenizer] = await Promise.all(
        ["/models/model.bin", "/models/tokenizer.bin"].map(fetchBytes),
      );
      report = await pageDecode(gpu, adapter, {
        model,
        tokenizer,
        prompt: params.get("prompt") ?? "Once upon a time",
        steps: Number(params.get("steps") ?? 200),
        projection: params.get("projection") ?? undefined,
      }, log);
    } else if (task === "step") {
      report = await pageDecodeStep(gpu, adapter, log);
    } else throw new Error(`task: expected conformance, bench, decode or step, got "${task}"`);
    gpu.destroy();
    await post("/api/result", JSON.stringify(report));
  } catch (error) {
    await post("/api/result", JSON.stringify({ error: message(error) }));
  }
}

function machine(adapter: PageAdapter): MachineInfo {
  const nav = navigator as Navigator & { deviceMemory?: number };
  return {
    cpu: "unknown CPU (browsers do not say)",
    cores: nav.hardwareConcurrency,
    memoryGiB: nav.deviceMemory ?? 0,
    caches: [],
    llcBytes: 0,
    os: nav.platform || "unknown OS",
    deno: `- (in ${adapter.browser})`,
    v8: `- (in ${adapter.browser})`,
  };
}

function section(title: string, ...nodes: Node[]): void {
  const out = element<HTMLDivElement>("out");
  const heading = document.createElement("h2");
  heading.textContent = title;
  out.append(heading, ...nodes);
}

function pre(text: string): HTMLPreElement {
  const node = document.createElement("pre");
  node.textContent = text;
  return node;
}

async function decodeInputs(): Promise<{ model: Uint8Array; tokenizer: Uint8Array }> {
  const files = [...(element<HTMLInputElement>("files").files ?? [])];
  if (files.length === 2) {
    // The checkpoint is the larger of the two.
    const [tokenizer, model] = await Promise.all(
      files.sort((a, b) => a.size - b.size).map(async (f) => new Uint8Array(await f.arrayBuffer())),
    );
    return { model, tokenizer };
  }
  if (files.length !== 0) {
    throw new Error(
      `files: expected a checkpoint and its tokenizer (2 files), got ${files.length}`,
    );
  }
  const [model, tokenizer] = await Promise.all(
    [element<HTMLInputElement>("model").value, element<HTMLInputElement>("tokenizer").value].map(
      fetchBytes,
    ),
  );
  return { model, tokenizer };
}

/** The interactive page: runs what is ticked and shows it. */
async function interactive(): Promise<void> {
  const adapterLine = element<HTMLParagraphElement>("adapter");
  const runButton = element<HTMLButtonElement>("run");
  let gpu;
  try {
    gpu = await requestGpu();
  } catch (error) {
    adapterLine.textContent = `No WebGPU here: ${message(error)}`;
    if (params.has("task")) await post("/api/result", JSON.stringify({ error: message(error) }));
    return;
  }
  const adapter = adapterOf(gpu);
  adapterLine.textContent = `Adapter: ${adapter.description} in ${adapter.browser}; features: ${
    adapter.features.join(", ") || "none"
  }`;
  runButton.disabled = false;
  const runTicked = async (): Promise<PageReport> => {
    runButton.disabled = true;
    element<HTMLDivElement>("out").replaceChildren();
    const checked = (id: string) => element<HTMLInputElement>(id).checked;
    const quick = checked("quick");
    const report: PageReport = { task: "page", adapter };
    try {
      if (checked("conformance")) {
        const conformance = report.conformance = await pageConformance(
          gpu,
          adapter,
          { quick },
          log,
        );
        const verdict = document.createElement("p");
        verdict.className = conformance.failures.length ? "fail" : "pass";
        verdict.textContent = conformance.failures.length
          ? `${conformance.failures.length} cases FAILED`
          : `all ${conformance.passed} cases pass`;
        section("Conformance", verdict, pre(conformance.table));
      }
      if (checked("bench")) {
        const kernels = await pageKernelBench(gpu, adapter, { quick }, log);
        const results = report.results = await pageBenchResults(
          gpu,
          kernels,
          { quick, machine: machine(adapter) },
          log,
        );
        const charts = document.createElement("div");
        charts.className = "charts";
        for (const svg of Object.values(chartFiles(results))) {
          charts.insertAdjacentHTML("beforeend", svg);
        }
        section("Benchmark", pre(formatText(results)), charts);
        const link = element<HTMLAnchorElement>("download");
        link.href = URL.createObjectURL(
          new Blob([JSON.stringify(results, null, 2) + "\n"], { type: "application/json" }),
        );
        link.hidden = false;
      }
      if (checked("decode")) {
        const decode = report.decode = await pageDecode(gpu, adapter, {
          ...await decodeInputs(),
          prompt: element<HTMLInputElement>("prompt").value,
          steps: Number(element<HTMLInputElement>("steps").value),
        }, log);
        section(
          "Decode",
          pre(
            `${decode.text}\n\nprefill ${decode.prefillTokensPerSecond.toFixed(1)} tokens/s, ` +
              `decode ${decode.decodeTokensPerSecond.toFixed(1)} tokens/s (greedy, GPU-resident)`,
          ),
        );
      }
      log("done");
    } catch (error) {
      report.error = message(error);
      log(`error: ${report.error}`);
    } finally {
      runButton.disabled = false;
    }
    return report;
  };
  runButton.onclick = runTicked;
  // `?task=page`: press Run (with the boxes ticked as `?quick`/`?full` say) and post what the
  // page shows, as `deno task browser page` does to check the page users open.
  if (params.get("task") === "page") {
    element<HTMLInputElement>("quick").checked = !params.has("full");
    await post("/api/result", JSON.stringify(await runTicked()));
  }
}

addEventListener("error", (event) => {
  if (params.has("task")) post("/api/result", JSON.stringify({ error: event.message }));
});
addEventListener("unhandledrejection", (event) => {
  if (params.has("task")) post("/api/result", JSON.stringify({ error: message(event.reason) }));
});

const task = params.get("task");
if (task && task !== "page") await automated(task);
else await interactive();
