/**
 * `deno task bench`: the head-to-head benchmark. Each backend's measured roofline (read
 * stream, copy, peak GFLOP/s, per-dispatch cost), kernels against it, then the decoder matrix
 * (KV cache vs recompute, MHA vs GQA vs MQA, prefill vs decode, CPU vs WebGPU, contexts
 * doubling), every cell repeated with its variants interleaved, written as JSON, Markdown and
 * SVG charts. Seeded random weights at real shapes: no download.
 *
 * New axes plug in as modules that add kernel cases (registry entries, bench/kernel_table.ts),
 * matrix cells or report sections to the results: the batch axis (`batch.ts`) times batched
 * decode steps by batch size, attention variant and KV-cache layout.
 *
 * @module
 */
import { parseFlags, UsageError } from "../cli/flags.ts";
import { type GpuLimitsChoice, parseLimitsChoice, requestGpu } from "../gpu/device.ts";
import { type LlamaConfig, makeConfig, preset, PRESETS } from "../model/config.ts";
import { forwardCost } from "../model/cost.ts";
import { checkWeightsFitMemory } from "../model/memory.ts";
import { runBatchAxis } from "./batch.ts";
import { ATTENTION_HEAVY, DECODE_POSITIONS, rooflineLines } from "./shared.ts";
import { runLlama2c } from "./llama2c.ts";
import { locateLlamaCpp, runLlamaCpp, writePeerGguf } from "./llama_cpp.ts";
import { measureCpuCeilings, streamCeilingAt } from "./ceilings.ts";
import {
  cpuMatrixRate,
  loadPerCore,
  matmulRowsPair,
  measureSyncUs,
  predictCell,
  timeModelParams,
} from "./time_model.ts";
import { measureVariants } from "./variants.ts";
import { formatVariantsMarkdown } from "./report/variants.ts";
import { describeMachine } from "./machine.ts";
import { attentionName, type BenchShape, type DecoderCell, runMatrix } from "./matrix.ts";
import {
  type PrecisionCell,
  type PrecisionShape,
  realModelShape,
  runPrecisionAxis,
} from "./precision.ts";
import { formatPrecisionMarkdown, precisionChart } from "./report/precision.ts";
import { precisionStreams, stepTerms } from "./precision_cells.ts";
import { type Backend, measureKernels, raiseReadCeiling } from "./measure.ts";
import { benchKernels } from "./kernel_table.ts";
import type { AnyKernelPair } from "../gpu/pair.ts";
import { KERNEL_PAIRS } from "../gpu/pairs.ts";
import { cpuRoofline, gpuRoofline, type Roofline } from "./probes.ts";
import {
  type BenchResults,
  chartFiles,
  computeSpeedups,
  formatMarkdown,
  formatText,
  parseResults,
  type PeerRow,
  RESULTS_SCHEMA,
} from "./report/report.ts";
import { formatReadmeSection, readmeChartFiles } from "./report/readme.ts";
import { runAttentionAblation } from "./ablation.ts";
import { measureSyncCosts } from "./sync_cost.ts";
import { type Spread, summarize } from "../gpu/timing.ts";
import { TENSOR_FORMATS } from "../reference/quantize.ts";

/** The attention-heavy shape (defined in `shared.ts`, which the browser page shares). */
export { ATTENTION_HEAVY };

const SHAPES: Record<string, LlamaConfig> = { ...PRESETS, "attention-heavy": ATTENTION_HEAVY };

/** Contexts of the attention-only ablation (quick: the two ends). */
export function ablationContexts(quick: boolean): number[] {
  return quick ? [256, 4096] : [16, 64, 256, 1024, 2048, 4096];
}

/** The kernel families the calibrated time model reads from the kernel table. */
export const TIME_MODEL_FAMILIES: readonly string[] = [
  "matmul",
  "attention",
  "rmsNorm",
  "add",
  "siluMul",
  "rope",
];

/** The benchmark's help text. */
export const BENCH_HELP: string = `Usage: deno task bench [options]

  --quick               a subset (MHA, GQA-2, MQA): about 80 s on 2 idle cores
  --backend B           cpu, webgpu or both (default both)
  --preset NAMES        comma-separated shapes (default attention-heavy,stories15M;
                        quick: attention-heavy,stories260K; the first runs first); known: ${
  Object.keys(SHAPES).join(", ")
}
  --contexts SPEC       context lengths: "16..1024" doubles from 16 to 1024 (default; quick 16), or a
                        list "16,64,256"
  --reps N              samples per cell, kernel and probe (default 5; quick 3)
  --cell-budget S       skip a cell (and its larger contexts) whose samples are predicted to take
                        longer than S seconds in all (default 8; quick 3; recompute cells: a
                        quarter of it)
  --max-minutes M       start no decoder cell after M minutes (default 14; quick 5); cells
                        left out are listed in the report
  --probe-mib M         working set of the single-thread bandwidth probes (default: 4x the
                        measured cache knee, at least 64 MiB)
  --sweep-mib M         largest working set of the all-core cache sweep (default 2048, quick
                        512; capped at a quarter of free memory)
  --out DIR             where results go (default bench/results)
  --llama2c PEERS       also run llama2.c's \`run\` on the same shapes, repeated like every cell:
                        comma-separated LABEL=PATH[@THREADS] (THREADS sets OMP_NUM_THREADS),
                        e.g. "1-thread=./runomp@1,2-threads=./runomp@2" (one build, so the
                        flags are equal); timed from outside: wall(N tokens) - wall(1 token)
  --llama-cpp PATH      llama.cpp for the llama.cpp peer rows: a llama-bench binary, or a folder
                        with node-llama-cpp installed (default: ~/.cache/llama-kernels/llama-cpp;
                        without it the rows say how to install it)
  --no-llama-cpp        skip the llama.cpp peer rows
  --all-variants        time every variant of every kernel in the kernel table (default: each
                        family's default; tuning times the variants at the model's shapes)
  --kernels NAMES       time only these kernel families in the kernel table, comma-separated
                        (e.g. "softmax,argmax"; an unknown name lists them all); the
                        families the time model reads (${TIME_MODEL_FAMILIES.join(", ")})
                        are always timed
  --from FILE           measure nothing: rewrite the report and charts from an earlier results.json
                        (schema ${RESULTS_SCHEMA}; older schemas are refused with the reason)
  --precision-only      run only the precision axis (weights x KV-cache formats), on every shape
                        and the shipped stories260K over models/eval_text.txt
  --no-precision        skip the precision axis (which otherwise runs on the first shape and
                        stories260K)
  --limits L            adapter (default) or default: request only WebGPU's default limits
  --help                this text

After the decoder matrix, the batch axis (on attention-heavy, or the first shape) times batched
decode steps: b = 1..32 sequences (quick: 1, 4) at contexts 256 and 1024 (quick: 256), MHA, GQA
and MQA on a paged KV cache, and the three KV-cache layouts at one batch size.

Before the decoder matrix, the attention ablation times one token's attention alone (MHA, GQA,
MQA at 8 query heads of 64) at contexts ${ablationContexts(false).join(", ")} (quick: ${
  ablationContexts(true).join(", ")
}), and on WebGPU the wall cost of one submit and one read-back is measured.

Before the kernels, the CPU's ceilings on every core (Workers, WebAssembly SIMD): read, copy and
multiply-add peaks and a read sweep over working sets of 1 MiB..2 GiB whose knee marks "(LLC)"
cells; every cell and peer is then checked against the ceiling it is compared with.

Cached decode samples are one call decoding ${DECODE_POSITIONS} tokens (WebGPU: GPU-resident
generate); every ms/token and tokens/s is wall-clock, GPU-timestamp time beside it.

Writes DIR/results.json (every raw sample, versioned), DIR/report.md, SVG charts, and
DIR/README.md (the project README's "Headline result" is copied from it).`;

/** Where the benchmark writes (replaceable in tests). */
export interface BenchIo {
  /** The summary and help. */
  print(text: string): void;
  /** Progress lines while running. */
  progress(line: string): void;
  /** Writes a result file. */
  writeFile(path: string, text: string): Promise<void>;
  /** Reads a file (`--from`). */
  readFile(path: string): Promise<string>;
}

/** Parses "16..1024" (doubling) or "16,64,256". */
export function parseContexts(spec: string): number[] {
  const range = /^(\d+)\.\.(\d+)$/.exec(spec.trim());
  let contexts: number[];
  if (range) {
    const [lo, hi] = [Number(range[1]), Number(range[2])];
    contexts = [];
    for (let c = lo; c <= hi && c > 0; c *= 2) contexts.push(c);
  } else {
    contexts = spec.split(",").map((s) => Number(s.trim()));
  }
  if (contexts.length === 0 || contexts.some((c) => !Number.isInteger(c) || c < 1)) {
    throw new UsageError(
      `--contexts: expected "LO..HI" or a list of positive integers, got "${spec}"`,
    );
  }
  return [...new Set(contexts)].sort((a, b) => a - b);
}

/**
 * Runs the benchmark with `args`; returns the exit code (0 ok, 1 failure or a rejected
 * variant, 2 bad usage).
 *
 * @example
 * ```ts ignore
 * Deno.exit(await benchMain(Deno.args));
 * ```
 */
export async function benchMain(args: string[], io: BenchIo = denoIo()): Promise<number> {
  try {
    return await run(args, io);
  } catch (error) {
    io.print(
      `bench: ${error instanceof Error ? error.message : error}${
        error instanceof UsageError ? " (see --help)" : ""
      }`,
    );
    return error instanceof UsageError ? 2 : 1;
  }
}

function denoIo(): BenchIo {
  return {
    print: (text) => console.log(text),
    progress: (line) => console.error(`[${new Date().toISOString().slice(11, 19)}] ${line}`),
    readFile: (path) => Deno.readTextFile(path),
    async writeFile(path, text) {
      await Deno.mkdir(path.slice(0, path.lastIndexOf("/")) || ".", { recursive: true });
      await Deno.writeTextFile(path, text);
    },
  };
}

/** One `--llama2c` entry: LABEL=PATH[@THREADS]. */
export interface PeerSpec {
  /** Label in tables. */
  label: string;
  /** Program path. */
  program: string;
  /** OMP_NUM_THREADS to run it with; undefined inherits the environment's. */
  threads?: number;
}

/**
 * Parses `--llama2c`: comma-separated `LABEL=PATH[@THREADS]` or plain paths (labelled by
 * file name).
 *
 * @example
 * ```ts
 * import { parsePeers } from "./main.ts";
 * const peers = parsePeers("one=/opt/run,omp=/opt/runomp@4");
 * if (peers[1].threads !== 4 || peers[0].program !== "/opt/run") throw new Error("wrong");
 * ```
 */
export function parsePeers(spec: string): PeerSpec[] {
  return spec.split(",").map((entry) => {
    const match = /^(?:([^=]+)=)?(.+?)(?:@(\d+))?$/.exec(entry.trim());
    if (!match || !match[2]) {
      throw new UsageError(`--llama2c: expected LABEL=PATH[@THREADS], got "${entry}"`);
    }
    const program = match[2];
    const threads = match[3] !== undefined ? Number(match[3]) : undefined;
    if (threads !== undefined && threads < 1) {
      throw new UsageError(`--llama2c: expected THREADS >= 1, got "${entry}"`);
    }
    return { label: match[1] ?? program.split("/").pop()!, program, threads };
  });
}

/**
 * Parses `--kernels`: comma-separated kernel families, each known to the registry; the
 * families the time model reads are always included.
 *
 * @example
 * ```ts
 * import { kernelFamilies } from "./main.ts";
 * const families = kernelFamilies("softmax").map((p) => p.family);
 * if (!families.includes("softmax") || !families.includes("matmul")) throw new Error("wrong");
 * ```
 */
export function kernelFamilies(spec: string): AnyKernelPair[] {
  const known = new Set(KERNEL_PAIRS.map((p) => p.family));
  const names = spec.split(",").map((name) => name.trim());
  for (const name of names) {
    if (!known.has(name)) {
      throw new UsageError(
        `--kernels: unknown kernel family "${name}"; known: ${[...known].join(", ")}`,
      );
    }
  }
  const wanted = new Set([...names, ...TIME_MODEL_FAMILIES]);
  return KERNEL_PAIRS.filter((p) => wanted.has(p.family));
}

function positiveInteger(flag: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) {
    throw new UsageError(`--${flag}: expected an integer >= 1, got "${value}"`);
  }
  return n;
}

async function run(args: string[], io: BenchIo): Promise<number> {
  const values = parseFlags(args, {
    quick: { type: "boolean" },
    backend: { type: "string" },
    preset: { type: "string" },
    contexts: { type: "string" },
    reps: { type: "string" },
    "cell-budget": { type: "string" },
    "probe-mib": { type: "string" },
    "sweep-mib": { type: "string" },
    "max-minutes": { type: "string" },
    out: { type: "string" },
    llama2c: { type: "string" },
    "llama-cpp": { type: "string" },
    "no-llama-cpp": { type: "boolean" },
    "all-variants": { type: "boolean" },
    kernels: { type: "string" },
    from: { type: "string" },
    "precision-only": { type: "boolean" },
    "no-precision": { type: "boolean" },
    limits: { type: "string" },
    help: { type: "boolean" },
  });
  if (values.help) {
    io.print(BENCH_HELP);
    return 0;
  }
  const quick = values.quick ?? false;
  const backendFlag = values.backend ?? "both";
  if (!["cpu", "webgpu", "both"].includes(backendFlag)) {
    throw new UsageError(`--backend: expected cpu, webgpu or both, got "${backendFlag}"`);
  }
  const backends: Backend[] = backendFlag === "both" ? ["cpu", "webgpu"] : [backendFlag as Backend];
  const shapeNames = (values.preset ??
    (quick ? "attention-heavy,stories260K" : "attention-heavy,stories15M")).split(",");
  for (const name of shapeNames) {
    if (!SHAPES[name]) {
      throw new UsageError(
        `--preset: unknown shape "${name}"; known: ${Object.keys(SHAPES).join(", ")}`,
      );
    }
  }
  for (const name of shapeNames) checkWeightsFitMemory(SHAPES[name], `--preset ${name}`);
  const contexts = parseContexts(values.contexts ?? (quick ? "16" : "16..1024"));
  const reps = positiveInteger("reps", values.reps, quick ? 3 : 5);
  const cellBudgetS = Number(values["cell-budget"] ?? (quick ? 3 : 8));
  if (!(cellBudgetS > 0)) {
    throw new UsageError(`--cell-budget: expected seconds > 0, got "${values["cell-budget"]}"`);
  }
  const maxMinutes = Number(values["max-minutes"] ?? (quick ? 5 : 14));
  if (!(maxMinutes > 0)) {
    throw new UsageError(`--max-minutes: expected minutes > 0, got "${values["max-minutes"]}"`);
  }
  const probeMib = values["probe-mib"] === undefined
    ? undefined
    : positiveInteger("probe-mib", values["probe-mib"], 64);
  const sweepMib = values["sweep-mib"] === undefined
    ? undefined
    : positiveInteger("sweep-mib", values["sweep-mib"], 2048);
  const peers = values.llama2c ? parsePeers(values.llama2c) : [];
  const kernelPairs = values.kernels === undefined ? KERNEL_PAIRS : kernelFamilies(values.kernels);
  const out = (values.out ?? "bench/results").replace(/\/$/, "");
  if (values.from) {
    await writeResults(parseResults(await io.readFile(values.from), values.from), out, io);
    return 0;
  }

  const started = performance.now();
  const loadAtStart = loadPerCore();
  let limits: GpuLimitsChoice;
  try {
    limits = parseLimitsChoice(values.limits);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const gpu = backends.includes("webgpu") ? await requestGpu({ limits }) : undefined;
  // The precision axis (bench/precision.ts): its own files and the README's targets table.
  // `settle` sees the measured cells before they are written (the ceiling raised by the steps).
  const precision = async (
    all: boolean,
    rooflines: Partial<Record<Backend, Roofline>> = {},
    settle: (cells: PrecisionCell[]) => void = () => {},
  ): Promise<PrecisionCell[] | undefined> => {
    if (values["no-precision"]) return undefined;
    const cells = await runPrecisionAxis({
      shapes: [...precisionShapes(shapeNames, all), await realModelShape()],
      backends,
      gpu,
      quick,
      progress: io.progress,
      // the shared read ceiling: the probe's, or a faster kernel's beyond the cache
      readGbPerS: Object.fromEntries(
        Object.entries(rooflines).map(([backend, r]) => [backend, r!.readGbPerS.median]),
      ),
      dispatchUs: Object.fromEntries(
        Object.entries(rooflines).map(([backend, r]) => [backend, r!.dispatchUs.median]),
      ),
    });
    settle(cells);
    await io.writeFile(`${out}/precision.json`, JSON.stringify(cells, null, 2) + "\n");
    await io.writeFile(`${out}/precision.md`, formatPrecisionMarkdown(cells));
    await io.writeFile(`${out}/precision.svg`, precisionChart(cells));
    io.print(`wrote ${out}/precision.json, precision.md and precision.svg`);
    return cells;
  };
  if (values["precision-only"]) {
    try {
      await precision(true);
      return 0;
    } finally {
      gpu?.destroy();
    }
  }
  try {
    const machine = await describeMachine(gpu);
    // The peers run last: their share (llama.cpp on CPU and Vulkan, llama2.c) is kept free.
    const peerMinutes = quick ? 0 : (peers.length ? 0.5 : 0) +
      (!values["no-llama-cpp"] && typeof await locateLlamaCpp(values["llama-cpp"]) !== "string"
        ? 1.5
        : 0);
    // Every core's ceilings and the cache knee, measured (not read from /sys).
    const cpuCeilings = await measureCpuCeilings({
      quick,
      reps: quick ? 2 : 3,
      ...(sweepMib ? { maxBytes: sweepMib * 2 ** 20 } : {}),
    });
    const knee = cpuCeilings.knee.kneeBytes;
    io.progress(
      `cpu ceilings on ${cpuCeilings.threads} cores: read ${
        cpuCeilings.readGbPerS.median.toFixed(1)
      } GB/s, copy ${cpuCeilings.copyGbPerS.median.toFixed(1)} GB/s, multiply-add ${
        cpuCeilings.fmaGflopPerS.median.toFixed(1)
      } GFLOP/s; cache knee ${knee / 2 ** 20} MiB (/sys last-level: ${
        machine.llcBytes / 2 ** 20
      } MiB); ${cpuCeilings.elapsedS.toFixed(1)} s`,
    );
    // Streams at least 4x the cache knee, so the ceiling is memory, not cache.
    const probeBytes = Math.ceil((probeMib ?? Math.max(64, 4 * knee / 2 ** 20)) / 16) *
      16 * 2 ** 20;
    const timestamps = gpu?.device.features.has("timestamp-query") ?? false;
    // Without GPU timestamps a batch must outlast the runtime's completion polling (~10 ms).
    const minBatchMs: Record<Backend, number> = {
      cpu: quick ? 20 : 100,
      webgpu: timestamps ? (quick ? 20 : 100) : (quick ? 200 : 1000),
    };
    io.progress(
      `backends: ${backends.join(", ")}; shapes: ${shapeNames.join(", ")}; contexts: ${
        contexts.join(", ")
      }; ${reps} samples each; probes ${probeBytes / 2 ** 20} MiB`,
    );
    const rooflines: Partial<Record<Backend, Roofline>> = {};
    const probe = { reps, minBatchMs: minBatchMs.cpu, probeBytes };
    if (backends.includes("cpu")) rooflines.cpu = await cpuRoofline(probe);
    if (gpu) rooflines.webgpu = await gpuRoofline(gpu, { ...probe, minBatchMs: minBatchMs.webgpu });
    for (const line of rooflineLines(rooflines)) io.progress(line);
    const syncCosts = gpu
      ? await measureSyncCosts(gpu, { reps, minBatchMs: minBatchMs.cpu })
      : undefined;
    if (syncCosts) {
      io.progress(
        `webgpu: one submit ${syncCosts.submit.wallMs.median.toFixed(3)} ms, one read-back ${
          syncCosts.readBack.wallMs.median.toFixed(3)
        } ms (wall)`,
      );
    }
    // A kernel beyond the cache that outruns the read probe raises the read ceiling that the
    // kernel fractions, the time model and the precision axis's terms all share.
    const raised = raiseReadCeiling(
      rooflines,
      await measureKernels(
        benchKernels(quick, kernelPairs, values["all-variants"] ?? false),
        { backends, gpu, reps: Math.min(reps, 3), minBatchMs, rooflines, llcBytes: knee },
        io.progress,
      ),
      knee,
    );
    const kernels = raised.kernels;
    const adoptCeilings = (next: Partial<Record<Backend, Roofline>>) => {
      for (const [backend, r] of Object.entries(next) as [Backend, Roofline][]) {
        if (r.readSource && r.readSource !== rooflines[backend]?.readSource) {
          io.progress(
            `${backend} read ceiling raised from the probe's ${
              r.probeReadGbPerS!.median.toFixed(2)
            } GB/s to ${r.readGbPerS.median.toFixed(2)} GB/s: ${r.readSource}`,
          );
        }
      }
      Object.assign(rooflines, next);
    };
    adoptCeilings(raised.rooflines);
    const ablation = await runAttentionAblation({
      nHeads: ATTENTION_HEAVY.nHeads,
      headDim: ATTENTION_HEAVY.dim / ATTENTION_HEAVY.nHeads,
      contexts: ablationContexts(quick),
      backends,
      gpu,
      reps,
      minBatchMs: { cpu: minBatchMs.cpu / 2, webgpu: minBatchMs.webgpu / 2 },
      quick,
      deadline: started + maxMinutes * 60_000 / 3,
    }, io.progress);
    const shapes: BenchShape[] = shapeNames.map((name) => ({
      name,
      config: name === "attention-heavy" ? ATTENTION_HEAVY : preset(name),
    }));
    // The time model's many-row matrix rate: the matmul at each shape's feed-forward, 64 rows.
    kernels.push(
      ...await measureKernels(
        benchKernels(quick, [matmulRowsPair(shapes.map((s) => s.config), 64)]),
        { backends, gpu, reps: Math.min(reps, 3), minBatchMs, rooflines, llcBytes: knee },
        io.progress,
      ),
    );
    // The CPU's matrix rate over each model's matrices, here and again after the matrix: under
    // contention that changes over the run, their geometric mean is nearer the cells'.
    const matrixRates = () =>
      backends.includes("cpu") ? shapes.map((s) => cpuMatrixRate(s.config, quick ? 2 : 3)) : [];
    const matrixRatesBefore = matrixRates();
    // A whole decode step beyond the cache that reads faster than every kernel raises the
    // ceiling too: the kernels' fractions and the steps' terms are then taken against it.
    const precisionCells = await precision(false, rooflines, (steps) => {
      const again = raiseReadCeiling(rooflines, kernels, knee, precisionStreams(steps));
      adoptCeilings(again.rooflines);
      kernels.splice(0, kernels.length, ...again.kernels);
      for (const step of steps) {
        const r = rooflines[step.backend];
        if (r) Object.assign(step, stepTerms(step, r.readGbPerS.median, r.dispatchUs.median));
      }
    });
    // tuned first, so that the decoder matrix runs the variants chosen on this adapter
    const variants = gpu ? await measureVariants(gpu, shapes, quick, io.progress) : [];
    const { cells, rejected, checks, skipped } = await runMatrix({
      tunings: Object.fromEntries(variants.map((v) => [v.shape, v.tuning])),
      shapes,
      backends,
      contexts,
      cellBudgetS,
      decodePositions: DECODE_POSITIONS,
      reps,
      minBatchMs,
      rooflines,
      llcBytes: knee,
      quick,
      gpu,
      // the batch axis's share of the run comes after (1.5 minutes, and it stops at its own
      // deadline), then the peers'
      deadline: started + (maxMinutes - (quick ? 0.5 : 1.5) - peerMinutes) * 60_000,
    }, io.progress);
    // The batch axis on the shape the README leads with.
    const batchShape = shapes.find((s) => s.name === "attention-heavy") ?? shapes[0];
    const batch = await runBatchAxis({
      config: batchShape.config,
      shape: batchShape.name,
      backends,
      gpu,
      quick,
      reps,
      minBatchMs,
      rooflines,
      deadline: started + (maxMinutes - peerMinutes) * 60_000,
    }, io.progress);
    // The calibrated time model: parameters from the kernel table, the probes and the plans.
    const params = timeModelParams(
      kernels,
      rooflines,
      Object.fromEntries(variants.map((v) => [v.shape, v.dispatchesPerToken.fused])),
      gpu ? await measureSyncUs(gpu, 20) : 0,
      Object.fromEntries(
        matrixRates().map((after, i) => [shapes[i].name, Math.sqrt(after * matrixRatesBefore[i])]),
      ),
      [loadAtStart, loadPerCore()],
    );
    const timeModel = {
      params,
      cells: cells.filter((c) => params[c.backend]).map((c) =>
        predictCell(
          c,
          makeConfig({ ...SHAPES[c.shape], nKvHeads: c.nKvHeads }),
          params[c.backend]!,
        )
      ),
    };
    const results: BenchResults = {
      schema: RESULTS_SCHEMA,
      date: new Date().toISOString(),
      quick,
      elapsedS: (performance.now() - started) / 1000,
      settings: {
        reps,
        contexts,
        decodePositions: DECODE_POSITIONS,
        cellBudgetS,
        minBatchMs,
        probeBytes,
        maxMinutes,
      },
      machine,
      rooflines,
      cpuCeilings,
      timeModel,
      kernels,
      cells,
      checks,
      rejected,
      skipped,
      speedups: computeSpeedups(cells),
      batch,
      ablation,
      ...(syncCosts ? { syncCosts } : {}),
      ...(precisionCells ? { precision: precisionCells } : {}),
    };
    if (peers.length) results.peers = await comparePeers(peers, shapes, results, reps, io);
    if (!values["no-llama-cpp"]) {
      results.peers = [
        ...results.peers ?? [],
        ...await compareLlamaCpp(values["llama-cpp"], shapes, results, quick, reps, io),
      ];
    }
    await writeResults(results, out, io);
    if (variants.length > 0) {
      await io.writeFile(`${out}/variants.md`, formatVariantsMarkdown(variants));
      await io.writeFile(`${out}/variants.json`, JSON.stringify(variants, null, 2) + "\n");
      io.print(`wrote ${out}/variants.md and ${out}/variants.json (tuning, dispatches per token)`);
    }
    return rejected.length > 0 || batch.rejected.length > 0 || ablation.rejected.length > 0 ? 1 : 0;
  } finally {
    gpu?.destroy();
  }
}

/**
 * The precision axis's random shapes. In a full run: the first shape with every pair and the
 * accuracy over 200 positions; the other shapes with each weight format beside the f32 cache
 * and 64 positions; and TinyLlama-1.1B's widths (2 of its 22 layers: per layer and in the
 * classifier the full model's time) with the WebGPU targets' pairs, on WebGPU only, 4 tokens per
 * sample and 16 accuracy positions, which keep it near a minute. With `all` (`--precision-only`) every pair on
 * every shape. `--quick` keeps the first shape (`runPrecisionAxis` drops the rest).
 */
export function precisionShapes(shapeNames: readonly string[], all: boolean): PrecisionShape[] {
  const weightPairs = TENSOR_FORMATS.map((w) => `${w}/f32`);
  const shapes: PrecisionShape[] = shapeNames.map((name, i) => ({
    name,
    config: SHAPES[name],
    ...(all || i === 0 ? {} : { pairs: weightPairs, accuracyPositions: 64 }),
  }));
  if (!shapeNames.includes("TinyLlama-1.1B")) {
    shapes.push({
      name: "TinyLlama-1.1B (2 of 22 layers)",
      config: makeConfig({ ...preset("TinyLlama-1.1B"), nLayers: 2, maxSeqLen: 256 }),
      ...(all ? {} : { pairs: ["f32/f32", "q8_0/f32", "q4_0/f32"], backends: ["webgpu"] }),
      context: 16,
      accuracyPositions: 16,
      decodeTokens: 4,
    });
  }
  return shapes;
}

async function writeResults(results: BenchResults, out: string, io: BenchIo): Promise<void> {
  const charts = { ...chartFiles(results), ...readmeChartFiles(results) };
  await io.writeFile(`${out}/results.json`, JSON.stringify(results, null, 2) + "\n");
  await io.writeFile(`${out}/report.md`, formatMarkdown(results, Object.keys(charts)));
  await io.writeFile(`${out}/README.md`, formatReadmeSection(results));
  for (const [name, svg] of Object.entries(charts)) await io.writeFile(`${out}/${name}`, svg);
  io.print(formatText(results));
  io.print(
    `\nwrote ${out}/results.json, ${out}/report.md, ${out}/README.md and ${
      Object.keys(charts).length
    } charts`,
  );
}

async function comparePeers(
  peers: PeerSpec[],
  shapes: BenchShape[],
  results: BenchResults,
  reps: number,
  io: BenchIo,
): Promise<PeerRow[]> {
  const rows: PeerRow[] = [];
  for (const { name, config } of shapes) {
    // Long enough that start-up, subtracted by the one-token run, is a small part.
    const steps = Math.min(256, config.maxSeqLen);
    // Interleaved like every other cell: each round runs every peer once, rotated.
    const samples = new Map<PeerSpec, number[]>(peers.map((p) => [p, []]));
    const failures = new Map<PeerSpec, string>();
    const args = new Map<PeerSpec, string[]>();
    for (let rep = 0; rep < reps; rep++) {
      for (let i = 0; i < peers.length; i++) {
        const peer = peers[(i + rep) % peers.length];
        if (failures.has(peer)) continue;
        io.progress(`llama2.c ${peer.label} ${name}: ${steps} tokens, sample ${rep + 1}`);
        const env = peer.threads ? { OMP_NUM_THREADS: String(peer.threads) } : undefined;
        const result = await runLlama2c(peer.program, name, config, steps, undefined, env);
        if (result.error !== undefined) failures.set(peer, result.error);
        else samples.get(peer)!.push(result.tokensPerSecond!);
        if (result.args) args.set(peer, result.args);
      }
    }
    for (const peer of peers) {
      const list = samples.get(peer)!;
      const tokensPerSecond: Spread | undefined = list.length ? summarize(list) : undefined;
      rows.push({
        label: peer.label,
        program: peer.program,
        args: args.get(peer) ?? [],
        ompNumThreads: peer.threads !== undefined
          ? String(peer.threads)
          : (Deno.env.get("OMP_NUM_THREADS") ?? "unset"),
        shape: name,
        steps,
        ...(tokensPerSecond ? { tokensPerSecond, samples: list } : { error: failures.get(peer) }),
        ...peerContext(name, config, steps, results),
      });
    }
  }
  return rows;
}

/**
 * Our rate beside a peer's on each backend: the cached decode cell of the shape's own attention
 * (the model the peer decodes, not a GQA/MQA variant of it) nearest the peer run's mean position.
 *
 * @example
 * ```ts ignore
 * const ours = peerOurs(results.cells, "stories15M", preset("stories15M"), 128);
 * ```
 */
export function peerOurs(
  cells: readonly DecoderCell[],
  name: string,
  config: LlamaConfig,
  meanPosition: number,
): PeerRow["ours"] {
  const attention = attentionName(config.nHeads, config.nKvHeads);
  const mine: PeerRow["ours"] = {};
  for (const backend of ["cpu", "webgpu"] as const) {
    const cell = cells
      .filter((c) =>
        c.shape === name && c.backend === backend && c.cache === "kv-cache" &&
        c.attention === attention && c.phase === "decode"
      )
      .sort((a, b) =>
        Math.abs(a.meanPosition - meanPosition) - Math.abs(b.meanPosition - meanPosition)
      )[0];
    if (cell) {
      mine[backend] = { tokensPerSecond: cell.tokensPerSecond, meanPosition: cell.meanPosition };
    }
  }
  return mine;
}

/**
 * A peer row's bytes, ceilings and our own rate at the middle of its run (from position 0), from
 * our cells of the shape's own attention with the KV cache: the model the peer decodes.
 */
function peerContext(
  name: string,
  config: LlamaConfig,
  steps: number,
  results: BenchResults,
): Pick<
  PeerRow,
  | "weightBytesPerToken"
  | "kvBytesPerToken"
  | "bandwidthLimitTokensPerSecond"
  | "ceilingTokensPerSecond"
  | "ours"
> {
  const cost = forwardCost(config, { rows: 1, start: steps / 2 });
  const mine = peerOurs(results.cells, name, config, steps / 2);
  const readGbPerS = results.rooflines.cpu?.readGbPerS.median ?? NaN;
  // Every core's read bandwidth at this working set (the cache's where it fits): no program
  // decoding these bytes per token goes faster.
  const ceilingGbPerS = results.cpuCeilings
    ? streamCeilingAt(results.cpuCeilings, cost.bytes)
    : NaN;
  return {
    weightBytesPerToken: cost.weightBytes,
    kvBytesPerToken: cost.kvReadBytes + cost.kvWriteBytes,
    bandwidthLimitTokensPerSecond: readGbPerS * 1e9 / cost.bytes,
    ceilingTokensPerSecond: ceilingGbPerS * 1e9 / cost.bytes,
    ours: mine,
  };
}

/**
 * llama.cpp's decode on the same weights (an f32 GGUF the bench writes): on the CPU at one
 * thread and on every core, and on Vulkan; without llama.cpp, one row per shape saying how
 * to get it.
 */
async function compareLlamaCpp(
  flag: string | undefined,
  shapes: BenchShape[],
  results: BenchResults,
  quick: boolean,
  reps: number,
  io: BenchIo,
): Promise<PeerRow[]> {
  const where = await locateLlamaCpp(flag);
  const cores = results.cpuCeilings?.threads ?? navigator.hardwareConcurrency;
  // --quick: the one-thread CPU row only (a few seconds).
  const runs = quick ? [{ label: "llama.cpp cpu 1 thread", device: "cpu" as const, threads: 1 }] : [
    { label: "llama.cpp cpu 1 thread", device: "cpu" as const, threads: 1 },
    ...(cores > 1
      ? [{ label: `llama.cpp cpu ${cores} threads`, device: "cpu" as const, threads: cores }]
      : []),
    // Vulkan on a software device is slow: fewer tokens, and a timeout.
    { label: "llama.cpp vulkan", device: "vulkan" as const, threads: cores },
  ];
  if (quick) reps = Math.min(reps, 3);
  const rows: PeerRow[] = [];
  for (const { name, config } of shapes) {
    if (typeof where === "string") {
      rows.push({
        label: "llama.cpp",
        program: flag ?? "",
        args: [],
        ompNumThreads: "-",
        shape: name,
        steps: 0,
        error: where,
        ...peerContext(name, config, 0, results),
      });
      continue;
    }
    const dir = await Deno.makeTempDir({ prefix: "llama-cpp-peer-" });
    try {
      const model = await writePeerGguf(dir, config);
      for (const run of runs) {
        const steps = Math.min(run.device === "cpu" ? 128 : 32, config.maxSeqLen - 8);
        io.progress(`${run.label} ${name}: ${steps} tokens x ${reps}`);
        const result = await runLlamaCpp(where, {
          device: run.device,
          threads: run.threads,
          steps,
          reps: run.device === "cpu" ? reps : Math.min(reps, 3),
          timeoutMs: run.device === "cpu" ? 60_000 : 90_000,
          model,
        });
        rows.push({
          label: run.label,
          program: result.command[0],
          args: result.command.slice(1),
          ompNumThreads: String(run.threads),
          shape: name,
          steps,
          ...(result.samples
            ? { tokensPerSecond: summarize(result.samples), samples: result.samples }
            : { error: result.error }),
          ...peerContext(name, config, steps, results),
        });
      }
    } finally {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  }
  return rows;
}

if (import.meta.main) Deno.exit(await benchMain(Deno.args));
