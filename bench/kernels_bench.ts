// `deno bench bench/`: every registry entry (gpu/pairs.ts) at its bench shapes, CPU reference
// (the baseline) against each WebGPU variant. A WebGPU iteration is one submit of CALLS calls
// run to completion (awaiting the GPU costs ~10 ms on software adapters, so single tiny
// dispatches would time the wait); the reference makes the same CALLS calls.
import { type Dispatch, type Gpu, requestGpu } from "../gpu/device.ts";
import { benchKernels } from "./kernel_table.ts";

const CALLS = 32;
const gpu: Gpu | undefined = await navigator.gpu?.requestAdapter().then((
  a,
) => (a ? requestGpu() : undefined));
if (!gpu) console.warn("WebGPU benchmarks skipped: no adapter (install mesa-vulkan-drivers)");

for (const kernel of benchKernels(false, undefined, true)) {
  const group = `${kernel.kernel} ${kernel.shape}`;
  const cpu = kernel.cpu;
  if (cpu) {
    Deno.bench({ name: `reference x${CALLS}`, group, baseline: true }, () => {
      for (let i = 0; i < CALLS; i++) cpu();
    });
  }
  let dispatches: Dispatch[] | undefined;
  Deno.bench({
    name: `webgpu ${kernel.variant} x${CALLS} (one submit)`,
    group,
    ignore: !gpu || kernel.unsupported(gpu) !== undefined,
  }, async (b) => {
    dispatches ??= await kernel.gpu(gpu!);
    const all = Array.from({ length: CALLS }, () => dispatches!).flat();
    b.start();
    await gpu!.submit(all);
    await gpu!.finish();
    b.end();
  });
}
