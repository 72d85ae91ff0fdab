/**
 * Conformance for kernels this project did not write: {@linkcode checkKernel} runs a foreign
 * WGSL kernel at every conformance shape of a family ({@linkcode KernelFamily}), with the
 * family's seeded inputs, guard regions around its outputs and the family's reference and
 * tolerance, and returns the rows `deno task conformance` prints. The kernel is bound by the
 * family's contract (plain storage buffers in a documented order, then a uniform with the
 * shape; see `families.ts`), not through this project's `Kernel` classes.
 *
 * No Deno APIs: this module runs in a browser too (`deno task browser conformance --kernel`).
 *
 * @module
 */
import { compileComputePipeline, type Dispatch, type Gpu, GpuError } from "./device.ts";
import type { AnyKernelFamily, KernelFamily } from "./families.ts";
import { kernelFamily } from "./families.ts";
import {
  type ConformanceResult,
  formatConformanceTable,
  pairCases,
  runConformance,
} from "./conformance.ts";
import type { KernelVariant } from "./pair.ts";

/** A workgroup grid: x, or x, y (and z). */
export type WorkgroupGrid = number | readonly [number, number?, number?];

/**
 * A kernel to check against a family: its WGSL, entry point and grid. `S` is the family's shape
 * (e.g. `{ rows, dim }` for rmsNorm; see `KernelFamily.pair.conformance`).
 */
export interface CandidateKernel<S> {
  /** Shown in the table's variant column, e.g. "vec4 rows". */
  readonly name: string;
  /** The WGSL module, or a function building one per shape (to specialize on it). */
  readonly wgsl: string | ((shape: S) => string);
  /** The entry point; "main" if absent. */
  readonly entryPoint?: string;
  /** Workgroups to dispatch for `shape`. */
  workgroups(shape: S): WorkgroupGrid;
  /** Override constants for `shape`, if the module declares any. */
  constants?(shape: S): Record<string, number>;
  /** Device features the kernel needs (e.g. "subgroups", "shader-f16"); skipped without. */
  readonly features?: readonly GPUFeatureName[];
}

/**
 * What a kernel module exports for `deno task conformance --kernel module.ts`:
 * `export const kernels: ForeignKernel[]`, each naming the family it implements.
 */
// deno-lint-ignore no-explicit-any
export interface ForeignKernel<S = any> extends CandidateKernel<S> {
  /** The family's name, e.g. "rmsNorm" (see `KERNEL_FAMILIES`). */
  readonly family: string;
}

/** Options of {@linkcode checkKernel}. */
export interface CheckKernelOptions {
  /** The device to run on. */
  gpu: Gpu;
  /** Called with each row as it is judged. */
  onResult?: (result: ConformanceResult) => void;
}

/** What {@linkcode checkKernel} found. */
export interface KernelCheck {
  /** One row per conformance shape, as `deno task conformance` prints them. */
  results: ConformanceResult[];
  /** Whether every shape ran and passed (a shape skipped for a missing feature is no pass). */
  passed: boolean;
  /** The table, under the adapter line ({@linkcode adapterHeadline}). */
  table: string;
}

/**
 * The adapter line of a conformance table: its description and its subgroup sizes where it has
 * subgroups (a kernel that assumes one size fails on another: the line says which ran).
 *
 * @example
 * ```ts ignore
 * import { adapterHeadline, requestGpu } from "./mod.ts";
 * console.log(adapterHeadline(await requestGpu())); // e.g. "swiftshader; subgroups 4-4"
 * ```
 */
export function adapterHeadline(gpu: Gpu): string {
  return `${gpu.adapterDescription}${subgroupNote(gpu)}`;
}

function subgroupNote(gpu: Gpu): string {
  const sizes = gpu.subgroupSizes;
  if (!gpu.features.has("subgroups")) return "; no subgroups";
  return sizes ? `; subgroup sizes ${sizes.min}-${sizes.max}` : "; subgroups (sizes unreported)";
}

function grid(value: WorkgroupGrid): [number, number, number] {
  const [x, y = 1, z = 1] = typeof value === "number" ? [value] : value;
  return [x, y ?? 1, z ?? 1];
}

/** The shape uniform: the params' values, 4 bytes each, padded to 16 bytes. */
function paramsBuffer(gpu: Gpu, family: AnyKernelFamily, shape: unknown): GPUBuffer {
  const values = family.paramValues(shape);
  const raw = new ArrayBuffer(Math.max(16, Math.ceil(values.length / 4) * 16));
  const view = new DataView(raw);
  family.params.forEach((p, i) => {
    if (p.type === "f32") view.setFloat32(4 * i, values[i], true);
    else view.setUint32(4 * i, values[i], true);
  });
  const buffer = gpu.device.createBuffer({
    label: `${family.name} params`,
    size: raw.byteLength,
    usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
  });
  gpu.device.queue.writeBuffer(buffer, 0, raw);
  return buffer;
}

/** The bind group layout of a family's contract: storage buffers, then the uniform. */
function contractLayout(gpu: Gpu, family: AnyKernelFamily): GPUBindGroupLayout {
  return gpu.device.createBindGroupLayout({
    label: `${family.name} contract`,
    entries: [
      ...family.bindings.map((b, binding): GPUBindGroupLayoutEntry => ({
        binding,
        visibility: GPUShaderStage.COMPUTE,
        buffer: { type: b.access === "read" ? "read-only-storage" : "storage" },
      })),
      {
        binding: family.bindings.length,
        visibility: GPUShaderStage.COMPUTE,
        buffer: { type: "uniform" },
      },
    ],
  });
}

/** Compiles the candidate against the contract's layout; WGSL errors name the kernel. */
function candidatePipeline(
  gpu: Gpu,
  label: string,
  layout: GPUBindGroupLayout,
  code: string,
  entryPoint: string,
  constants: Record<string, number>,
): Promise<GPUComputePipeline> {
  return compileComputePipeline(gpu.device, label, code, {
    constants,
    entryPoint,
    layout: gpu.device.createPipelineLayout({ bindGroupLayouts: [layout] }),
  });
}

/** The candidate as a variant of the family's registry entry. */
function candidateVariant<S, I>(
  family: KernelFamily<S, I>,
  candidate: CandidateKernel<S>,
): KernelVariant<S, I> {
  return {
    name: candidate.name,
    features: candidate.features,
    async record(gpu, shape, inputs, buffers): Promise<Dispatch[]> {
      const label = `${candidate.name} (${family.name} ${family.pair.describe(shape)})`;
      const data = family.data(shape, inputs);
      const resources = family.bindings.map((b, i) =>
        b.access === "read"
          ? { buffer: buffers.input(data[i], b.name) }
          : buffers.output(data[i].length, data[i], b.type)
      );
      const layout = contractLayout(gpu, family);
      const code = typeof candidate.wgsl === "string" ? candidate.wgsl : candidate.wgsl(shape);
      const pipeline = await candidatePipeline(
        gpu,
        label,
        layout,
        code,
        candidate.entryPoint ?? "main",
        candidate.constants?.(shape) ?? {},
      );
      const workgroups = grid(candidate.workgroups(shape));
      const max = gpu.limits.maxComputeWorkgroupsPerDimension;
      if (workgroups.some((n) => !Number.isInteger(n) || n < 1 || n > max)) {
        throw new GpuError(
          label,
          `workgroups: expected whole numbers in 1..${max}, got ${workgroups.join("x")}`,
        );
      }
      gpu.device.pushErrorScope("validation");
      const bindGroup = gpu.device.createBindGroup({
        label,
        layout,
        entries: [
          ...resources.map((resource, binding) => ({
            binding,
            resource: "buffer" in resource ? resource : { buffer: resource },
          })),
          {
            binding: family.bindings.length,
            resource: { buffer: paramsBuffer(gpu, family, shape) },
          },
        ],
      });
      const error = await gpu.device.popErrorScope();
      if (error) throw new GpuError(label, error.message);
      return [{ label, pipeline, bindGroup, workgroups }];
    },
  };
}

/**
 * Checks a kernel written outside this project against a family's reference: runs it at every
 * conformance shape of the family, on the family's seeded inputs, with guard regions around its
 * outputs, and judges each shape by the family's tolerance (the bound this project's own kernels
 * meet). Returns the rows and the table `deno task conformance` prints. A WGSL error, a missing
 * feature or a bad grid is a failed (or skipped) row, not a throw.
 *
 * @example
 * ```ts ignore
 * import { checkKernel, requestGpu } from "./mod.ts";
 * const gpu = await requestGpu();
 * const check = await checkKernel("add", {
 *   name: "mine",
 *   wgsl: `@group(0) @binding(0) var<storage, read_write> x: array<f32>;
 *          @group(0) @binding(1) var<storage, read> delta: array<f32>;
 *          struct Params { n: u32 }
 *          @group(0) @binding(2) var<uniform> params: Params;
 *          @compute @workgroup_size(64) fn main(@builtin(global_invocation_id) id: vec3<u32>) {
 *            if (id.x < params.n) { x[id.x] += delta[id.x]; }
 *          }`,
 *   workgroups: ({ n }) => Math.ceil(n / 64),
 * }, { gpu });
 * console.log(check.table);
 * ```
 */
export async function checkKernel<S, I>(
  family: KernelFamily<S, I> | string,
  candidate: CandidateKernel<S>,
  options: CheckKernelOptions,
): Promise<KernelCheck> {
  const contract = (typeof family === "string" ? kernelFamily(family) : family) as KernelFamily<
    S,
    I
  >;
  const pair = { ...contract.pair, variants: [candidateVariant(contract, candidate)] };
  const results = await runConformance(options.gpu, pairCases(pair), options.onResult);
  return {
    results,
    passed: results.every((r) => r.passed),
    table: formatConformanceTable(results, adapterHeadline(options.gpu)),
  };
}

/**
 * Checks every kernel of a kernel module (`export const kernels: ForeignKernel[]`) and formats
 * one table for all of them.
 *
 * @example
 * ```ts ignore
 * import { checkKernels, requestGpu, validateForeignKernels } from "./mod.ts";
 * const module = await import("./my_kernels.ts");
 * const check = await checkKernels(validateForeignKernels(module, "my_kernels.ts"), { gpu: await requestGpu() });
 * console.log(check.table);
 * ```
 */
export async function checkKernels(
  kernels: readonly ForeignKernel[],
  options: CheckKernelOptions,
): Promise<KernelCheck> {
  const results: ConformanceResult[] = [];
  for (const kernel of kernels) {
    results.push(...(await checkKernel(kernel.family, kernel, options)).results);
  }
  return {
    results,
    passed: results.every((r) => r.passed),
    table: formatConformanceTable(results, adapterHeadline(options.gpu)),
  };
}

/**
 * The `kernels` export of a kernel module, checked: an array of {@linkcode ForeignKernel}s with
 * known families. Throws one error naming `source`, the field, what was expected and what came.
 *
 * @example
 * ```ts
 * import { validateForeignKernels } from "./check_kernel.ts";
 * let message = "";
 * try {
 *   validateForeignKernels({ kernels: [{ family: "rmsNorm", name: "x", wgsl: 3 }] }, "m.ts");
 * } catch (e) {
 *   message = (e as Error).message;
 * }
 * if (!message.startsWith("m.ts: kernels[0].wgsl: expected")) throw new Error(message);
 * ```
 */
export function validateForeignKernels(module: unknown, source: string): ForeignKernel[] {
  const fail = (field: string, expected: string, got: unknown): never => {
    const shown = typeof got === "function" ? "a function" : JSON.stringify(got) ?? String(got);
    throw new Error(`${source}: ${field}: expected ${expected}, got ${shown}`);
  };
  const kernels = (module as { kernels?: unknown } | null)?.kernels;
  if (!Array.isArray(kernels) || kernels.length === 0) {
    fail("kernels", "an exported non-empty array (export const kernels: ForeignKernel[])", kernels);
  }
  return (kernels as unknown[]).map((kernel, i) => {
    const at = `kernels[${i}]`;
    if (typeof kernel !== "object" || kernel === null) fail(at, "an object", kernel);
    const k = kernel as Record<string, unknown>;
    if (typeof k.family !== "string") fail(`${at}.family`, "a family name", k.family);
    try {
      kernelFamily(k.family as string);
    } catch (error) {
      throw new Error(`${source}: ${at}.${(error as Error).message}`);
    }
    if (typeof k.name !== "string" || !k.name) fail(`${at}.name`, "a non-empty string", k.name);
    if (typeof k.wgsl !== "string" && typeof k.wgsl !== "function") {
      fail(`${at}.wgsl`, "a WGSL string or a function of the shape", k.wgsl);
    }
    if (typeof k.workgroups !== "function") {
      fail(`${at}.workgroups`, "a function of the shape", k.workgroups);
    }
    for (const field of ["entryPoint"]) {
      if (k[field] !== undefined && typeof k[field] !== "string") {
        fail(`${at}.${field}`, "a string", k[field]);
      }
    }
    if (k.constants !== undefined && typeof k.constants !== "function") {
      fail(`${at}.constants`, "a function of the shape", k.constants);
    }
    if (k.features !== undefined && !Array.isArray(k.features)) {
      fail(`${at}.features`, "an array of feature names", k.features);
    }
    return kernel as ForeignKernel;
  });
}
