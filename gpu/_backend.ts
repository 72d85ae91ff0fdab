/**
 * Which native backend Deno's WebGPU (wgpu) will use, where that changes what a kernel should
 * declare. Reads only what it is allowed to read: without the permissions it answers false.
 *
 * @module
 */

/**
 * Workgroup-array elements a kernel keeps within on Deno's GL backend. There wgpu zero-initializes
 * workgroup memory with one store per array element, and the compile time grows superlinearly
 * in them (llvmpipe, measured 2026-11-29 per pipeline: 64 floats 0.07 s, 128 0.14 s, 256 0.31 s,
 * 1024 vec4s 7.6 s, 2048 65 s; Vulkan drivers zero-initialize in a loop and take milliseconds).
 */
export const GL_WORKGROUP_ELEMENT_BUDGET = 128;

/** The Deno namespace, looked up at run time: this module is also bundled for browsers. */
function denoNamespace(): typeof Deno | undefined {
  return (globalThis as { Deno?: typeof Deno }).Deno;
}

function granted(descriptor: Deno.PermissionDescriptor): boolean {
  try {
    return denoNamespace()?.permissions.querySync(descriptor).state === "granted";
  } catch {
    return false;
  }
}

function readable(path: string, test: (path: string) => boolean): boolean {
  if (!granted({ name: "read", path })) return false;
  try {
    return test(path);
  } catch {
    return false;
  }
}

/**
 * Whether Deno's WebGPU runs on its GL backend: chosen with `DENO_WEBGPU_BACKEND`, or wgpu's
 * fallback on Linux when no Vulkan driver manifest (ICD) is installed. False outside Deno and
 * where the environment or the manifest folders may not be read.
 */
export function onDenoGlBackend(): boolean {
  const deno = denoNamespace();
  if (!deno?.permissions) return false;
  const env = (name: string) =>
    granted({ name: "env", variable: name }) ? deno.env.get(name) : undefined;
  const backend = env("DENO_WEBGPU_BACKEND");
  if (backend) return backend.includes("gl") && !backend.includes("vulkan");
  if (deno.build.os !== "linux") return false;
  const listed = env("VK_DRIVER_FILES") ?? env("VK_ICD_FILENAMES");
  if (listed) {
    const paths = listed.split(":");
    if (!paths.every((path) => granted({ name: "read", path }))) return false;
    return !paths.some((path) => readable(path, (p) => deno.statSync(p).isFile));
  }
  const manifestDirs = [
    "/usr/share/vulkan/icd.d",
    "/etc/vulkan/icd.d",
    "/usr/local/share/vulkan/icd.d",
  ];
  // Unreadable folders leave the answer unknown: say Vulkan, the backend wgpu prefers.
  if (!manifestDirs.every((dir) => granted({ name: "read", path: dir }))) return false;
  return !manifestDirs.some((dir) =>
    readable(dir, (d) => [...deno.readDirSync(d)].some((entry) => entry.name.endsWith(".json")))
  );
}
