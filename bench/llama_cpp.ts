/**
 * The llama.cpp peer: the bench writes the same weights as a GGUF file (f32, with a synthetic
 * vocabulary) and times llama.cpp's greedy decode on it, on the CPU and, where a Vulkan device
 * exists, on Vulkan (`GGML_VK_VISIBLE_DEVICES=0` lets a CPU-type device such as lavapipe serve).
 *
 * Two ways to reach llama.cpp: `--llama-cpp PATH` to a `llama-bench` binary (its JSON samples),
 * or a folder holding the npm package `node-llama-cpp` with its prebuilt platform packages (run
 * through a Node subprocess; each token's arrival timed, decode rate over tokens 2..N). The
 * folder defaults to {@linkcode defaultLlamaCppDir}.
 *
 * @module
 */
import type { LlamaConfig } from "../model/config.ts";
import { llamaToGguf } from "../model/formats/gguf_llama.ts";
import { Tokenizer } from "../model/formats/tokenizer.ts";
import { peerWeights } from "./llama2c.ts";

/** How llama.cpp is reached. */
export type LlamaCppLocation =
  | { kind: "llama-bench"; path: string }
  | { kind: "node-llama-cpp"; dir: string };

/** The device llama.cpp decodes on. */
export type LlamaCppDevice = "cpu" | "vulkan";

/** The folder searched for node-llama-cpp when `--llama-cpp` is not given. */
export function defaultLlamaCppDir(): string {
  const cache = Deno.env.get("XDG_CACHE_HOME") ?? `${Deno.env.get("HOME") ?? "/tmp"}/.cache`;
  return `${cache}/llama-kernels/llama-cpp`;
}

/** How to get llama.cpp: the text of a row that could not run it. */
export function llamaCppHowTo(dir: string = defaultLlamaCppDir()): string {
  return `llama.cpp not found: run "npm install --prefix ${dir} --ignore-scripts node-llama-cpp ` +
    `@node-llama-cpp/linux-x64 @node-llama-cpp/linux-x64-vulkan" (prebuilt binaries), or pass ` +
    `--llama-cpp PATH to a llama-bench binary or to such a folder`;
}

/** What the peer needs from the outside world (replaceable in tests). */
export interface LlamaCppIo {
  /** Whether a path exists (and whether it is a directory). */
  stat(path: string): Promise<{ isDirectory: boolean } | undefined>;
  /** Writes a file. */
  writeFile(path: string, bytes: Uint8Array): Promise<void>;
  /** Runs a program; resolves with its exit code and output; kills it after `timeoutMs`. */
  run(
    program: string,
    args: string[],
    env: Record<string, string>,
    timeoutMs: number,
  ): Promise<{ code: number; stdout: string; stderr: string }>;
  /** A fresh temporary directory. */
  tempDir(): Promise<string>;
  /** Removes a path recursively. */
  remove(path: string): Promise<void>;
}

/** The real file system and processes (needs --allow-read, --allow-write, --allow-run). */
export const DENO_LLAMA_CPP_IO: LlamaCppIo = {
  async stat(path) {
    try {
      return { isDirectory: (await Deno.stat(path)).isDirectory };
    } catch {
      return undefined;
    }
  },
  writeFile: (path, bytes) => Deno.writeFile(path, bytes),
  async run(program, args, env, timeoutMs) {
    const output = await new Deno.Command(program, {
      args,
      env,
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(timeoutMs),
    }).output();
    const decoder = new TextDecoder();
    return {
      code: output.signal ? 124 : output.code,
      stdout: decoder.decode(output.stdout),
      stderr: decoder.decode(output.stderr),
    };
  },
  tempDir: () => Deno.makeTempDir({ prefix: "llama-cpp-peer-" }),
  remove: (path) => Deno.remove(path, { recursive: true }),
};

/**
 * Finds llama.cpp: `flag` (a llama-bench binary, or a folder with node-llama-cpp) or the default
 * folder. Returns a reason instead when there is none.
 *
 * @example
 * ```ts ignore
 * const where = await locateLlamaCpp(undefined);
 * if (typeof where === "string") console.log(where); // how to get it
 * ```
 */
export async function locateLlamaCpp(
  flag: string | undefined,
  io: LlamaCppIo = DENO_LLAMA_CPP_IO,
): Promise<LlamaCppLocation | string> {
  const path = flag ?? defaultLlamaCppDir();
  const found = await io.stat(path);
  if (!found) {
    return flag ? `--llama-cpp: "${flag}" does not exist; ${llamaCppHowTo()}` : llamaCppHowTo();
  }
  if (!found.isDirectory) return { kind: "llama-bench", path };
  if (!await io.stat(`${path}/node_modules/node-llama-cpp/package.json`)) {
    return `${path}: no node_modules/node-llama-cpp; ${llamaCppHowTo(path)}`;
  }
  return { kind: "node-llama-cpp", dir: path };
}

/**
 * A vocabulary of `vocabSize` pieces llama.cpp accepts: `<unk>`, `<s>`, `</s>`, the 256 byte
 * tokens where they fit, then filler pieces (the weights are random; only the ids matter).
 *
 * @example
 * ```ts
 * import { syntheticVocabulary } from "./llama_cpp.ts";
 * const vocabulary = syntheticVocabulary(512);
 * if (vocabulary.vocabSize !== 512) throw new Error("wrong");
 * ```
 */
export function syntheticVocabulary(vocabSize: number): Tokenizer {
  const pieces = ["<unk>", "<s>", "</s>"];
  for (let b = 0; b < 256 && pieces.length < vocabSize; b++) {
    pieces.push(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
  }
  while (pieces.length < vocabSize) pieces.push(`t${pieces.length}`);
  const encoder = new TextEncoder();
  const bytes = pieces.slice(0, vocabSize).map((p) => encoder.encode(p));
  return new Tokenizer(bytes, new Float32Array(vocabSize), 8, "synthetic vocabulary");
}

/** The Node script run against node-llama-cpp: prints one JSON line of samples. */
const NODE_SCRIPT = `import { getLlama } from "node-llama-cpp";
const [modelPath, device, threads, steps, reps] = process.argv.slice(2);
const started = performance.now();
const llama = await getLlama({ gpu: device === "cpu" ? false : device, build: "never", logLevel: "error" });
const model = await llama.loadModel({ modelPath, gpuLayers: device === "cpu" ? 0 : "max" });
const context = await model.createContext({ contextSize: Number(steps) + 8, threads: Number(threads), batchSize: 8 });
const sequence = context.getSequence();
const loadMs = performance.now() - started;
const samples = [];
for (let r = 0; r < Number(reps); r++) {
  await sequence.clearHistory();
  const times = [];
  for await (const token of sequence.evaluate([1], { temperature: 0 })) {
    times.push(performance.now());
    if (times.length >= Number(steps)) break;
  }
  if (times.length < 2) throw new Error("decoded " + times.length + " tokens");
  samples.push((times.length - 1) * 1000 / (times.at(-1) - times[0]));
}
console.log(JSON.stringify({ loadMs, samples, device: llama.gpu || "cpu" }));
await context.dispose(); await model.dispose(); await llama.dispose();
`;

/** Where the script is written: beside node_modules, so that `import "node-llama-cpp"` resolves. */
export const NODE_SCRIPT_NAME = ".llama_kernels_peer.mjs";

/** One llama.cpp run's result. */
export interface LlamaCppResult {
  /** Decode tokens per second, one per sample. */
  samples?: number[];
  /** Why it failed. */
  error?: string;
  /** Program and arguments (model paths are temporary). */
  command: string[];
}

/** Options of {@linkcode runLlamaCpp}. */
export interface LlamaCppRun {
  /** CPU or Vulkan. */
  device: LlamaCppDevice;
  /** CPU threads. */
  threads: number;
  /** Tokens per sample, from position 0. */
  steps: number;
  /** Samples. */
  reps: number;
  /** Kill it after this long, ms. */
  timeoutMs: number;
  /** The GGUF file to run (written by {@linkcode writePeerGguf}). */
  model: string;
}

/**
 * Writes the peers' weights of `config` as an f32 GGUF with a synthetic vocabulary into `dir`.
 *
 * @example
 * ```ts ignore
 * const path = await writePeerGguf(await Deno.makeTempDir(), preset("stories260K"));
 * ```
 */
export async function writePeerGguf(
  dir: string,
  config: LlamaConfig,
  io: LlamaCppIo = DENO_LLAMA_CPP_IO,
): Promise<string> {
  const path = `${dir}/model.gguf`;
  const bytes = llamaToGguf(config, peerWeights(config), {
    tokenizer: syntheticVocabulary(config.vocabSize),
    name: "llama-kernels peer",
  });
  await io.writeFile(path, bytes);
  return path;
}

/**
 * Runs llama.cpp's decode `reps` times on `run.model`; tokens/s per sample.
 *
 * @example
 * ```ts ignore
 * const where = await locateLlamaCpp(undefined);
 * if (typeof where !== "string") {
 *   const model = await writePeerGguf(dir, config);
 *   const { samples } = await runLlamaCpp(where, { device: "cpu", threads: 2, steps: 128, reps: 5, timeoutMs: 60_000, model });
 * }
 * ```
 */
export async function runLlamaCpp(
  where: LlamaCppLocation,
  run: LlamaCppRun,
  io: LlamaCppIo = DENO_LLAMA_CPP_IO,
): Promise<LlamaCppResult> {
  // lavapipe (a CPU-type Vulkan device) is device 0 where it is the only one.
  const env: Record<string, string> = run.device === "vulkan" &&
      Deno.env.get("GGML_VK_VISIBLE_DEVICES") === undefined
    ? { GGML_VK_VISIBLE_DEVICES: "0" }
    : {};
  let program: string, args: string[];
  if (where.kind === "llama-bench") {
    program = where.path;
    args = [
      ...["-m", run.model, "-p", "0", "-n", String(run.steps), "-r", String(run.reps)],
      ...["-t", String(run.threads), "-ngl", run.device === "cpu" ? "0" : "99", "-o", "json"],
    ];
  } else {
    const script = `${where.dir}/${NODE_SCRIPT_NAME}`;
    await io.writeFile(script, new TextEncoder().encode(NODE_SCRIPT));
    program = "node";
    args = [
      script,
      run.model,
      run.device,
      String(run.threads),
      String(run.steps),
      String(run.reps),
    ];
  }
  const command = [program, ...args];
  try {
    const { code, stdout, stderr } = await io.run(program, args, env, run.timeoutMs);
    const last = (stderr || stdout).trim().split("\n").pop() ?? "";
    if (code === 124) return { command, error: `timed out after ${run.timeoutMs / 1000} s` };
    if (code !== 0) return { command, error: `exit ${code}: ${last}` };
    return { command, ...parseLlamaCppOutput(where.kind, stdout) };
  } catch (error) {
    return { command, error: error instanceof Error ? error.message : String(error) };
  }
}

/**
 * Samples (tok/s) from llama-bench's `-o json` output or the Node script's JSON line.
 *
 * @example
 * ```ts
 * import { parseLlamaCppOutput } from "./llama_cpp.ts";
 * const bench = '[{"n_prompt": 0, "n_gen": 128, "avg_ts": 500, "samples_ts": [490, 510]}]';
 * if (parseLlamaCppOutput("llama-bench", bench).samples?.join() !== "490,510") throw new Error("wrong");
 * ```
 */
export function parseLlamaCppOutput(
  kind: LlamaCppLocation["kind"],
  stdout: string,
): { samples?: number[]; error?: string } {
  try {
    if (kind === "llama-bench") {
      const rows = JSON.parse(stdout) as { n_gen?: number; samples_ts?: number[] }[];
      const gen = rows.find((r) => (r.n_gen ?? 0) > 0);
      if (!gen?.samples_ts?.length) return { error: "llama-bench: no generation samples" };
      return { samples: gen.samples_ts };
    }
    const line = stdout.trim().split("\n").filter((l) => l.startsWith("{")).pop();
    const parsed = JSON.parse(line ?? "") as { samples?: number[] };
    if (!parsed.samples?.length || parsed.samples.some((x) => !(x > 0))) {
      return { error: `node-llama-cpp: expected positive samples, got ${line}` };
    }
    return { samples: parsed.samples };
  } catch {
    return { error: `${kind}: unreadable output "${stdout.trim().slice(0, 120)}"` };
  }
}
