/**
 * The WebGPU device: adapter and device with the adapter's full limits, cached compute
 * pipelines, buffer helpers, and WebGPU's silent errors turned into thrown ones.
 *
 * @module
 */
import { GL_WORKGROUP_ELEMENT_BUDGET, onDenoGlBackend } from "./_backend.ts";

/** A WebGPU failure, carrying the kernel (or operation) it came from. */
export class GpuError extends Error {
  /** The kernel or operation that failed. */
  readonly kernel: string;

  /** Creates an error for `kernel` with a message (the WGSL compiler's, where there is one). */
  constructor(kernel: string, message: string) {
    super(`${kernel}: ${message}`);
    this.name = "GpuError";
    this.kernel = kernel;
  }
}

/** How to reach this project's software adapter on a machine without a GPU. */
export const NO_ADAPTER_HELP: string =
  "no WebGPU adapter found. On a Linux machine without a GPU install Mesa's software Vulkan " +
  "driver: `sudo apt-get install -y mesa-vulkan-drivers libvulkan1` (or pick a backend with " +
  "DENO_WEBGPU_BACKEND=vulkan|gl).";

/** Options of {@linkcode requestGpu}. */
export interface RequestGpuOptions {
  /** The WebGPU entry point; `navigator.gpu` by default (replaceable for tests). */
  gpu?: GPU;
  /** Passed to `requestAdapter`. */
  powerPreference?: GPUPowerPreference;
  /**
   * Workgroup-array elements kernels keep within ({@linkcode Gpu.workgroupElementBudget}):
   * 128 on Deno's GL backend, unlimited elsewhere, by default.
   */
  workgroupElementBudget?: number;
  /**
   * `"adapter"` (the default) raises the device's limits to everything the adapter offers;
   * `"default"` requests none, so the device has only WebGPU's default limits (what a kernel
   * can count on everywhere).
   */
  limits?: GpuLimitsChoice;
}

/** Which limits {@linkcode requestGpu} asks for. */
export type GpuLimitsChoice = "adapter" | "default";

/**
 * Checks a `--limits` value.
 *
 * @example
 * ```ts
 * import { parseLimitsChoice } from "./device.ts";
 * if (parseLimitsChoice("default") !== "default") throw new Error("wrong");
 * ```
 */
export function parseLimitsChoice(value: string | undefined): GpuLimitsChoice {
  if (value === undefined || value === "adapter") return "adapter";
  if (value === "default") return "default";
  throw new RangeError(`--limits: expected adapter or default, got ${JSON.stringify(value)}`);
}

/** The adapter's subgroup sizes (`GPUAdapterInfo.subgroupMinSize`/`subgroupMaxSize`). */
export interface SubgroupSizes {
  /** Smallest subgroup a kernel may run with. */
  min: number;
  /** Largest subgroup a kernel may run with. */
  max: number;
}

/** Options of the {@linkcode Gpu} constructor. */
export interface GpuOptions {
  /** See {@linkcode Gpu.workgroupElementBudget}; unlimited if absent. */
  workgroupElementBudget?: number;
  /** See {@linkcode Gpu.subgroupSizes}. */
  subgroupSizes?: SubgroupSizes;
}

/** What the adapter says it is (`GPUAdapterInfo`'s strings, empty where it says nothing). */
export interface AdapterIdentity {
  /** Vendor, e.g. "nvidia" or a PCI id. */
  vendor: string;
  /** Architecture, e.g. "hopper". */
  architecture: string;
  /** Device, e.g. a PCI device id. */
  device: string;
  /** Human-readable description, e.g. "llvmpipe (LLVM 15.0.6, 256 bits)". */
  description: string;
}

/**
 * Times the compute passes a {@linkcode Gpu} submits with `timestamp-query` (set
 * {@linkcode Gpu.passTimer}): the benchmark's source of GPU time.
 */
export interface PassTimer {
  /** Timestamp writes for the next pass, or undefined to leave it untimed. */
  writes(): GPUComputePassTimestampWrites | undefined;
}

/** A buffer, or a range of one, as a kernel binding. */
export type BufferRange = GPUBuffer | GPUBufferBinding;

/** One recorded kernel invocation: a pipeline, its bindings and its workgroup grid. */
export interface Dispatch {
  /** Kernel name, for error messages and profiling. */
  readonly label: string;
  /** The compute pipeline. */
  readonly pipeline: GPUComputePipeline;
  /** Bind group 0. */
  readonly bindGroup: GPUBindGroup;
  /** Workgroups in x, y, z. */
  readonly workgroups: readonly [number, number, number];
}

// The limits requestGpu raises to the adapter's (unless asked for the defaults).
const LIMITS_TO_RAISE = [
  "maxStorageBufferBindingSize",
  "maxBufferSize",
  "maxComputeWorkgroupStorageSize",
  "maxComputeInvocationsPerWorkgroup",
  "maxComputeWorkgroupSizeX",
  "maxComputeWorkgroupSizeY",
  "maxComputeWorkgroupsPerDimension",
  "maxStorageBuffersPerShaderStage",
] as const;

/**
 * Requests an adapter and a device with the limits raised to everything the adapter offers
 * (the defaults cap bindings at 128 MiB and workgroups at 256 invocations). Throws a
 * {@linkcode GpuError} that says how to get an adapter when there is none.
 *
 * @example
 * ```ts ignore
 * import { requestGpu } from "./device.ts";
 * const gpu = await requestGpu();
 * console.log(gpu.adapterDescription);
 * ```
 */
export async function requestGpu(options: RequestGpuOptions = {}): Promise<Gpu> {
  const entry = options.gpu ?? (globalThis.navigator as Navigator | undefined)?.gpu;
  if (!entry) {
    throw new GpuError("requestGpu", `WebGPU is not available in this runtime; ${NO_ADAPTER_HELP}`);
  }
  const adapter = await entry.requestAdapter({ powerPreference: options.powerPreference });
  if (!adapter) throw new GpuError("requestGpu", NO_ADAPTER_HELP);
  const requiredLimits: Record<string, number> = {};
  if (options.limits !== "default") {
    for (const name of LIMITS_TO_RAISE) requiredLimits[name] = adapter.limits[name];
  }
  // Every optional feature a kernel variant may use, where the adapter has it (Chromium's
  // software adapter has subgroups; lavapipe under Deno does not).
  const requiredFeatures = (["timestamp-query", "subgroups", "shader-f16"] as GPUFeatureName[])
    .filter((f) => adapter.features.has(f));
  const device = await adapter.requestDevice({ requiredLimits, requiredFeatures });
  const info = adapter.info;
  const description = [info.description, info.vendor && `vendor ${info.vendor}`, info.architecture]
    .filter(Boolean)
    .join(", ");
  const identity = {
    vendor: info.vendor ?? "",
    architecture: info.architecture ?? "",
    device: info.device ?? "",
    description: info.description ?? "",
  };
  const workgroupElementBudget = options.workgroupElementBudget ??
    (onDenoGlBackend() ? GL_WORKGROUP_ELEMENT_BUDGET : Infinity);
  // Not in every runtime's GPUAdapterInfo yet (Chromium has them; Deno 2.9 does not).
  const sizes = info as { subgroupMinSize?: number; subgroupMaxSize?: number };
  const subgroupSizes = sizes.subgroupMinSize && sizes.subgroupMaxSize
    ? { min: sizes.subgroupMinSize, max: sizes.subgroupMaxSize }
    : undefined;
  return new Gpu(device, description || "unknown adapter", identity, {
    workgroupElementBudget,
    subgroupSizes,
  });
}

/**
 * A WebGPU device with the helpers every kernel uses: pipelines compiled once and cached by
 * shader and constants, errors caught and thrown with the kernel's name, buffer upload and
 * read-back.
 */
export class Gpu {
  /** The underlying device. */
  readonly device: GPUDevice;
  /** What the adapter says it is, e.g. "llvmpipe (LLVM 15.0.6, 256 bits)". */
  readonly adapterDescription: string;
  /** The adapter's vendor, architecture, device and description (what tunings are keyed by). */
  readonly adapter: AdapterIdentity;
  /**
   * Workgroup-array elements a kernel should declare at most, where the backend's compile time
   * depends on them: 128 on Deno's GL backend (wgpu zero-initializes workgroup memory there
   * with one store per element, and llvmpipe took 0.14 s for 128 floats, 0.31 s for 256, 7.6 s
   * for 1024 vec4s and 65 s for 2048 per pipeline), unlimited elsewhere. Kernels with sizable
   * tiles or reductions size them to it, and variants that cannot fit do not apply.
   */
  readonly workgroupElementBudget: number;
  /**
   * The adapter's subgroup sizes where it reports them (undefined elsewhere): a kernel using
   * `subgroups` must work with any size in this range.
   */
  readonly subgroupSizes: SubgroupSizes | undefined;
  /** When set, every pass {@linkcode Gpu.submit} records carries its timestamp writes. */
  passTimer: PassTimer | undefined;
  #pipelines = new Map<string, Promise<GPUComputePipeline>>();
  #lost: string | undefined;
  #uncaptured: string[] = [];

  /** Wraps a device (use {@linkcode requestGpu} to get one). */
  constructor(
    device: GPUDevice,
    adapterDescription: string,
    adapter?: AdapterIdentity,
    options: GpuOptions = {},
  ) {
    const budget = options.workgroupElementBudget ?? Infinity;
    if (!(budget >= 1)) {
      throw new GpuError("Gpu", `workgroupElementBudget: expected at least 1, got ${budget}`);
    }
    this.workgroupElementBudget = budget;
    this.subgroupSizes = options.subgroupSizes;
    this.device = device;
    this.adapterDescription = adapterDescription;
    this.adapter = adapter ??
      { vendor: "", architecture: "", device: "", description: adapterDescription };
    device.lost.then((info) => {
      this.#lost = `${info.reason}${info.message ? `: ${info.message}` : ""}`;
    });
    device.addEventListener("uncapturederror", (event) => {
      this.#uncaptured.push((event as GPUUncapturedErrorEvent).error.message);
    });
  }

  /** The features the device was created with. */
  get features(): GPUSupportedFeatures {
    return this.device.features;
  }

  /** The device's limits (the adapter's, as requested). */
  get limits(): GPUSupportedLimits {
    return this.device.limits;
  }

  /** Throws if the device was lost (destroyed, driver reset, out of memory). */
  checkAlive(what: string): void {
    if (this.#lost !== undefined) throw new GpuError(what, `GPU device lost (${this.#lost})`);
  }

  /**
   * The compute pipeline for `code` with override `constants`, compiled once and cached by
   * both. A WGSL or validation error rejects with a {@linkcode GpuError} naming `kernel` and
   * carrying the compiler's message.
   */
  pipeline(
    kernel: string,
    code: string,
    constants: Record<string, number> = {},
  ): Promise<GPUComputePipeline> {
    this.checkAlive(kernel);
    const key = `${code}\n${JSON.stringify(constants)}`;
    let pipeline = this.#pipelines.get(key);
    if (!pipeline) {
      pipeline = this.#compile(kernel, code, constants);
      this.#pipelines.set(key, pipeline);
      pipeline.catch(() => this.#pipelines.delete(key));
    }
    return pipeline;
  }

  /** Pipelines compiled so far. */
  get cachedPipelines(): number {
    return this.#pipelines.size;
  }

  #compile(
    kernel: string,
    code: string,
    constants: Record<string, number>,
  ): Promise<GPUComputePipeline> {
    return compileComputePipeline(this.device, kernel, code, { constants });
  }

  /**
   * Binds `buffers` to the pipeline's group 0 in order (binding i = buffers[i]), checking each
   * range against the device's storage-binding limit.
   */
  dispatch(
    kernel: string,
    pipeline: GPUComputePipeline,
    buffers: readonly BufferRange[],
    workgroups: readonly [number, number?, number?],
  ): Dispatch {
    this.checkAlive(kernel);
    const maxGroups = this.limits.maxComputeWorkgroupsPerDimension;
    const grid = [workgroups[0], workgroups[1] ?? 1, workgroups[2] ?? 1] as const;
    if (grid.some((n) => n > maxGroups || n < 1 || !Number.isInteger(n))) {
      throw new GpuError(
        kernel,
        `workgroup grid ${grid.join("x")} exceeds the limit of ${maxGroups} per dimension`,
      );
    }
    const entries = buffers.map((range, binding) => {
      const resource = "buffer" in range ? range : { buffer: range };
      const size = resource.size ?? resource.buffer.size - (resource.offset ?? 0);
      if (size > this.limits.maxStorageBufferBindingSize) {
        throw new GpuError(
          kernel,
          `binding ${binding} is ${size} bytes, over the device's maxStorageBufferBindingSize ` +
            `(${this.limits.maxStorageBufferBindingSize} bytes); split the tensor`,
        );
      }
      return { binding, resource };
    });
    this.device.pushErrorScope("validation");
    const bindGroup = this.device.createBindGroup({
      label: kernel,
      layout: pipeline.getBindGroupLayout(0),
      entries,
    });
    // Bind-group validation errors surface at the next submit's error scope (see `submit`).
    this.device.popErrorScope().then((error) => {
      if (error) this.#uncaptured.push(`${kernel}: ${error.message}`);
    });
    return { label: kernel, pipeline, bindGroup, workgroups: grid };
  }

  /** A storage buffer (also copy source and destination) of `byteLength` bytes, zeroed. */
  createBuffer(byteLength: number, label = "buffer"): GPUBuffer {
    this.checkAlive(label);
    const size = Math.max(4, Math.ceil(byteLength / 4) * 4);
    if (size > this.limits.maxBufferSize) {
      throw new GpuError(
        label,
        `buffer of ${size} bytes exceeds the device's maxBufferSize (${this.limits.maxBufferSize})`,
      );
    }
    return this.device.createBuffer({
      label,
      size,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
    });
  }

  /** A new storage buffer holding `data`. */
  upload(data: Float32Array | Uint32Array | Int32Array, label = "buffer"): GPUBuffer {
    const buffer = this.createBuffer(data.byteLength, label);
    this.write(buffer, data);
    return buffer;
  }

  /** Writes `data` into `buffer` at byte `offset`. */
  write(buffer: GPUBuffer, data: Float32Array | Uint32Array | Int32Array, offset = 0): void {
    this.device.queue.writeBuffer(
      buffer,
      offset,
      data.buffer as ArrayBuffer,
      data.byteOffset,
      data.byteLength,
    );
  }

  /**
   * Records `steps` into one compute pass of one command encoder, submits it, and throws any
   * validation or out-of-memory error with the kernel names. Does not wait for the GPU.
   */
  submit(steps: readonly Dispatch[], label = "submit"): Promise<void> {
    this.checkAlive(label);
    const device = this.device;
    device.pushErrorScope("out-of-memory");
    device.pushErrorScope("validation");
    const encoder = device.createCommandEncoder({ label });
    const timestampWrites = this.passTimer?.writes();
    const pass = encoder.beginComputePass(timestampWrites ? { label, timestampWrites } : { label });
    for (const step of steps) {
      pass.setPipeline(step.pipeline);
      pass.setBindGroup(0, step.bindGroup);
      pass.dispatchWorkgroups(...step.workgroups);
    }
    pass.end();
    device.queue.submit([encoder.finish()]);
    return this.#popErrors(label, steps);
  }

  async #popErrors(label: string, steps: readonly Dispatch[]): Promise<void> {
    const validation = await this.device.popErrorScope();
    const memory = await this.device.popErrorScope();
    const pending = this.#uncaptured.splice(0);
    const error = validation ?? memory;
    if (error || pending.length) {
      const kernels = [...new Set(steps.map((s) => s.label))].join(", ");
      throw new GpuError(
        label,
        `${[error?.message, ...pending].filter(Boolean).join("\n")} (kernels: ${kernels})`,
      );
    }
    this.checkAlive(label);
  }

  /** Copies `byteLength` bytes from `buffer` at `offset` back to the CPU (one GPU round trip). */
  async read(
    buffer: GPUBuffer,
    byteLength: number = buffer.size,
    offset = 0,
  ): Promise<ArrayBuffer> {
    this.checkAlive("read");
    const staging = this.device.createBuffer({
      label: "read-back",
      size: byteLength,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    const encoder = this.device.createCommandEncoder({ label: "read-back" });
    encoder.copyBufferToBuffer(buffer, offset, staging, 0, byteLength);
    this.device.queue.submit([encoder.finish()]);
    try {
      await staging.mapAsync(GPUMapMode.READ);
    } catch (error) {
      this.checkAlive("read");
      throw error;
    }
    const copy = staging.getMappedRange().slice(0);
    // Unmap before destroy: unmap detaches the mapped range the JavaScript side holds. Destroying
    // a still-mapped buffer left that view alive over memory the driver frees; on Deno's GL
    // backend the process then died at exit (SIGSEGV, or glibc's "corrupted size vs. prev_size"
    // SIGABRT) in about one run in three of a read-back stress (tests/gpu_readback_test.ts).
    staging.unmap();
    staging.destroy();
    return copy;
  }

  /** Reads `length` floats from `buffer` starting at float index `offset`. */
  async readFloat32(
    buffer: GPUBuffer,
    length: number = buffer.size / 4,
    offset = 0,
  ): Promise<Float32Array> {
    return new Float32Array(await this.read(buffer, length * 4, offset * 4));
  }

  /** Reads `length` unsigned integers from `buffer` starting at index `offset`. */
  async readUint32(
    buffer: GPUBuffer,
    length: number = buffer.size / 4,
    offset = 0,
  ): Promise<Uint32Array> {
    return new Uint32Array(await this.read(buffer, length * 4, offset * 4));
  }

  /** Resolves when the GPU has finished everything submitted so far. */
  async finish(): Promise<void> {
    await this.device.queue.onSubmittedWorkDone();
    this.checkAlive("finish");
  }

  /** Destroys the device; the object is unusable afterwards. */
  destroy(): void {
    this.device.destroy();
  }
}

/**
 * Compiles a compute pipeline inside a validation error scope: an invalid shader or pipeline
 * throws one {@linkcode GpuError} naming `label`, with the WGSL compiler's messages and their
 * lines. `layout` is "auto" and `entryPoint` "main" unless given.
 *
 * @example
 * ```ts ignore
 * const pipeline = await compileComputePipeline(gpu.device, "double", code, { constants: { N: 4 } });
 * ```
 */
export async function compileComputePipeline(
  device: GPUDevice,
  label: string,
  code: string,
  options: {
    constants?: Record<string, number>;
    entryPoint?: string;
    layout?: GPUPipelineLayout | "auto";
  } = {},
): Promise<GPUComputePipeline> {
  device.pushErrorScope("validation");
  const module = device.createShaderModule({ label, code });
  const pipeline = device.createComputePipeline({
    label,
    layout: options.layout ?? "auto",
    compute: { module, entryPoint: options.entryPoint ?? "main", constants: options.constants },
  });
  const error = await device.popErrorScope();
  if (error) {
    const info = await module.getCompilationInfo();
    const wgsl = info.messages.map((m) =>
      `${m.type} at ${m.lineNum}:${m.linePos}: ${m.message.trim()}`
    );
    throw new GpuError(
      label,
      `${error.message.trim()}${wgsl.length ? `\n${wgsl.join("\n")}` : ""}`,
    );
  }
  return pipeline;
}
