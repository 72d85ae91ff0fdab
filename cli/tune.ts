/**
 * `deno task tune [--preset NAME | --model FILE] [--out FILE] [--quick]`: measures every kernel
 * variant at the shapes a model needs on this adapter and writes the tuning file that
 * `GpuDecoder.create({ tuning })`, `generate --tuning` and the bench read.
 *
 * @module
 */
import { parseFlags, UsageError } from "./flags.ts";
import { type LlamaConfig, preset, PRESETS } from "../model/config.ts";
import { readCheckpoint } from "../model/formats/llama2c.ts";
import { formatTuneTable, tune } from "../gpu/tune.ts";
import { requestGpu } from "../gpu/device.ts";

/** The CLI's help text. */
export const TUNE_HELP: string = `Usage: deno task tune [options]

  --preset NAME   the model shape to tune for (default stories15M): ${
  Object.keys(PRESETS).join(", ")
}
  --model PATH    or the shape of a llama2.c checkpoint
  --out FILE      where to write the tuning (default tuning.json)
  --quick         fewer timing repetitions
  --help          this text`;

/**
 * Runs the CLI; returns the exit code (0 ok, 1 failure, 2 bad usage).
 *
 * @example
 * ```ts ignore
 * Deno.exit(await tuneMain(Deno.args));
 * ```
 */
export async function tuneMain(
  args: string[],
  print: (line: string) => void = console.log,
): Promise<number> {
  try {
    const flags = parseFlags(args, {
      preset: { type: "string" },
      model: { type: "string" },
      out: { type: "string" },
      quick: { type: "boolean" },
      help: { type: "boolean" },
    });
    if (flags.help) {
      print(TUNE_HELP);
      return 0;
    }
    if (flags.model && flags.preset) throw new UsageError("give --model or --preset, not both");
    let config: LlamaConfig;
    if (flags.model) {
      config = (await readCheckpoint(flags.model)).config;
    } else {
      try {
        config = preset(flags.preset ?? "stories15M");
      } catch (error) {
        throw new UsageError(`--preset: ${(error as Error).message}`);
      }
    }
    const out = flags.out ?? "tuning.json";
    const gpu = await requestGpu();
    try {
      print(
        `tuning for ${flags.model ?? flags.preset ?? "stories15M"} on ${gpu.adapterDescription}`,
      );
      const { tuning, measurements } = await tune(gpu, config, {
        quick: flags.quick,
        onMeasurement: (m) =>
          console.error(
            `  ${m.key} ${m.variant}: ${m.passed ? `${m.ms.toFixed(3)} ms` : `FAIL ${m.error}`}`,
          ),
      });
      print(formatTuneTable(measurements, tuning.choices));
      await Deno.writeTextFile(out, JSON.stringify({ ...tuning, measurements }, null, 2) + "\n");
      print(`wrote ${out}`);
      return measurements.some((m) => !m.passed) ? 1 : 0;
    } finally {
      gpu.destroy();
    }
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    console.error(`tune: ${message}${error instanceof UsageError ? " (see --help)" : ""}`);
    return error instanceof UsageError ? 2 : 1;
  }
}

if (import.meta.main) Deno.exit(await tuneMain(Deno.args));
