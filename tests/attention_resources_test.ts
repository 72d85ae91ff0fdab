// The attention kernel's resources: workgroup memory within WebGPU's guaranteed minimum, and
// the split pass's partial-results buffer freed by destroy().
import { expect } from "expect";
import { attentionKernel, type AttentionKernelShape } from "../gpu/attention/attention.ts";
import { Gpu } from "../gpu/device.ts";
import { GL_WORKGROUP_ELEMENT_BUDGET } from "../gpu/_backend.ts";
import { createState } from "../gpu/state.ts";
import { GpuDecoder, randomWeights } from "../model/mod.ts";
import { compare, decodeAttention, Rng } from "../reference/mod.ts";
import { tinyConfig } from "./_config.ts";
import { gpuTest } from "./_gpu.ts";
import { captureWgsl, declaredWorkgroupBytes } from "./_wgsl.ts";

interface AttentionInputs {
  q: Float32Array;
  keys: Float32Array;
  values: Float32Array;
}

function randomInputs(shape: AttentionKernelShape, pos: number, seed: number): AttentionInputs {
  const rng = new Rng(seed);
  const kvLength = (pos + shape.rows) * shape.nKvHeads * shape.headDim;
  return {
    q: rng.uniformArray(shape.rows * shape.nHeads * shape.headDim),
    keys: rng.uniformArray(kvLength),
    values: rng.uniformArray(kvLength),
  };
}

/** The reference: each row attends to positions 0..pos + row. */
function expectedAttention(shape: AttentionKernelShape, pos: number, inputs: AttentionInputs) {
  const width = shape.nHeads * shape.headDim;
  const out = new Float32Array(shape.rows * width);
  for (let row = 0; row < shape.rows; row++) {
    const q = inputs.q.subarray(row * width, (row + 1) * width);
    out.set(decodeAttention(q, inputs.keys, inputs.values, pos + row, shape), row * width);
  }
  return out;
}

function bindInputs(gpu: Gpu, pos: number, inputs: AttentionInputs) {
  return {
    q: gpu.upload(inputs.q),
    keyCache: gpu.upload(inputs.keys),
    valueCache: gpu.upload(inputs.values),
    state: createState(gpu, { pos }),
    out: gpu.createBuffer(inputs.q.byteLength),
  };
}

function expectClose(actual: Float32Array, expected: Float32Array) {
  const stats = compare(actual, expected);
  expect(stats.firstNonFinite).toBe(-1);
  expect(stats.nmse).toBeLessThanOrEqual(1e-9);
}

gpuTest(
  "attention at 8 query heads per KV head and headDim 128 fits WebGPU's minimum 16384 bytes of workgroup memory",
  async () => {
    // A device at WebGPU's default limits, as an adapter offering only the minimum gives.
    const adapter = await navigator.gpu.requestAdapter();
    const gpu = new Gpu(await adapter!.requestDevice(), "default limits");
    try {
      expect(gpu.limits.maxComputeWorkgroupStorageSize).toBe(16384);
      const { codes } = captureWgsl(gpu);
      // 16 heads on 2 KV heads (8 per workgroup), split in 2: both passes run.
      const shape = { rows: 1, nHeads: 16, nKvHeads: 2, headDim: 128 };
      const pos = 200;
      const kernel = await attentionKernel(gpu, shape);
      expect(kernel.splits).toBe(2);
      // Deno's wgpu does not check the limit when it creates the pipeline (browsers do), so
      // the shader's own declarations are counted.
      const main = codes.find(({ code }) => code.includes("var<workgroup>"))!;
      expect(declaredWorkgroupBytes(main)).toBeLessThanOrEqual(16384);
      const inputs = randomInputs(shape, pos, 5);
      const buffers = bindInputs(gpu, pos, inputs);
      await gpu.submit(kernel.bind(buffers));
      expectClose(await gpu.readFloat32(buffers.out), expectedAttention(shape, pos, inputs));
    } finally {
      gpu.destroy();
    }
  },
);

gpuTest(
  "attention's workgroupBytes is what its WGSL declares, each variable rounded up to 16 bytes",
  async (gpu) => {
    // Hand-computed from the layout: heads packed as f32, vec2 or vec4 (4, 8, 16 bytes), weights
    // for the chunk's positions, 64 partial maxima, and the 4-byte lastShared counted as 16.
    const cases: [nHeads: number, bytes: number][] = [
      [1, 192 * 4 + 64 * 4 + 16], // 1 head: f32, chunks of 192 positions
      [2, 192 * 8 + 64 * 8 + 16], // 2 heads: vec2
      [3, 192 * 16 + 64 * 16 + 16], // 3 heads: one vec4, a lane of padding
      [4, 192 * 16 + 64 * 16 + 16],
      [8, 2 * 64 * 16 + 2 * 64 * 16 + 16], // 8 heads: two vec4s, chunks of 64 positions
    ];
    // Within the GL backend's budget of 128 elements: chunks of 64, at most 4 heads (one vec4).
    const budgeted: [nHeads: number, bytes: number][] = [
      [1, 64 * 4 + 64 * 4 + 16],
      [2, 64 * 8 + 64 * 8 + 16],
      [3, 64 * 16 + 64 * 16 + 16],
      [8, 64 * 16 + 64 * 16 + 16],
    ];
    for (
      const [budget, list] of [[Infinity, cases], [GL_WORKGROUP_ELEMENT_BUDGET, budgeted]] as const
    ) {
      const device = new Gpu(gpu.device, gpu.adapterDescription, gpu.adapter, {
        workgroupElementBudget: budget,
      });
      const { codes, restore } = captureWgsl(device);
      try {
        for (const [nHeads, bytes] of list) {
          codes.length = 0;
          const shape = { rows: 1, nHeads, nKvHeads: 1, headDim: 48, splits: 1 };
          const kernel = await attentionKernel(device, shape);
          expect([budget, nHeads, kernel.workgroupBytes]).toEqual([budget, nHeads, bytes]);
          expect([budget, nHeads, declaredWorkgroupBytes(codes[0])])
            .toEqual([budget, nHeads, bytes]);
        }
      } finally {
        restore();
      }
    }
  },
);

gpuTest(
  "split attention: one partials buffer serves every binding, and destroy() frees it",
  async (gpu) => {
    const created: GPUBuffer[] = [];
    const destroyed = new Set<GPUBuffer>();
    const createBuffer = gpu.createBuffer;
    gpu.createBuffer = (byteLength, label) => {
      const buffer = createBuffer.call(gpu, byteLength, label);
      if (label?.includes("partials")) {
        created.push(buffer);
        const destroy = buffer.destroy.bind(buffer);
        buffer.destroy = () => {
          destroyed.add(buffer);
          destroy();
        };
      }
      return buffer;
    };
    try {
      const shape = { rows: 2, nHeads: 4, nKvHeads: 1, headDim: 40, splits: 3 };
      const kernel = await attentionKernel(gpu, shape);
      // Two bindings (two layers' caches) recorded in one submit: each combine must read its own
      // main pass's partials.
      const inputs = [randomInputs(shape, 300, 1), randomInputs(shape, 300, 2)];
      const buffers = inputs.map((input) => bindInputs(gpu, 300, input));
      await gpu.submit(buffers.flatMap((b) => kernel.bind(b)));
      for (const [i, input] of inputs.entries()) {
        expectClose(await gpu.readFloat32(buffers[i].out), expectedAttention(shape, 300, input));
      }
      expect(created.length).toBe(1);
      kernel.destroy();
      expect(created.filter((b) => !destroyed.has(b))).toEqual([]);
    } finally {
      gpu.createBuffer = createBuffer;
    }
  },
);

gpuTest(
  "GpuDecoder.destroy() frees every buffer it allocated, split attention's included",
  async (gpu) => {
    const live = new Map<GPUBuffer, string>();
    const createBuffer = gpu.createBuffer;
    gpu.createBuffer = (byteLength, label = "buffer") => {
      const buffer = createBuffer.call(gpu, byteLength, label);
      live.set(buffer, label);
      const destroy = buffer.destroy.bind(buffer);
      buffer.destroy = () => {
        live.delete(buffer);
        destroy();
      };
      return buffer;
    };
    try {
      // One KV head and one row: the attention kernel splits the keys, so it allocates partials.
      const config = tinyConfig({ nLayers: 2, nHeads: 2, nKvHeads: 1, maxSeqLen: 8 });
      const decoder = await GpuDecoder.create(gpu, config, randomWeights(config, 3));
      await decoder.prefill([1, 2, 3]);
      await decoder.forward(4, 3);
      expect([...live.values()].some((label) => label.includes("partials"))).toBe(true);
      decoder.destroy();
      expect([...live.values()]).toEqual([]);
    } finally {
      gpu.createBuffer = createBuffer;
    }
  },
);

gpuTest(
  "attention matches the reference where heads leave vec4 lanes empty or a last tile partial",
  async (gpu) => {
    const cases: [AttentionKernelShape, pos: number][] = [
      [{ rows: 2, nHeads: 6, nKvHeads: 2, headDim: 64 }, 50], // 3 heads: one lane of padding
      [{ rows: 1, nHeads: 10, nKvHeads: 2, headDim: 33 }, 300], // 5 heads: two vec4s, 3 empty
      [{ rows: 1, nHeads: 12, nKvHeads: 1, headDim: 40 }, 100], // tiles of 8 and 4 heads
      [{ rows: 3, nHeads: 28, nKvHeads: 2, headDim: 65 }, 70], // 14 per KV head: 8 and 6
    ];
    for (const [i, [shape, pos]] of cases.entries()) {
      const inputs = randomInputs(shape, pos, 10 + i);
      const buffers = bindInputs(gpu, pos, inputs);
      await gpu.submit((await attentionKernel(gpu, shape)).bind(buffers));
      expectClose(await gpu.readFloat32(buffers.out), expectedAttention(shape, pos, inputs));
    }
  },
);
