/**
 * The peer: llama2.c's `run` on the same model shapes, through checkpoints and a tokenizer
 * this project writes in llama2.c's formats, timed from outside: the process's wall clock for
 * `steps` tokens minus its wall clock for one token (loading, start-up and the first pass), so
 * the rate is decode alone and is not quantized by llama2.c's millisecond timer. Its own
 * "achieved tok/s" line is kept beside it.
 *
 * @module
 */
import type { LlamaConfig } from "../model/config.ts";
import { serializeCheckpoint } from "../model/formats/llama2c.ts";
import { type LlamaWeights, randomWeights } from "../model/weights.ts";

/** What the peer needs from the outside world (replaceable in tests). */
export interface PeerIo {
  /** Writes a file. */
  writeFile(path: string, bytes: Uint8Array): Promise<void>;
  /** Runs a program with extra environment variables; resolves with its exit code and output. */
  run(
    program: string,
    args: string[],
    env?: Record<string, string>,
  ): Promise<{ code: number; stdout: string; stderr: string }>;
  /** A fresh temporary directory. */
  tempDir(): Promise<string>;
  /** Removes a temporary directory and its files. */
  removeDir?(path: string): Promise<void>;
  /** The clock processes are timed by, ms (default `performance.now`). */
  now?(): number;
}

/** The real file system and processes (needs --allow-write and --allow-run). */
export const DENO_PEER_IO: PeerIo = {
  writeFile: (path, bytes) => Deno.writeFile(path, bytes),
  async run(program, args, env) {
    const output = await new Deno.Command(program, { args, env, stdout: "piped", stderr: "piped" })
      .output();
    const decoder = new TextDecoder();
    return {
      code: output.code,
      stdout: decoder.decode(output.stdout),
      stderr: decoder.decode(output.stderr),
    };
  },
  tempDir: () => Deno.makeTempDir({ prefix: "llama2c-peer-" }),
  removeDir: (path) => Deno.remove(path, { recursive: true }),
};

/**
 * A `tokenizer.bin` of `vocabSize` tokens that llama2.c can load: `<unk>`, `<s>`, `</s>`,
 * the 256 byte tokens where they fit, a space, then filler pieces.
 *
 * @example
 * ```ts
 * import { syntheticTokenizer } from "./llama2c.ts";
 * if (syntheticTokenizer(512).length < 512 * 8) throw new Error("wrong");
 * ```
 */
export function syntheticTokenizer(vocabSize: number): Uint8Array {
  // Byte tokens at ids 3..258: llama2.c's byte fallback adds 3 to the byte.
  const pieces = ["<unk>", "<s>", "</s>"];
  for (let b = 0; b < 256 && pieces.length < vocabSize; b++) {
    pieces.push(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
  }
  if (pieces.length < vocabSize) pieces.push(" ");
  while (pieces.length < vocabSize) pieces.push(`t${pieces.length}`);
  const encoder = new TextEncoder();
  const encoded = pieces.slice(0, vocabSize).map((p) => encoder.encode(p));
  const maxLength = Math.max(...encoded.map((e) => e.length));
  const bytes = new Uint8Array(4 + encoded.reduce((n, e) => n + 8 + e.length, 0));
  const view = new DataView(bytes.buffer);
  view.setInt32(0, maxLength, true);
  let at = 4;
  for (const piece of encoded) {
    view.setFloat32(at, 0, true);
    view.setInt32(at + 4, piece.length, true);
    bytes.set(piece, at + 8);
    at += 8 + piece.length;
  }
  return bytes;
}

/**
 * The weights every peer runs: the bench's seeded random weights of `config`, with BOS's
 * embedding row zeroed. llama2.c stops at BOS (id 1), and with tied random weights BOS predicts
 * itself at once; a zero row gives it logit 0 against random others, so greedy never picks it.
 *
 * @example
 * ```ts
 * import { peerWeights } from "./llama2c.ts";
 * import { preset } from "../model/config.ts";
 * const config = preset("stories260K");
 * const weights = peerWeights(config);
 * if (weights.tokenEmbedding.subarray(config.dim, 2 * config.dim).some((v) => v !== 0)) throw new Error("wrong");
 * ```
 */
export function peerWeights(config: LlamaConfig): LlamaWeights {
  const weights = randomWeights(config, 7);
  weights.tokenEmbedding.fill(0, config.dim, 2 * config.dim);
  return weights;
}

/** The peer's result on one shape. */
export interface PeerResult {
  /** Shape name. */
  shape: string;
  /** Decode tokens per second by the wall clock: `(steps - 1) / (wall(steps) - wall(1))`. */
  tokensPerSecond?: number;
  /** llama2.c's own "achieved tok/s" over the `steps` run (millisecond timer). */
  reportedTokensPerSecond?: number;
  /** Wall milliseconds of the one-token run: loading and start-up. */
  loadMs?: number;
  /** Why it failed. */
  error?: string;
  /** The arguments it ran with. */
  args?: string[];
}

/**
 * Runs llama2.c's `run` at `program` on a random model of `config`, greedy, once for one token
 * and once for `steps` tokens, with `env` added to its environment (e.g. `OMP_NUM_THREADS`).
 *
 * @example
 * ```ts ignore
 * const result = await runLlama2c("./llama2.c/run", "stories15M", preset("stories15M"), 128);
 * ```
 */
export async function runLlama2c(
  program: string,
  shape: string,
  config: LlamaConfig,
  steps: number,
  io: PeerIo = DENO_PEER_IO,
  env?: Record<string, string>,
): Promise<PeerResult> {
  let dir: string | undefined;
  try {
    dir = await io.tempDir();
    const model = `${dir}/model.bin`;
    const tokenizer = `${dir}/tokenizer.bin`;
    await io.writeFile(model, serializeCheckpoint(config, peerWeights(config), "legacy"));
    await io.writeFile(tokenizer, syntheticTokenizer(config.vocabSize));
    const now = io.now ?? (() => performance.now());
    const argsFor = (n: number) => [model, "-z", tokenizer, "-t", "0", "-n", String(n)];
    const timed = async (n: number) => {
      const start = now();
      const output = await io.run(program, argsFor(n), env);
      return { ...output, ms: now() - start };
    };
    const load = await timed(1);
    const { code, stderr, stdout, ms } = load.code === 0 ? await timed(steps) : load;
    const match = /achieved tok\/s:\s*([\d.]+)/.exec(stderr + stdout);
    if (code !== 0) {
      return { shape, error: `exit ${code}: ${(stderr || stdout).trim().split("\n").pop() ?? ""}` };
    }
    if (!match) {
      return { shape, error: 'no "achieved tok/s" line: it stopped after its first token' };
    }
    if (!(ms > load.ms)) {
      return { shape, error: `${steps} tokens took no longer than 1 (${ms} ms vs ${load.ms} ms)` };
    }
    return {
      shape,
      tokensPerSecond: (steps - 1) * 1000 / (ms - load.ms),
      reportedTokensPerSecond: Number(match[1]),
      loadMs: load.ms,
      args: argsFor(steps),
    };
  } catch (error) {
    return { shape, error: error instanceof Error ? error.message : String(error) };
  } finally {
    // The checkpoint can be gigabytes; every sample writes its own.
    if (dir !== undefined) await io.removeDir?.(dir).catch(() => {});
  }
}
