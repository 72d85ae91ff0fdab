// Shared set-up of the WebGPU tests: one device per test file, or one clear "ignored" message.
import { type Gpu, requestGpu } from "../gpu/device.ts";
import { onDenoGlBackend } from "../gpu/_backend.ts";

/** Whether a missing adapter must fail the suite (CI) instead of ignoring the GPU tests. */
export const requireWebGpu = Deno.env.get("REQUIRE_WEBGPU") === "1" ||
  Deno.env.get("CI") === "true";

const adapter = await globalThis.navigator?.gpu?.requestAdapter().catch(() => null);

/** True when the GPU tests are ignored here. */
export const ignoreGpuTests = !adapter && !requireWebGpu;

if (ignoreGpuTests && !(globalThis as { gpuNoticeShown?: boolean }).gpuNoticeShown) {
  (globalThis as { gpuNoticeShown?: boolean }).gpuNoticeShown = true;
  console.warn(
    "WebGPU tests ignored: no adapter. Install Mesa's software driver " +
      "(apt-get install mesa-vulkan-drivers libvulkan1); set REQUIRE_WEBGPU=1 to make this a failure.",
  );
}

const onGl = Boolean(adapter) && onDenoGlBackend();

// Once per run (the environment is shared by the parallel test workers).
if (onGl && !Deno.env.get("LLAMA_GL_NOTICE_SHOWN")) {
  Deno.env.set("LLAMA_GL_NOTICE_SHOWN", "1");
  console.warn(
    "WebGPU runs on Deno's GL backend here, which compiles shaders more slowly than Vulkan; " +
      "for Vulkan: sudo apt-get install -y mesa-vulkan-drivers libvulkan1 (and leave DENO_WEBGPU_BACKEND unset)",
  );
}

let shared: Promise<Gpu> | undefined;

/** The file's shared device, created on first use (fails with the no-adapter help if none). */
export function testGpu(): Promise<Gpu> {
  shared ??= requestGpu();
  return shared;
}

// gpuTest registrations of this file, and how many of them have finished.
let registered = 0;
let finished = 0;

/**
 * Registers a test that needs WebGPU: ignored without an adapter unless required. When the
 * file's last registered GPU test has finished, the shared device is destroyed: a device left
 * alive to the process's exit is torn down by the driver's exit handlers while other test
 * workers still run, and the runner has died there with glibc's "corrupted size vs. prev_size"
 * after every test passed (issue 20).
 */
export function gpuTest(name: string, fn: (gpu: Gpu) => Promise<void>): void {
  registered++;
  Deno.test({
    name,
    ignore: ignoreGpuTests,
    // The shared device and its buffers live across tests by design.
    sanitizeResources: false,
    sanitizeOps: false,
    fn: async () => {
      try {
        await fn(await testGpu());
      } finally {
        if (++finished === registered && shared) {
          const gpu = await shared.catch(() => undefined);
          shared = undefined; // a later testGpu() asks for a new device
          gpu?.destroy();
        }
      }
    },
  });
}
