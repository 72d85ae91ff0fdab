/**
 * `deno task bench`: the head-to-head benchmark. Kernels on the CPU reference and WebGPU
 * against each backend's copy bandwidth, then the decoder matrix (KV cache vs recompute, MHA
 * vs GQA vs MQA, prefill vs decode, CPU vs WebGPU, contexts doubling), written as JSON,
 * Markdown and SVG charts. Seeded random weights at real shapes: no download.
 *
 * @module
 */
import { formatVariantsMarkdown, measureVariants } from "./variants.ts";
import { parseFlags, UsageError } from "../model/_cli_flags.ts";
import { requestGpu } from "../gpu/device.ts";
import { type LlamaConfig, makeConfig, preset, PRESETS } from "../model/config.ts";
import { forwardCost } from "../model/cost.ts";
import { checkWeightsFitMemory } from "../model/_memory.ts";
import { runLlama2c } from "./llama2c.ts";
import { runMatrix } from "./matrix.ts";
import { type Backend, cpuCopyBandwidth, gpuCopyBandwidth, measureKernels } from "./measure.ts";
import {
  type BenchResults,
  chartFiles,
  computeSpeedups,
  formatMarkdown,
  formatText,
  type MachineInfo,
  type PeerRow,
  RESULTS_SCHEMA,
} from "./report.ts";

/**
 * A shape where attention dominates a decode step at long contexts: 8 heads of 64 features
 * (dim 512) on 4 layers with a narrow feed-forward and a small vocabulary, so the KV cache
 * outweighs the weights from about 1.5k tokens and GQA/MQA savings show in time.
 */
export const ATTENTION_HEAVY: LlamaConfig = makeConfig({
  dim: 512,
  hiddenDim: 256,
  nLayers: 4,
  nHeads: 8,
  nKvHeads: 8,
  vocabSize: 512,
  maxSeqLen: 4096,
});

const SHAPES: Record<string, LlamaConfig> = { ...PRESETS, "attention-heavy": ATTENTION_HEAVY };

/** The benchmark's help text. */
export const BENCH_HELP: string = `Usage: deno task bench [options]

  --quick               a subset that finishes in about a minute
  --backend B           cpu, webgpu or both (default both)
  --preset NAMES        comma-separated shapes (default stories15M,attention-heavy;
                        quick: stories260K,attention-heavy); known: ${
  Object.keys(SHAPES).join(", ")
}
  --contexts SPEC       context lengths: "16..1024" doubles from 16 to 1024 (default), or a list "16,64,256"
  --cell-budget S       stop doubling a series once one cell takes longer than S seconds (default 60; quick 10)
  --out DIR             where results go (default bench/results)
  --llama2c PATH        also run llama2.c's \`run\` at PATH on the same shapes, side by side
  --from FILE           measure nothing: rewrite the report and charts from an earlier results.json
  --help                this text

Writes DIR/results.json (all results, versioned), DIR/report.md, and SVG charts.`;

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

async function describeMachine(adapter?: string): Promise<MachineInfo> {
  let cpu = "unknown CPU";
  try {
    cpu = /model name\s*:\s*(.+)/.exec(await Deno.readTextFile("/proc/cpuinfo"))?.[1]?.trim() ??
      cpu;
  } catch { /* not Linux, or no permission */ }
  let memoryGiB = NaN;
  try {
    memoryGiB = Deno.systemMemoryInfo().total / 2 ** 30;
  } catch { /* no --allow-sys */ }
  return {
    cpu,
    cores: navigator.hardwareConcurrency,
    memoryGiB,
    os: `${Deno.build.os} ${Deno.build.arch}`,
    deno: Deno.version.deno,
    adapter,
  };
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

async function run(args: string[], io: BenchIo): Promise<number> {
  const values = parseFlags(args, {
    quick: { type: "boolean" },
    backend: { type: "string" },
    preset: { type: "string" },
    contexts: { type: "string" },
    "cell-budget": { type: "string" },
    out: { type: "string" },
    llama2c: { type: "string" },
    from: { type: "string" },
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
    (quick ? "stories260K,attention-heavy" : "stories15M,attention-heavy")).split(
      ",",
    );
  for (const name of shapeNames) {
    if (!SHAPES[name]) {
      throw new UsageError(
        `--preset: unknown shape "${name}"; known: ${Object.keys(SHAPES).join(", ")}`,
      );
    }
  }
  for (const name of shapeNames) checkWeightsFitMemory(SHAPES[name], `--preset ${name}`);
  const contexts = parseContexts(values.contexts ?? (quick ? "16..32" : "16..1024"));
  const cellBudgetS = Number(values["cell-budget"] ?? (quick ? 10 : 60));
  if (!(cellBudgetS > 0)) {
    throw new UsageError(`--cell-budget: expected seconds > 0, got "${values["cell-budget"]}"`);
  }
  const out = (values.out ?? "bench/results").replace(/\/$/, "");
  if (values.from) {
    const results: BenchResults = JSON.parse(await io.readFile(values.from));
    if (results.schema !== RESULTS_SCHEMA) {
      throw new UsageError(
        `--from: ${values.from} has schema ${results.schema}, expected ${RESULTS_SCHEMA}`,
      );
    }
    await writeResults(results, out, io);
    return 0;
  }

  const gpu = backends.includes("webgpu") ? await requestGpu() : undefined;
  try {
    io.progress(
      `backends: ${backends.join(", ")}; shapes: ${shapeNames.join(", ")}; contexts: ${
        contexts.join(", ")
      }`,
    );
    const copyGbPerS: Partial<Record<Backend, number>> = {};
    if (backends.includes("cpu")) {
      copyGbPerS.cpu = await cpuCopyBandwidth(quick ? 16 << 20 : 64 << 20);
    }
    if (gpu) copyGbPerS.webgpu = await gpuCopyBandwidth(gpu, quick ? 16 << 20 : 64 << 20);
    io.progress(
      `copy bandwidth: ${
        Object.entries(copyGbPerS).map(([b, g]) => `${b} ${g!.toFixed(2)} GB/s`).join(", ")
      }`,
    );
    const kernels = await measureKernels({ quick, gpu, backends, copyGbPerS }, io.progress);
    const shapes = shapeNames.map((name) => ({
      name,
      config: name === "attention-heavy" ? ATTENTION_HEAVY : preset(name),
    }));
    // tuned first, so that the decoder matrix runs the variants chosen on this adapter
    const variants = gpu ? await measureVariants(gpu, shapes, quick, io.progress) : [];
    const { cells, rejected } = await runMatrix({
      tunings: Object.fromEntries(variants.map((v) => [v.shape, v.tuning])),
      shapes,
      backends,
      contexts,
      cellBudgetS,
      decodeSteps: quick ? 4 : 16,
      recomputeSteps: 2,
      copyGbPerS,
      gpu,
    }, io.progress);
    const results: BenchResults = {
      schema: RESULTS_SCHEMA,
      date: new Date().toISOString(),
      quick,
      machine: await describeMachine(gpu?.adapterDescription),
      copyGbPerS,
      kernels,
      cells,
      rejected,
      speedups: computeSpeedups(cells),
    };
    if (values.llama2c) results.peer = await comparePeer(values.llama2c, shapes, results, io);
    await writeResults(results, out, io);
    if (variants.length > 0) {
      await io.writeFile(`${out}/variants.md`, formatVariantsMarkdown(variants));
      await io.writeFile(`${out}/variants.json`, JSON.stringify(variants, null, 2) + "\n");
      io.print(`wrote ${out}/variants.md and ${out}/variants.json (tuning, dispatches per token)`);
    }
    return rejected.length > 0 ? 1 : 0;
  } finally {
    gpu?.destroy();
  }
}

async function writeResults(results: BenchResults, out: string, io: BenchIo): Promise<void> {
  const charts = chartFiles(results);
  await io.writeFile(`${out}/results.json`, JSON.stringify(results, null, 2) + "\n");
  await io.writeFile(`${out}/report.md`, formatMarkdown(results, Object.keys(charts)));
  for (const [name, svg] of Object.entries(charts)) await io.writeFile(`${out}/${name}`, svg);
  io.print(formatText(results));
  io.print(
    `\nwrote ${out}/results.json, ${out}/report.md and ${Object.keys(charts).length} charts`,
  );
}

async function comparePeer(
  program: string,
  shapes: { name: string; config: LlamaConfig }[],
  results: BenchResults,
  io: BenchIo,
): Promise<PeerRow[]> {
  const rows: PeerRow[] = [];
  for (const { name, config } of shapes) {
    const steps = Math.min(128, config.maxSeqLen);
    io.progress(`llama2.c ${name}: ${steps} tokens`);
    const peer = await runLlama2c(program, name, config, steps);
    // Our decode speed at the context nearest the middle of llama2.c's run (it starts at 0).
    const ours = (backend: Backend) =>
      results.cells
        .filter((c) =>
          c.shape === name && c.backend === backend && c.cache === "kv-cache" &&
          c.attention === "MHA" && c.phase === "decode"
        )
        .sort((a, b) => Math.abs(a.context - steps / 2) - Math.abs(b.context - steps / 2))[0]
        ?.tokensPerSecond;
    const bytesPerToken = forwardCost(config, { rows: 1, start: steps / 2 }).bytes;
    rows.push({
      ...peer,
      cpuTokensPerSecond: ours("cpu"),
      webgpuTokensPerSecond: ours("webgpu"),
      bytesPerToken,
      bandwidthLimitTokensPerSecond: ((results.copyGbPerS.cpu ?? NaN) * 1e9 / 2) / bytesPerToken,
    });
  }
  return rows;
}

if (import.meta.main) Deno.exit(await benchMain(Deno.args));
