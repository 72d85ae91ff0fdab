/**
 * The run's metadata, measured rather than typed: CPU model, cores, memory and caches, OS,
 * Deno, the WebGPU adapter's info, features and limits, and the project's git commit.
 *
 * @module
 */
import * as os from "node:os";
import type { Gpu } from "../gpu/device.ts";
import type { CacheInfo, MachineInfo } from "./report/report.ts";
import { adapterInfo } from "./shared.ts";

/**
 * Parses a `/sys` cache size such as "48K", "2048K" or "32M" into bytes.
 *
 * @example
 * ```ts
 * import { parseCacheSize } from "./machine.ts";
 * if (parseCacheSize("32M") !== 32 * 1024 * 1024) throw new Error("wrong");
 * ```
 */
export function parseCacheSize(text: string): number {
  const match = /^(\d+)\s*([KMG]?)$/i.exec(text.trim());
  if (!match) throw new RangeError(`cache size: expected e.g. "32M" or "48K", got "${text}"`);
  const unit = { "": 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[match[2].toUpperCase()]!;
  return Number(match[1]) * unit;
}

/**
 * Reads a `/sys` file: directly where Deno allows it (it asks for `--allow-all` there), else
 * through `cat` (`--allow-run`). Undefined when neither works.
 */
async function readSysFile(path: string): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(path);
  } catch {
    try {
      const out = await new Deno.Command("cat", { args: [path], stdout: "piped", stderr: "null" })
        .output();
      return out.success ? new TextDecoder().decode(out.stdout) : undefined;
    } catch {
      return undefined;
    }
  }
}

/**
 * CPU 0's caches from `/sys/devices/system/cpu/cpu0/cache/` (empty where unreadable).
 *
 * @example
 * ```ts
 * import { readCaches } from "./machine.ts";
 * for (const cache of await readCaches()) console.log(cache.level, cache.type, cache.bytes);
 * ```
 */
export async function readCaches(
  root = "/sys/devices/system/cpu/cpu0/cache",
): Promise<CacheInfo[]> {
  const caches: CacheInfo[] = [];
  for (let index = 0; index < 16; index++) {
    const read = (field: string) => readSysFile(`${root}/index${index}/${field}`);
    const [level, type, size] = await Promise.all([read("level"), read("type"), read("size")]);
    if (level === undefined || type === undefined || size === undefined) break;
    try {
      caches.push({ level: Number(level.trim()), type: type.trim(), bytes: parseCacheSize(size) });
    } catch { /* an unexpected format: leave this cache out */ }
  }
  return caches.sort((a, b) => a.level - b.level || a.type.localeCompare(b.type));
}

/**
 * The largest data or unified cache of the highest level: the last-level cache, or 0.
 *
 * @example
 * ```ts
 * import { lastLevelCache } from "./machine.ts";
 * const llc = lastLevelCache([{ level: 2, type: "Unified", bytes: 2 << 20 }, { level: 3, type: "Unified", bytes: 32 << 20 }]);
 * if (llc !== 32 << 20) throw new Error("wrong");
 * ```
 */
export function lastLevelCache(caches: readonly CacheInfo[]): number {
  const data = caches.filter((c) => c.type !== "Instruction");
  const top = Math.max(0, ...data.map((c) => c.level));
  return Math.max(0, ...data.filter((c) => c.level === top).map((c) => c.bytes));
}

async function gitCommit(): Promise<string | undefined> {
  try {
    const run = async (...args: string[]) => {
      const out = await new Deno.Command("git", { args, stdout: "piped", stderr: "null" })
        .output();
      return out.success ? new TextDecoder().decode(out.stdout).trim() : undefined;
    };
    const head = await run("rev-parse", "--short=12", "HEAD");
    if (!head) return undefined;
    const dirty = await run("status", "--porcelain", "--untracked-files=no");
    return dirty ? `${head}-dirty` : head;
  } catch {
    return undefined; // no git, or no --allow-run
  }
}

/**
 * Describes this machine (and `gpu`'s adapter, when given).
 *
 * @example
 * ```ts ignore
 * const machine = await describeMachine(await requestGpu());
 * console.log(machine.cpu, machine.llcBytes, machine.adapter?.features);
 * ```
 */
export async function describeMachine(gpu?: Gpu): Promise<MachineInfo> {
  let cpu = "unknown CPU", cores = navigator.hardwareConcurrency, memoryGiB = NaN;
  let release = "";
  try {
    const cpus = os.cpus();
    cpu = cpus[0]?.model?.trim() || cpu;
    cores = cpus.length || cores;
    memoryGiB = os.totalmem() / 2 ** 30;
    release = os.release();
  } catch { /* needs --allow-sys */ }
  const caches = await readCaches();
  return {
    cpu,
    cores,
    memoryGiB,
    caches,
    llcBytes: lastLevelCache(caches),
    os: `${Deno.build.os} ${Deno.build.arch}${release ? ` ${release}` : ""}`,
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    ...(gpu ? { adapter: adapterInfo(gpu) } : {}),
    gitCommit: await gitCommit(),
  };
}
