/**
 * What the browser page runs: conformance, the kernel bench, the decoder bench and a greedy
 * decode of a llama2.c checkpoint given as bytes. Web-standard only (no `Deno.*`, no DOM), so
 * the same functions run in a page, in a worker or in Deno.
 *
 * @module
 */
import type { Gpu, SubgroupSizes } from "../gpu/device.ts";
import { checkKernels, type ForeignKernel } from "../gpu/check_kernel.ts";
import {
  type ConformanceCase,
  conformanceCases,
  type ConformanceResult,
  formatConformanceTable,
  runConformance,
} from "../gpu/conformance.ts";
import { makeConfig, preset } from "../model/config.ts";
import { CpuDecoder } from "../model/cpu_decoder.ts";
import { tabledF16Weights } from "../model/precision.ts";
import { compare } from "../reference/compare.ts";
import { parseCheckpoint } from "../model/formats/llama2c.ts";
import { generate } from "../model/generate.ts";
import { GpuDecoder } from "../model/webgpu/decoder.ts";
import { projectionTuning } from "../gpu/tune.ts";
import { Tokenizer } from "../model/formats/tokenizer.ts";
import { type BenchShape, runMatrix } from "../bench/matrix.ts";
import { type Backend, type KernelResult, measureKernels } from "../bench/measure.ts";
import { benchKernels } from "../bench/kernel_table.ts";
import { adapterInfo, ATTENTION_HEAVY, DECODE_POSITIONS, rooflineLines } from "../bench/shared.ts";
import { cpuRoofline, gpuRoofline, type Roofline } from "../bench/probes.ts";
import {
  type BenchResults,
  computeSpeedups,
  type MachineInfo,
  RESULTS_SCHEMA,
} from "../bench/report/report.ts";

/** Progress lines while a task runs. */
export type Progress = (line: string) => void;

/** The adapter a page ran on. */
export interface PageAdapter {
  /** What the adapter says it is, e.g. "vendor google, swiftshader". */
  description: string;
  /** Optional features enabled on the device (e.g. "subgroups"), sorted. */
  features: string[];
  /** The browser, from its user agent (e.g. "Chrome/156.0.0.0"). */
  browser: string;
  /** The adapter's subgroup sizes, where it reports them. */
  subgroupSizes?: SubgroupSizes;
}

/** What the conformance task reports. */
export interface ConformanceReport {
  /** Always "conformance". */
  task: "conformance";
  /** The adapter. */
  adapter: PageAdapter;
  /** The table `deno task conformance` prints, with this adapter. */
  table: string;
  /** Cases that passed. */
  passed: number;
  /** Variants this adapter cannot run (a missing feature, a shape they do not serve), with why. */
  skipped: string[];
  /** Cases that failed, as "kernel variant shape: why". */
  failures: string[];
}

/** What the kernel bench reports. */
export interface KernelBenchReport {
  /** Always "bench". */
  task: "bench";
  /** The adapter. */
  adapter: PageAdapter;
  /** Samples per kernel and probe, batch lengths and probe size, as `deno task bench` uses. */
  settings: { reps: number; minBatchMs: Record<Backend, number>; probeBytes: number };
  /** Each backend's measured ceilings (read stream, copy, compute, per-dispatch cost). */
  rooflines: Partial<Record<Backend, Roofline>>;
  /** Each kernel's timing and throughput. */
  kernels: KernelResult[];
}

/** What the decode task reports. */
export interface DecodeReport {
  /** Always "decode". */
  task: "decode";
  /** The adapter. */
  adapter: PageAdapter;
  /** The prompt's token ids (BOS first). */
  promptTokens: number[];
  /** The generated ids. */
  tokens: number[];
  /** Prompt and continuation as text. */
  text: string;
  /** Prompt tokens per second. */
  prefillTokensPerSecond: number;
  /** Generated tokens per second after the first. */
  decodeTokensPerSecond: number;
  /** The projection variant every decode projection ran, when one was asked for. */
  projection?: string;
}

/** What the decode-step task reports. */
export interface StepReport {
  /** Always "step". */
  task: "step";
  /** The adapter. */
  adapter: PageAdapter;
  /** The device's limits that the model's sizes meet (WebGPU's defaults under `--limits default`). */
  limits: Record<string, number>;
  /** The shape: its preset, layers kept and weight format. */
  shape: string;
  /** Bytes of the largest weight matrix (the classifier's). */
  largestMatrixBytes: number;
  /** Dispatches one decode step records. */
  dispatchesPerToken: number;
  /** Each position's logits against the CPU reference's (computed in the page). */
  positions: { position: number; token: number; nmse: number; firstNonFinite: number }[];
}

/** What the user page ran and shows (each part when ticked). */
export interface PageReport {
  /** Always "page". */
  task: "page";
  /** The adapter. */
  adapter: PageAdapter;
  /** Conformance. */
  conformance?: ConformanceReport;
  /** The kernel and decoder bench: the `results.json` the page offers. */
  results?: BenchResults;
  /** The decode. */
  decode?: DecodeReport;
  /** What stopped the run, if something did. */
  error?: string;
}

/** Any task's report, as the page posts it. */
export type TaskReport =
  | ConformanceReport
  | KernelBenchReport
  | DecodeReport
  | StepReport
  | PageReport;

/**
 * Describes the device's adapter for reports: its description, features and the browser.
 *
 * @example
 * ```ts
 * import { describeAdapter } from "./tasks.ts";
 * const adapter = describeAdapter("vendor google, swiftshader", ["subgroups"], "Mozilla/5.0 Chrome/156.0.0.0");
 * if (adapter.browser !== "Chrome/156.0.0.0") throw new Error("wrong");
 * ```
 */
export function describeAdapter(
  description: string,
  features: Iterable<string>,
  userAgent: string,
  subgroupSizes?: SubgroupSizes,
): PageAdapter {
  const browser = /(?:HeadlessChrome|Chrome|Firefox|Version)\/[\d.]+/.exec(userAgent)?.[0] ??
    userAgent;
  return {
    description,
    features: [...features].sort(),
    browser,
    ...(subgroupSizes ? { subgroupSizes } : {}),
  };
}

/** The adapter line of tables: description, browser and the features kernels may use. */
function adapterLine(adapter: PageAdapter): string {
  const notable = adapter.features.filter((f) =>
    ["subgroups", "subgroup-size-control", "shader-f16", "timestamp-query"].includes(f)
  );
  const sizes = adapter.subgroupSizes;
  return `${adapter.description} (${adapter.browser}${
    notable.length ? `; features: ${notable.join(", ")}` : ""
  }${sizes ? `; subgroup sizes ${sizes.min}-${sizes.max}` : ""})`;
}

/**
 * One case per kernel and variant: the middle one of those the variant runs on this device
 * (past the degenerate 1-element sizes), so every kernel's WGSL is compiled and checked once.
 */
function oneOfEachVariant(cases: readonly ConformanceCase[], gpu: Gpu): ConformanceCase[] {
  const groups = Map.groupBy(cases, (c) => `${c.kernel}|${c.variant}`);
  return [...groups.values()].map((group) => {
    const runnable = group.filter((c) => !c.unsupported(gpu));
    const pool = runnable.length ? runnable : group;
    return pool[Math.floor(pool.length / 2)];
  });
}

/**
 * Runs every conformance case (`quick`: one per kernel and variant; `variant`: only that
 * variant's) on `gpu` and formats the same table as `deno task conformance`.
 *
 * @example
 * ```ts ignore
 * import { requestGpu } from "../gpu/device.ts";
 * import { describeAdapter, pageConformance } from "./tasks.ts";
 * const gpu = await requestGpu();
 * const report = await pageConformance(gpu, describeAdapter(gpu.adapterDescription, [], ""));
 * console.log(report.table);
 * ```
 */
export async function pageConformance(
  gpu: Gpu,
  adapter: PageAdapter,
  options: { quick?: boolean; variant?: string } = {},
  progress: Progress = () => {},
): Promise<ConformanceReport> {
  const all = conformanceCases().filter((c) =>
    options.variant === undefined || c.variant === options.variant
  );
  if (all.length === 0) throw new Error(`variant: no conformance case of "${options.variant}"`);
  const cases = options.quick ? oneOfEachVariant(all, gpu) : all;
  progress(`running ${cases.length} kernel cases on ${adapterLine(adapter)}`);
  const results: ConformanceResult[] = await runConformance(gpu, cases, (r) => {
    if (!r.passed && !r.skipped) {
      progress(`FAIL ${r.kernel} ${r.variant} ${r.shape}${r.error ? `: ${r.error}` : ""}`);
    }
  });
  return conformanceReport(results, adapter);
}

/** The report of judged cases: the table under the adapter line, passes, skips, failures. */
function conformanceReport(
  results: readonly ConformanceResult[],
  adapter: PageAdapter,
): ConformanceReport {
  const ran = results.filter((r) => !r.skipped);
  return {
    task: "conformance",
    adapter,
    table: formatConformanceTable(results, adapterLine(adapter)),
    passed: ran.filter((r) => r.passed).length,
    skipped: results.filter((r) => r.skipped).map((r) =>
      `${r.kernel} ${r.variant} ${r.shape}: ${r.skipped}`
    ),
    failures: ran.filter((r) => !r.passed).map((r) =>
      `${r.kernel} ${r.variant} ${r.shape}: ${
        r.error ??
          `NMSE ${r.nmse.toExponential(2)}, max abs ${r.maxAbsError.toExponential(2)}, guards ${
            r.guardsIntact ? "intact" : "broken"
          }`
      }`
    ),
  };
}

/**
 * Checks kernels written outside this project (a `--kernel` module's `kernels`) by their
 * families' references, shapes and bounds: the table `deno task conformance --kernel` prints,
 * with this adapter (and its subgroup sizes) in the header.
 *
 * @example
 * ```ts ignore
 * import { requestGpu } from "../gpu/device.ts";
 * import { describeAdapter, pageKernelConformance } from "./tasks.ts";
 * import { kernels } from "../examples/kernels/rms_norm.ts";
 * const gpu = await requestGpu();
 * const adapter = describeAdapter(gpu.adapterDescription, gpu.features, "", gpu.subgroupSizes);
 * console.log((await pageKernelConformance(gpu, adapter, kernels)).table);
 * ```
 */
export async function pageKernelConformance(
  gpu: Gpu,
  adapter: PageAdapter,
  kernels: readonly ForeignKernel[],
  progress: Progress = () => {},
): Promise<ConformanceReport> {
  progress(`checking ${kernels.length} kernel(s) on ${adapterLine(adapter)}`);
  const { results } = await checkKernels(kernels, {
    gpu,
    onResult: (r) => {
      if (!r.passed && !r.skipped) {
        progress(`FAIL ${r.kernel} ${r.variant} ${r.shape}${r.error ? `: ${r.error}` : ""}`);
      }
    },
  });
  return conformanceReport(results, adapter);
}

/** The page's working set for the bandwidth probes: browsers do not tell the cache sizes. */
const PROBE_BYTES = 64 << 20;

/**
 * Measures the rooflines and every kernel of the benchmark's registry, with the settings of
 * `deno task bench` (samples, batch lengths), on WebGPU and (unless `webgpuOnly`) on the CPU
 * reference in the same JavaScript engine.
 *
 * @example
 * ```ts ignore
 * import { requestGpu } from "../gpu/device.ts";
 * import { describeAdapter, pageKernelBench } from "./tasks.ts";
 * const gpu = await requestGpu();
 * const report = await pageKernelBench(gpu, describeAdapter(gpu.adapterDescription, [], ""), { quick: true });
 * console.log(report.kernels.length);
 * ```
 */
export async function pageKernelBench(
  gpu: Gpu | undefined,
  adapter: PageAdapter,
  options: { quick: boolean; webgpuOnly?: boolean; cpuOnly?: boolean },
  progress: Progress = () => {},
): Promise<KernelBenchReport> {
  const { quick } = options;
  const backends: Backend[] = options.cpuOnly || !gpu
    ? ["cpu"]
    : options.webgpuOnly
    ? ["webgpu"]
    : ["cpu", "webgpu"];
  const reps = quick ? 3 : 5;
  const timestamps = gpu?.device.features.has("timestamp-query") ?? false;
  // Without GPU timestamps a batch must outlast the runtime's completion polling.
  const minBatchMs: Record<Backend, number> = {
    cpu: quick ? 20 : 100,
    webgpu: timestamps ? (quick ? 20 : 100) : (quick ? 200 : 1000),
  };
  const probe = { reps, minBatchMs: minBatchMs.cpu, probeBytes: PROBE_BYTES };
  const rooflines: Partial<Record<Backend, Roofline>> = {};
  if (backends.includes("cpu")) rooflines.cpu = await cpuRoofline(probe);
  if (gpu && backends.includes("webgpu")) {
    rooflines.webgpu = await gpuRoofline(gpu, { ...probe, minBatchMs: minBatchMs.webgpu });
  }
  for (const line of rooflineLines(rooflines)) progress(line);
  const kernels = await measureKernels(
    benchKernels(quick),
    // browsers do not tell the cache sizes: 0 is "unknown" to the cache flags
    { backends, gpu, reps, minBatchMs, rooflines, llcBytes: 0 },
    progress,
  );
  return {
    task: "bench",
    adapter,
    settings: { reps, minBatchMs, probeBytes: PROBE_BYTES },
    rooflines,
    kernels,
  };
}

/** Inputs of {@linkcode pageDecode}. */
export interface DecodeInput {
  /** A llama2.c checkpoint's bytes. */
  model: Uint8Array;
  /** Its `tokenizer.bin`'s bytes. */
  tokenizer: Uint8Array;
  /** The prompt. */
  prompt: string;
  /** Tokens to generate (capped at the model's context). */
  steps: number;
  /**
   * Run the fused decode step with this projection variant everywhere (e.g. `subgroup64`,
   * which no default selects); the adapter's defaults when absent.
   */
  projection?: string;
}

/**
 * Greedy decoding on WebGPU of a checkpoint given as bytes, GPU-resident.
 *
 * @example
 * ```ts ignore
 * import { requestGpu } from "../gpu/device.ts";
 * import { describeAdapter, pageDecode } from "./tasks.ts";
 * const gpu = await requestGpu();
 * const [model, tokenizer] = await Promise.all(
 *   ["stories260K.bin", "tok512.bin"].map(async (f) => new Uint8Array(await (await fetch(f)).arrayBuffer())),
 * );
 * const report = await pageDecode(gpu, describeAdapter(gpu.adapterDescription, [], ""), {
 *   model, tokenizer, prompt: "Once upon a time", steps: 100,
 * });
 * console.log(report.text);
 * ```
 */
export async function pageDecode(
  gpu: Gpu,
  adapter: PageAdapter,
  input: DecodeInput,
  progress: Progress = () => {},
): Promise<DecodeReport> {
  const { config, weights } = parseCheckpoint(input.model, "model");
  const tokenizer = Tokenizer.parse(input.tokenizer, "tokenizer", config.vocabSize);
  const promptTokens = tokenizer.encode(input.prompt);
  if (promptTokens.length >= config.maxSeqLen) {
    throw new Error(
      `prompt: expected fewer than ${config.maxSeqLen} tokens, got ${promptTokens.length}`,
    );
  }
  const steps = Math.min(input.steps, config.maxSeqLen - promptTokens.length);
  progress(
    `decoding ${steps} tokens greedily: dim ${config.dim}, ${config.nLayers} layers, ` +
      `${config.nHeads}/${config.nKvHeads} heads, vocabulary ${config.vocabSize}`,
  );
  const tuning = input.projection === undefined
    ? undefined
    : projectionTuning(gpu.adapter, config, input.projection, "browser");
  const decoder = await GpuDecoder.create(gpu, config, weights, { tuning });
  try {
    const result = await generate(decoder, promptTokens, { steps, temperature: 0 });
    return {
      task: "decode",
      adapter,
      promptTokens,
      tokens: result.tokens,
      text: tokenizer.decode([...promptTokens, ...result.tokens]),
      prefillTokensPerSecond: result.prefillTokensPerSecond,
      decodeTokensPerSecond: result.decodeTokensPerSecond,
      projection: input.projection,
    };
  } finally {
    decoder.destroy();
  }
}

/** The limits a decoder's sizes meet, as reported by {@linkcode pageDecodeStep}. */
const STEP_LIMITS = [
  "maxStorageBufferBindingSize",
  "maxBufferSize",
  "maxComputeWorkgroupStorageSize",
  "maxComputeInvocationsPerWorkgroup",
  "maxStorageBuffersPerShaderStage",
] as const;

/**
 * Two decode steps of a TinyLlama-1.1B-shaped model (1 of its 22 layers: dim 2048, hidden 5632,
 * 32/4 heads; f16 weights, the 32000x2048 classifier 131 MB) on the page's device, each
 * position's logits against the CPU reference's computed in the page. Under WebGPU's default
 * limits (128 MiB per binding) the classifier must split into row blocks: the check that every
 * decoder path works there.
 *
 * @example
 * ```ts ignore
 * import { requestGpu } from "../gpu/device.ts";
 * import { describeAdapter, pageDecodeStep } from "./tasks.ts";
 * const gpu = await requestGpu({ limits: "default" });
 * const report = await pageDecodeStep(gpu, describeAdapter(gpu.adapterDescription, [], ""));
 * console.log(report.positions);
 * ```
 */
export async function pageDecodeStep(
  gpu: Gpu,
  adapter: PageAdapter,
  progress: Progress = () => {},
): Promise<StepReport> {
  const config = makeConfig({ ...preset("TinyLlama-1.1B"), nLayers: 1, maxSeqLen: 8 });
  progress("drawing f16 weights of a TinyLlama-1.1B-shaped layer and its 32000x2048 tables");
  const weights = tabledF16Weights(config, 3);
  const decoder = await GpuDecoder.create(gpu, config, weights);
  try {
    const cpu = new CpuDecoder(config, weights);
    const positions: StepReport["positions"] = [];
    for (const [position, token] of [1, 29].entries()) {
      progress(`position ${position}: token ${token} on WebGPU and on the CPU reference`);
      const stats = compare(
        await decoder.forward(token, position),
        cpu.forwardSync(token, position),
      );
      positions.push({ position, token, nmse: stats.nmse, firstNonFinite: stats.firstNonFinite });
    }
    return {
      task: "step",
      adapter,
      limits: Object.fromEntries(STEP_LIMITS.map((name) => [name, gpu.limits[name]])),
      shape: "TinyLlama-1.1B, 1 of 22 layers, f16 weights",
      largestMatrixBytes: weights.classifier.bytes.byteLength,
      dispatchesPerToken: await decoder.dispatchesPerToken(),
      positions,
    };
  } finally {
    decoder.destroy();
  }
}

/**
 * The page's whole benchmark, in the schema of `deno task bench`'s `results.json`: the kernel
 * report's rooflines and kernels plus the decoder matrix (quick: attention-heavy and stories260K
 * at contexts 16 and 32; full: attention-heavy and stories15M from 16 to 1024), with the
 * settings `deno task bench` uses.
 *
 * @example
 * ```ts ignore
 * import { requestGpu } from "../gpu/device.ts";
 * import { describeAdapter, pageBenchResults, pageKernelBench } from "./tasks.ts";
 * const gpu = await requestGpu();
 * const adapter = describeAdapter(gpu.adapterDescription, [], navigator.userAgent);
 * const kernels = await pageKernelBench(gpu, adapter, { quick: true });
 * const results = await pageBenchResults(gpu, kernels, { quick: true, machine: { cpu: "?", cores: 1, memoryGiB: 0, caches: [], llcBytes: 0, os: "?", deno: "-", v8: "-" } });
 * console.log(JSON.stringify(results));
 * ```
 */
export async function pageBenchResults(
  gpu: Gpu | undefined,
  kernelReport: KernelBenchReport,
  options: {
    quick: boolean;
    machine: MachineInfo;
    /** Other shapes and contexts than the defaults. */
    matrix?: { shapes: BenchShape[]; contexts: number[] };
  },
  progress: Progress = () => {},
): Promise<BenchResults> {
  const started = performance.now();
  const { quick } = options;
  const { reps, minBatchMs, probeBytes } = kernelReport.settings;
  const backends = Object.keys(kernelReport.rooflines) as Backend[];
  // as `deno task bench`: attention-heavy first, so the time budget never cuts it
  const shapes = options.matrix?.shapes ?? [
    { name: "attention-heavy", config: ATTENTION_HEAVY },
    quick
      ? { name: "stories260K", config: preset("stories260K") }
      : { name: "stories15M", config: preset("stories15M") },
  ];
  const contexts = options.matrix?.contexts ??
    (quick ? [16, 32] : [16, 32, 64, 128, 256, 512, 1024]);
  const cellBudgetS = quick ? 3 : 8;
  // the time budget of `deno task bench`: no decoder cell starts past it
  const maxMinutes = quick ? 5 : 14;
  const { cells, rejected, checks, skipped } = await runMatrix({
    shapes,
    backends,
    contexts,
    cellBudgetS,
    decodePositions: DECODE_POSITIONS,
    reps,
    minBatchMs,
    rooflines: kernelReport.rooflines,
    llcBytes: options.machine.llcBytes,
    quick,
    gpu,
    deadline: started + maxMinutes * 60_000,
  }, progress);
  return {
    schema: RESULTS_SCHEMA,
    date: new Date().toISOString(),
    quick,
    elapsedS: (performance.now() - started) / 1000,
    settings: {
      reps,
      contexts,
      decodePositions: DECODE_POSITIONS,
      cellBudgetS,
      maxMinutes,
      minBatchMs,
      probeBytes,
    },
    machine: { ...options.machine, ...(gpu ? { adapter: adapterInfo(gpu) } : {}) },
    rooflines: kernelReport.rooflines,
    kernels: kernelReport.kernels,
    cells,
    checks,
    rejected,
    skipped,
    speedups: computeSpeedups(cells),
  };
}
