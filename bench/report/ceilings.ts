/**
 * The bench checks itself against its ceilings: no cell, kernel, decode step or peer may stream
 * faster than every core reads a working set of its size (the cache sweep), or compute faster
 * than every core's multiply-add peak; WebGPU cells, kernels and decode steps beyond the cache
 * knee are held to the adapter's read ceiling (its read probe, or a faster kernel's or step's
 * rate). The report prints the ceilings, the sweep and its knee, and every figure that breaks
 * one, loudly.
 *
 * @module
 */
import type { Spread } from "../../gpu/timing.ts";
import { type CpuCeilings, streamCeilingAt } from "../ceilings.ts";
import type { DecoderCell } from "../matrix.ts";
import type { KernelResult } from "../measure.ts";
import type { Roofline } from "../probes.ts";
import type { PrecisionCell } from "../precision_cells.ts";

/** A peer's figures the check needs. */
export interface CheckedPeer {
  /** Label. */
  label: string;
  /** Shape. */
  shape: string;
  /** Measured tok/s. */
  tokensPerSecond?: Spread;
  /** Tokens/s every core's read bandwidth allows at its bytes per token. */
  ceilingTokensPerSecond?: number;
}

/** What is checked. */
export interface CeilingSubjects {
  /** Decoder cells. */
  cells: readonly DecoderCell[];
  /** Kernels. */
  kernels: readonly KernelResult[];
  /** Peers. */
  peers?: readonly CheckedPeer[];
  /** The precision axis's decode steps (each reads its bytes per token once). */
  precision?: readonly PrecisionCell[];
  /** Every core's ceilings (absent: nothing to check the CPU against). */
  cpuCeilings?: CpuCeilings;
  /** Each backend's roofline. */
  rooflines: Partial<Record<"cpu" | "webgpu", Roofline>>;
}

/** One figure set against its ceiling. */
export interface CeilingCheck {
  /** What was measured, readable. */
  subject: string;
  /** "GB/s", "GFLOP/s" or "tok/s". */
  unit: string;
  /** The measured median. */
  measured: number;
  /** The ceiling it is compared with. */
  ceiling: number;
  /** Which ceiling. */
  against: string;
}

/**
 * Every figure with a ceiling, set against it; the violations are those with
 * `measured > ceiling`.
 *
 * @example
 * ```ts
 * import { ceilingChecks } from "./ceilings.ts";
 * const checks = ceilingChecks({ cells: [], kernels: [], rooflines: {}, peers: [
 *   { label: "p", shape: "s", ceilingTokensPerSecond: 100,
 *     tokensPerSecond: { median: 150, min: 140, max: 160, q1: 145, q3: 155, n: 3 } },
 * ] });
 * if (checks.filter((c) => c.measured > c.ceiling).length !== 1) throw new Error("wrong");
 * ```
 */
export function ceilingChecks(subjects: CeilingSubjects): CeilingCheck[] {
  const out: CeilingCheck[] = [];
  const cpu = subjects.cpuCeilings;
  const gpuRead = subjects.rooflines.webgpu?.readGbPerS.max;
  const readAt = (bytes: number) => cpu ? streamCeilingAt(cpu, bytes) : NaN;
  const fma = cpu?.fmaGflopPerS.max ?? NaN;
  const knee = cpu?.knee.kneeBytes ?? 0;
  for (const c of subjects.cells) {
    const subject = `${c.shape} ${c.attention} ${c.backend} ${c.cache} ${c.phase} ctx ${c.context}`;
    if (c.backend === "cpu" && cpu) {
      out.push({
        subject,
        unit: "GB/s",
        measured: c.gbPerS.median,
        ceiling: readAt(c.workingSetBytes),
        against: "every core's stream at its working set",
      });
      out.push({
        subject,
        unit: "GFLOP/s",
        measured: c.gflopPerS.median,
        ceiling: fma,
        against: "every core's multiply-add peak",
      });
    } else if (c.backend === "webgpu" && gpuRead !== undefined && c.workingSetBytes > knee) {
      out.push({
        subject,
        unit: "GB/s",
        measured: c.gbPerS.median,
        ceiling: gpuRead,
        against: "the adapter's read ceiling",
      });
    }
  }
  for (const k of subjects.kernels) {
    // beyond the measured knee, as the read ceiling's own kernels (an unknown knee: none)
    if (k.backend === "webgpu" && gpuRead !== undefined && knee > 0 && k.bytes > knee) {
      out.push({
        subject: `kernel webgpu ${k.kernel} ${k.variant} ${k.shape}`,
        unit: "GB/s",
        measured: k.gbPerS.median,
        ceiling: gpuRead,
        against: "the adapter's read ceiling",
      });
    }
    if (k.backend !== "cpu" || !cpu) continue;
    out.push({
      subject: `kernel cpu ${k.kernel} ${k.shape}`,
      unit: "GB/s",
      measured: k.gbPerS.median,
      ceiling: readAt(k.bytes),
      against: "every core's stream at its working set",
    });
  }
  for (const p of subjects.precision ?? []) {
    if (p.msPerToken === undefined) continue;
    const subject = `decode step ${p.shape} ${p.backend} ${p.weights}/${p.kv}`;
    const measured = p.bytesPerToken / (p.msPerToken * 1e6);
    if (p.backend === "cpu" && cpu) {
      out.push({
        subject,
        unit: "GB/s",
        measured,
        ceiling: readAt(p.bytesPerToken),
        against: "every core's stream at its working set",
      });
    } else if (p.backend === "webgpu" && gpuRead !== undefined && knee > 0) {
      if (p.bytesPerToken <= knee) continue;
      out.push({
        subject,
        unit: "GB/s",
        measured,
        ceiling: gpuRead,
        against: "the adapter's read ceiling",
      });
    }
  }
  for (const p of subjects.peers ?? []) {
    if (!p.tokensPerSecond || !(p.ceilingTokensPerSecond! > 0)) continue;
    out.push({
      subject: `${p.label} on ${p.shape}`,
      unit: "tok/s",
      measured: p.tokensPerSecond.median,
      ceiling: p.ceilingTokensPerSecond!,
      against: "every core's read of its bytes per token",
    });
  }
  return out;
}

const fmt = (x: number): string => Number.isFinite(x) ? x.toPrecision(3) : "-";
const mib = (bytes: number): string => `${fmt(bytes / 2 ** 20)} MiB`;

/**
 * The verdict in one line: how many figures were checked and whether any broke its ceiling.
 *
 * @example
 * ```ts
 * import { ceilingVerdict } from "./ceilings.ts";
 * const line = ceilingVerdict([{ subject: "x", unit: "GB/s", measured: 5, ceiling: 10, against: "read" }]);
 * if (!line.startsWith("All 1 figures")) throw new Error(line);
 * ```
 */
export function ceilingVerdict(checks: readonly CeilingCheck[]): string {
  const broken = checks.filter((c) => c.measured > c.ceiling);
  if (checks.length === 0) return "No figure was checked against a ceiling (no CPU ceilings).";
  if (broken.length === 0) {
    return `All ${checks.length} figures checked (cells, kernels, decode steps, peers) are at or below their ceilings.`;
  }
  return `CEILING EXCEEDED by ${broken.length} of ${checks.length} figures: ` +
    broken.slice(0, 5).map((c) =>
      `${c.subject} ${fmt(c.measured)} ${c.unit} > ${fmt(c.ceiling)} (${c.against})`
    ).join("; ") +
    (broken.length > 5 ? `; and ${broken.length - 5} more` : "") +
    ". A ceiling that a program beats is not a ceiling: the probe or the byte count is wrong.";
}

/**
 * The report's ceilings section: every core's peaks, the cache sweep with its knee (and
 * `/sys`'s figure beside it), and the verdict with every violation listed.
 *
 * @example
 * ```ts
 * import { ceilingsMarkdown } from "./ceilings.ts";
 * if (!ceilingsMarkdown({ cells: [], kernels: [], rooflines: {} }, 0).includes("not measured")) {
 *   throw new Error("wrong");
 * }
 * ```
 */
export function ceilingsMarkdown(subjects: CeilingSubjects, sysLlcBytes: number): string {
  const cpu = subjects.cpuCeilings;
  if (!cpu) return "## Ceilings\n\nEvery core's ceilings were not measured in this run.\n";
  const checks = ceilingChecks(subjects);
  const broken = checks.filter((c) => c.measured > c.ceiling);
  const spread = (s: Spread) => `${fmt(s.median)} [${fmt(s.min)}-${fmt(s.max)}]`;
  return [
    "## Ceilings (every core)",
    "",
    `${cpu.threads} Workers over one shared WebAssembly memory, SIMD kernels, ` +
    `${fmt(cpu.elapsedS)} s: read ${spread(cpu.readGbPerS)} GB/s at ${
      mib(cpu.sweep.at(-1)!.bytes)
    }, copy ${spread(cpu.copyGbPerS)} GB/s, multiply-add ${spread(cpu.fmaGflopPerS)} GFLOP/s (${
      cpu.fmaFused ? "fused, relaxed SIMD" : "multiply then add"
    }; 128-bit vectors, so native code with wider ones is held to the read ceilings only).`,
    "",
    `Cache knee (measured): ${
      cpu.knee.kneeBytes ? mib(cpu.knee.kneeBytes) : "none found"
    }, the largest working set read at least ${cpu.knee.drop}x faster than main memory (${
      fmt(cpu.knee.memoryGbPerS)
    } GB/s)${cpu.knee.conclusive ? "" : " (inconclusive: the sweep stopped below 4x the knee)"}; ` +
    `/sys reports a ${sysLlcBytes ? mib(sysLlcBytes) : "unknown"} last-level cache, which ` +
    `decides nothing. "(LLC)" marks cells whose working set is at most the knee.`,
    "",
    "| working set | read GB/s (all cores) |",
    "|---|---|",
    ...cpu.sweep.map((p) =>
      `| ${mib(p.bytes)}${p.bytes === cpu.knee.kneeBytes ? " (knee)" : ""} | ${
        spread(p.readGbPerS)
      } |`
    ),
    "",
    `**${ceilingVerdict(checks)}**`,
    ...(broken.length
      ? [
        "",
        "| figure | measured | ceiling | against |",
        "|---|---|---|---|",
        ...broken.map((c) =>
          `| ${c.subject} | ${fmt(c.measured)} ${c.unit} | ${
            fmt(c.ceiling)
          } ${c.unit} | ${c.against} |`
        ),
      ]
      : []),
    "",
  ].join("\n");
}
