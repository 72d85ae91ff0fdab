/**
 * The cache knee, found from a measured read-bandwidth sweep rather than read from `/sys`: the
 * largest working set that still streams clearly faster than main memory. A cell whose working
 * set is at most the knee is marked "(LLC)"; `/sys`'s last-level cache is only reported beside it.
 *
 * @module
 */
import type { Spread } from "../gpu/timing.ts";

/** One point of the sweep: all cores reading a working set of `bytes` over and over. */
export interface SweepPoint {
  /** Working set, bytes (all workers' slices together). */
  bytes: number;
  /** Read bandwidth over all cores, GB/s. */
  readGbPerS: Spread;
}

/** What the sweep shows. */
export interface CacheKnee {
  /** Largest working set read at least `drop` times faster than main memory; 0 when none. */
  kneeBytes: number;
  /** Main memory's read bandwidth: the sweep's median at its largest working set, GB/s. */
  memoryGbPerS: number;
  /** The factor over main memory that counts as cache-resident. */
  drop: number;
  /** Whether the sweep reached at least 4x the knee, so that its last point is memory, not cache. */
  conclusive: boolean;
}

/**
 * Finds the knee of a sweep (points in any order): the largest working set whose median read
 * bandwidth is at least `drop` times the largest working set's. No such point gives 0: nothing
 * measured ran at cache speed, so no cell is marked.
 *
 * @example
 * ```ts
 * import { findCacheKnee } from "./cache_knee.ts";
 * const at = (mib: number, gbs: number) => ({
 *   bytes: mib * 2 ** 20,
 *   readGbPerS: { median: gbs, min: gbs, max: gbs, q1: gbs, q3: gbs, n: 1 },
 * });
 * // 40 GB/s in cache up to 16 MiB, 12 GB/s from 64 MiB on
 * const knee = findCacheKnee([at(1, 45), at(4, 42), at(16, 38), at(64, 13), at(256, 12), at(1024, 12)]);
 * if (knee.kneeBytes !== 16 * 2 ** 20 || knee.memoryGbPerS !== 12) throw new Error("wrong");
 * ```
 */
export function findCacheKnee(points: readonly SweepPoint[], drop = 1.5): CacheKnee {
  if (points.length === 0) throw new RangeError("cache sweep: expected points, got none");
  const sorted = [...points].sort((a, b) => a.bytes - b.bytes);
  const memoryGbPerS = sorted.at(-1)!.readGbPerS.median;
  const fast = sorted.filter((p) => p.readGbPerS.median >= drop * memoryGbPerS);
  const kneeBytes = fast.at(-1)?.bytes ?? 0;
  return {
    kneeBytes,
    memoryGbPerS,
    drop,
    conclusive: sorted.at(-1)!.bytes >= 4 * Math.max(kneeBytes, sorted[0].bytes),
  };
}

/**
 * The read ceiling for a working set of `bytes`: the sweep's fastest median at that working set
 * or any larger one measured (bandwidth falls as the working set grows, so this bounds what a
 * program streaming `bytes` can reach); below the sweep's smallest point, the fastest point.
 *
 * @example
 * ```ts
 * import { readCeilingAt } from "./cache_knee.ts";
 * const at = (mib: number, gbs: number) => ({
 *   bytes: mib * 2 ** 20,
 *   readGbPerS: { median: gbs, min: gbs, max: gbs, q1: gbs, q3: gbs, n: 1 },
 * });
 * const sweep = [at(1, 45), at(16, 38), at(256, 12)];
 * if (readCeilingAt(sweep, 8 * 2 ** 20) !== 45) throw new Error("the 1 MiB point bounds 8 MiB");
 * if (readCeilingAt(sweep, 300 * 2 ** 20) !== 12) throw new Error("memory bounds 300 MiB");
 * ```
 */
export function readCeilingAt(points: readonly SweepPoint[], bytes: number): number {
  if (points.length === 0) throw new RangeError("cache sweep: expected points, got none");
  const sorted = [...points].sort((a, b) => a.bytes - b.bytes);
  // the largest point not above `bytes` (the smallest point when all are above)
  const below = sorted.filter((p) => p.bytes <= bytes);
  const from = below.length ? below.at(-1)! : sorted[0];
  return Math.max(...sorted.filter((p) => p.bytes >= from.bytes).map((p) => p.readGbPerS.max));
}
