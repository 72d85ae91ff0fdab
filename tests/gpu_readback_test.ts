// Gpu.read's lifecycle of its staging buffer: map, copy out, unmap, destroy. Destroying a buffer
// while mapped left the mapped ArrayBuffer alive over memory the driver frees; on Deno's GL
// backend a read-back stress (3 workers x 300 read-backs, 25 rounds) then died at exit with SIGSEGV
// in 2 of 5 runs (0 of 3 with unmap first), and with glibc's "corrupted size vs. prev_size" SIGABRT
// in the suite (issue 20).
import { expect } from "expect";
import { requestGpu } from "../gpu/device.ts";
import { ignoreGpuTests } from "./_gpu.ts";

Deno.test({
  name: "a read-back unmaps its staging buffer before destroying it, detaching the mapped range",
  ignore: ignoreGpuTests,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const gpu = await requestGpu();
    try {
      const calls: string[] = [];
      const ranges: ArrayBuffer[] = [];
      const device = gpu.device;
      const createBuffer = device.createBuffer.bind(device);
      // Record what happens to each buffer created during the read.
      device.createBuffer = (descriptor: GPUBufferDescriptor) => {
        const buffer = createBuffer(descriptor);
        if (!(descriptor.usage & GPUBufferUsage.MAP_READ)) return buffer;
        const record = <K extends "mapAsync" | "unmap" | "destroy">(name: K) => {
          const original = buffer[name].bind(buffer) as (...args: unknown[]) => unknown;
          Object.defineProperty(buffer, name, {
            value: (...args: unknown[]) => (calls.push(name), original(...args)),
          });
        };
        record("mapAsync");
        record("unmap");
        record("destroy");
        const getMappedRange = buffer.getMappedRange.bind(buffer);
        Object.defineProperty(buffer, "getMappedRange", {
          value: (...args: [number?, number?]) => {
            calls.push("getMappedRange");
            const range = getMappedRange(...args);
            ranges.push(range);
            return range;
          },
        });
        return buffer;
      };
      const source = gpu.upload(new Float32Array([1.5, -2, 3.25, 7]));
      expect(Array.from(await gpu.readFloat32(source))).toEqual([1.5, -2, 3.25, 7]);
      expect(calls).toEqual(["mapAsync", "getMappedRange", "unmap", "destroy"]);
      // unmap detached what getMappedRange handed out: nothing points into freed memory
      expect(ranges.map((r) => r.byteLength)).toEqual([0]);
      device.createBuffer = createBuffer;
    } finally {
      gpu.destroy();
    }
  },
});
