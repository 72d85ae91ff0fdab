/**
 * The bench's variant section: tunes each benchmarked shape on the adapter first (quickly with
 * `--quick`), so that the decoder matrix runs the chosen variants, then reports every variant's
 * GB/s and GFLOP/s per kernel and shape, the one chosen, and the dispatches per decoded token
 * of the fused and unfused decoders.
 *
 * @module
 */
import type { LlamaConfig } from "../model/config.ts";
import { GpuDecoder } from "../model/webgpu/decoder.ts";
import { randomWeights } from "../model/weights.ts";
import { tune, type TuneMeasurement } from "../gpu/tune.ts";
import type { Dispatch, Gpu } from "../gpu/device.ts";
import type { Tuning } from "../gpu/tuning.ts";
import { calibrateBatch, gpuRunner, submitUnits, TimestampTimer, toTiming } from "../gpu/timing.ts";

/** One shape's tuning and dispatch counts. */
export interface VariantsReport {
  /** Shape name. */
  shape: string;
  /** The tuning the decoder matrix runs. */
  tuning: Tuning;
  /** Every variant measured. */
  measurements: TuneMeasurement[];
  /** Dispatches per decoded token: the tuned (fused) decoder and the unfused one. */
  dispatchesPerToken: { fused: number; unfused: number };
  /** Layers of the shape (to read the counts per layer). */
  layers: number;
}

/** Dispatches per decoded token of `config`, from one- and two-layer copies of it. */
async function dispatches(gpu: Gpu, config: LlamaConfig, tuning: Tuning): Promise<number> {
  const count = async (nLayers: number) => {
    const small = { ...config, nLayers };
    const decoder = await GpuDecoder.create(gpu, small, randomWeights(small), { tuning });
    try {
      return await decoder.dispatchesPerToken();
    } finally {
      decoder.destroy();
    }
  };
  const one = await count(1);
  return one + (config.nLayers - 1) * (await count(2) - one);
}

/**
 * Tunes each shape and counts its dispatches per decoded token.
 *
 * @example
 * ```ts ignore
 * const reports = await measureVariants(gpu, [{ name: "stories15M", config }], true, console.log);
 * ```
 */
export async function measureVariants(
  gpu: Gpu,
  shapes: readonly { name: string; config: LlamaConfig }[],
  quick: boolean,
  progress: (line: string) => void = () => {},
): Promise<VariantsReport[]> {
  const reports: VariantsReport[] = [];
  const timer = TimestampTimer.supported(gpu) ? new TimestampTimer(gpu) : undefined;
  try {
    for (const { name, config } of shapes) {
      progress(`tuning ${name}${quick ? " (quick)" : ""}`);
      const { tuning, measurements } = await tune(gpu, config, {
        quick,
        timer: (dispatches) => timeDispatches(gpu, timer, dispatches, quick),
      });
      const unfused = { ...tuning, choices: { ...tuning.choices, decoder: "unfused" } };
      reports.push({
        shape: name,
        tuning,
        measurements,
        layers: config.nLayers,
        dispatchesPerToken: {
          fused: await dispatches(gpu, config, tuning),
          unfused: await dispatches(gpu, config, unfused),
        },
      });
    }
  } finally {
    timer?.destroy();
  }
  return reports;
}

/**
 * Median milliseconds per call with the bench's timer: GPU timestamps where the adapter has
 * them, wall clock otherwise, over batches calibrated to last 20 ms (5 ms quick).
 */
async function timeDispatches(
  gpu: Gpu,
  timer: TimestampTimer | undefined,
  dispatches: Dispatch[],
  quick: boolean,
): Promise<number> {
  const run = gpuRunner(gpu, timer, (units) => submitUnits(gpu, dispatches, units));
  const batch = await calibrateBatch(run, quick ? 5 : 20);
  const samples = [];
  for (let i = 0; i < (quick ? 2 : 5); i++) samples.push(await run(batch));
  const timing = toTiming(samples, batch);
  return (timing.gpuMs ?? timing.wallMs).median;
}
