// Kernels written outside gpu/ checked by the registry's references: the worked examples of
// examples/kernels/, the quantized families' byte contract, `deno task conformance --kernel`
// and `--limits default`. (The subgroup example runs in headless Chromium: browser_conformance_test.ts.)
import { expect } from "expect";
import { checkKernel, validateForeignKernels } from "../gpu/check_kernel.ts";
import {
  describeContract,
  formatErrorBudget,
  KERNEL_FAMILIES,
  kernelFamily,
  RMS_NORM_FAMILY,
} from "../gpu/families.ts";
import { formatConformanceTable, pairCases, runConformance } from "../gpu/conformance.ts";
import { requestGpu } from "../gpu/device.ts";
import { RMS_NORM_PAIR } from "../gpu/norm.ts";
import { conformanceCli } from "../cli/conformance.ts";
import { rmsNorm } from "../reference/norm.ts";
import { compare } from "../reference/compare.ts";
import { dequantize, quantize } from "../reference/quantize.ts";
import { kernels as vec4Norm } from "../examples/kernels/rms_norm.ts";
import { kernels as epsOutside } from "../examples/kernels/rms_norm_eps_outside.ts";
import { gpuTest, ignoreGpuTests } from "./_gpu.ts";

/** Table rows without the adapter line, the header and the totals. */
const rowsOf = (table: string) => table.split("\n").slice(3, -1);

gpuTest(
  "an RMSNorm written differently (vec4 loads, one workgroup per row) passes every rmsNorm shape",
  async (gpu) => {
    const check = await checkKernel(RMS_NORM_FAMILY, vec4Norm[0], { gpu });
    expect(check.results.map((r) => [r.shape, r.passed])).toEqual(
      RMS_NORM_PAIR.conformance.map((s) => [RMS_NORM_PAIR.describe(s), true]),
    );
    expect(check.passed).toBe(true);
    // both of the example's code paths ran: vec4 rows (dim % 4 = 0) and scalar ones
    const dims = RMS_NORM_PAIR.conformance.map((s) => s.dim % 4);
    expect(dims).toContain(0);
    expect(dims.some((d) => d !== 0)).toBe(true);
    // the same table as this project's own kernel: same header, shapes and columns
    const ours = formatConformanceTable(await runConformance(gpu, pairCases(RMS_NORM_PAIR)), "x");
    const columns = (line: string) => line.split(/\s{2,}/);
    expect(check.table.split("\n")[1].split(/\s+/)).toEqual(ours.split("\n")[1].split(/\s+/));
    expect(rowsOf(check.table).map((l) => columns(l)[2])).toEqual(
      rowsOf(ours).map((l) => columns(l)[2]),
    );
    expect(rowsOf(check.table).every((l) => /^rmsNorm\s+vec4 rows\s.+ intact\s+pass$/.test(l)))
      .toBe(true);
    expect(check.table.split("\n").at(-1)).toBe(
      `${RMS_NORM_PAIR.conformance.length} passed, 0 failed`,
    );
  },
);

gpuTest(
  "eps outside the square root fails on exactly the rows where the formulas differ, readably",
  async (gpu) => {
    // Which shapes tell the formulas apart, computed here in float64 from the pair's inputs.
    const { maxNmse, maxAbsError } = RMS_NORM_PAIR.tolerance;
    const tellApart = RMS_NORM_PAIR.conformance.filter((shape) => {
      const { x, weight } = RMS_NORM_PAIR.inputs(shape);
      const wrong = new Float32Array(x.length);
      for (let r = 0; r < shape.rows; r++) {
        const row = x.subarray(r * shape.dim, (r + 1) * shape.dim);
        const rms = Math.sqrt(row.reduce((s, v) => s + v * v, 0) / shape.dim);
        row.forEach((v, i) => wrong[r * shape.dim + i] = weight[i] * v / (rms + 1e-5));
      }
      const stats = compare(wrong, rmsNorm(x, weight));
      return stats.nmse > maxNmse || stats.maxAbsError > maxAbsError;
    }).map((s) => RMS_NORM_PAIR.describe(s));
    // the conformance shapes include such rows (the tiny-valued ones), and ordinary ones too
    expect(tellApart).toEqual(["2x288 scaled 0.001", "3x64 scaled 0.0001"]);

    const check = await checkKernel("rmsNorm", epsOutside[0], { gpu });
    expect(check.passed).toBe(false);
    expect(check.results.filter((r) => !r.passed).map((r) => r.shape)).toEqual(tellApart);
    const failing = rowsOf(check.table).filter((l) => l.includes("FAIL"));
    expect(failing.length).toBe(2);
    for (const line of failing) {
      expect(line).toMatch(
        /^rmsNorm\s+eps outside sqrt\s+\d+x\d+ scaled [\d.]+\s+\S+\s+\S+\s+intact\s+FAIL: NMSE > 1e-7, max abs > 0\.0001$/,
      );
    }
    expect(check.table.split("\n").at(-1)).toBe(
      `${RMS_NORM_PAIR.conformance.length - 2} passed, 2 failed`,
    );
  },
);

/** A matvec over a quantized family's bytes (the contract: GGUF bytes as u32 words). */
function quantMatvecWgsl(format: "f16" | "q8_0" | "q4_0"): string {
  const body = {
    f16: `for (var i = 0u; i < p.inDim; i++) {
      sum += half((o * p.inDim + i) * 2u) * x[t * p.inDim + i];
    }`,
    q8_0: `for (var b = 0u; b < p.inDim / 32u; b++) {
      let at = (o * (p.inDim / 32u) + b) * 34u;
      let d = half(at);
      for (var j = 0u; j < 32u; j++) {
        let q = f32((i32(byte(at + 2u + j)) << 24u) >> 24u);
        sum += d * q * x[t * p.inDim + b * 32u + j];
      }
    }`,
    q4_0: `for (var b = 0u; b < p.inDim / 32u; b++) {
      let at = (o * (p.inDim / 32u) + b) * 18u;
      let d = half(at);
      for (var j = 0u; j < 16u; j++) {
        let q = byte(at + 2u + j);
        sum += d * (f32(q & 15u) - 8.0) * x[t * p.inDim + b * 32u + j];
        sum += d * (f32(q >> 4u) - 8.0) * x[t * p.inDim + b * 32u + 16u + j];
      }
    }`,
  }[format];
  return `
struct Params { rows: u32, outDim: u32, inDim: u32 }
@group(0) @binding(0) var<storage, read> w: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
fn byte(i: u32) -> u32 { return (w[i / 4u] >> (8u * (i % 4u))) & 255u; }
fn half(i: u32) -> f32 { return unpack2x16float(byte(i) | (byte(i + 1u) << 8u)).x; }
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let o = id.x;
  let t = id.y;
  if (o >= p.outDim) { return; }
  var sum = 0.0;
  ${body}
  out[t * p.outDim + o] = sum;
}`;
}

gpuTest(
  "the quantized families' contract: a plain matvec over the GGUF bytes passes f16, Q8_0, Q4_0",
  async (gpu) => {
    for (const format of ["f16", "q8_0", "q4_0"] as const) {
      const family = kernelFamily(`matmul ${format}`);
      expect(family.format).toBe(format);
      const check = await checkKernel(family, {
        name: "bytes",
        wgsl: quantMatvecWgsl(format),
        workgroups: ({ rows, outDim }: { rows: number; outDim: number }) => [
          Math.ceil(outDim / 64),
          rows,
        ],
      }, { gpu });
      expect({ format, failures: check.results.filter((r) => !r.passed) }).toEqual({
        format,
        failures: [],
      });
      expect(check.results.length).toBe(family.pair.conformance.length);
    }
  },
);

gpuTest(
  "a kernel that does not compile fails every row with the compiler's message",
  async (gpu) => {
    const check = await checkKernel("add", {
      name: "broken",
      wgsl: "@compute @workgroup_size(1) fn main() { let a: u32 = 1.5; }",
      workgroups: () => 1,
    }, { gpu });
    expect(check.results.length).toBe(kernelFamily("add").pair.conformance.length);
    for (const r of check.results) {
      expect(r.passed).toBe(false);
      expect(r.error).toMatch(/^broken \(add \d+\): /);
    }
    // a kernel bound by a layout it does not match (an input declared read_write) fails too
    const mismatch = await checkKernel("add", {
      name: "read_write delta",
      wgsl: `@group(0) @binding(1) var<storage, read_write> delta: array<f32>;
      @compute @workgroup_size(1) fn main() { delta[0] = 1.0; }`,
      workgroups: () => 1,
    }, { gpu });
    expect(mismatch.results.every((r) => !r.passed && r.error)).toBe(true);
  },
);

gpuTest("a write one past the output's end breaks the guards and fails the row", async (gpu) => {
  const check = await checkKernel("add", {
    name: "off by one",
    wgsl: `struct Params { n: u32 }
      @group(0) @binding(0) var<storage, read_write> x: array<f32>;
      @group(0) @binding(1) var<storage, read> delta: array<f32>;
      @group(0) @binding(2) var<uniform> params: Params;
      @compute @workgroup_size(64) fn main(@builtin(global_invocation_id) id: vec3<u32>) {
        if (id.x < params.n) { x[id.x] += delta[id.x]; }
        if (id.x == params.n) { x[id.x] = 0.0; } // the bug: a terminator past the end
      }`,
    workgroups: ({ n }: { n: number }) => Math.ceil((n + 1) / 64),
  }, { gpu });
  // n = 1 and 257 leave x[n] inside the binding (rounded up to whole vec4s): the guard sees it;
  // for n = 288 and 2048 it lies past the binding, where WebGPU's bounds checks keep it out.
  const broken = check.results.filter((r) => !r.guardsIntact).map((r) => r.shape);
  expect(broken).toEqual(["1", "257"]);
  expect(rowsOf(check.table).filter((l) => l.includes("BROKEN"))).toEqual([
    expect.stringMatching(/^add\s+off by one\s+1\s+.*BROKEN\s+FAIL: wrote outside its output$/),
    expect.stringMatching(/^add\s+off by one\s+257\s+.*BROKEN\s+FAIL: wrote outside its output$/),
  ]);
});

Deno.test("every family's contract: bindings named, then the uniform; budgets from the reference", () => {
  expect(KERNEL_FAMILIES.map((f) => f.name)).toEqual([
    "rmsNorm",
    "softmax",
    "siluMul",
    "add",
    "matmul",
    "matmul f16",
    "matmul q8_0",
    "matmul q4_0",
    "matmul q4_k",
    "matmul q5_k",
    "matmul q6_k",
  ]);
  for (const family of KERNEL_FAMILIES) {
    const shape = family.pair.conformance[1];
    const data = family.data(shape, family.pair.inputs(shape));
    expect(data.length).toBe(family.bindings.length);
    expect(family.paramValues(shape).length).toBe(family.params.length);
    // the outputs, concatenated, are as long as the reference's
    const outputs = family.bindings.flatMap((b, i) => b.access === "read_write" ? [data[i]] : []);
    expect(outputs.reduce((n, o) => n + o.length, 0)).toBe(
      family.pair.reference(shape, family.pair.inputs(shape)).length,
    );
  }
  expect(describeContract(RMS_NORM_FAMILY).split("\n").slice(1, 5)).toEqual([
    "@group(0) @binding(0) var<storage, read> x: array<f32>; // rows·dim: rows, row-major",
    "@group(0) @binding(1) var<storage, read> weight: array<f32>; // dim: the gain",
    "@group(0) @binding(2) var<storage, read_write> out: array<f32>; // rows·dim: like x",
    "@group(0) @binding(3) var<uniform> params: Params; // struct Params { rows: u32, dim: u32, eps: f32 }",
  ]);
  // the Q8_0 budget holds for the reference's own round trip, and is not loose: half a step
  const w = Float32Array.from({ length: 64 }, (_, i) => Math.sin(i * 0.7));
  const budget = formatErrorBudget(w, "q8_0");
  const back = dequantize(quantize(w, "q8_0"), "q8_0", 64);
  expect(w.every((v, i) => Math.abs(v - back[i]) <= budget[i])).toBe(true);
  const step = Math.max(...w.slice(0, 32).map(Math.abs)) / 127;
  expect(budget[0]).toBeGreaterThanOrEqual(step / 2);
  expect(budget[0]).toBeLessThan(step);
});

Deno.test("a kernel module's exports are checked: one error naming the file and the field", () => {
  const error = (module: unknown) => {
    try {
      validateForeignKernels(module, "k.ts");
      return "no error";
    } catch (e) {
      return (e as Error).message;
    }
  };
  expect(error({})).toBe(
    "k.ts: kernels: expected an exported non-empty array (export const kernels: ForeignKernel[]), got undefined",
  );
  expect(error({ kernels: [{ family: "rmsnorm", name: "a", wgsl: "", workgroups: () => 1 }] }))
    .toMatch(/^k\.ts: kernels\[0\]\.family: expected one of "rmsNorm", .+, got "rmsnorm"$/);
  expect(error({ kernels: [{ family: "add", name: "a", wgsl: "", workgroups: 4 }] })).toBe(
    "k.ts: kernels[0].workgroups: expected a function of the shape, got 4",
  );
  expect(error({ kernels: vec4Norm })).toBe("no error");
});

Deno.test({
  name: "deno task conformance --kernel prints checkKernel's table; exit 1 on a failing kernel",
  ignore: ignoreGpuTests,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const run = async (...args: string[]) => {
      const lines: string[] = [];
      const code = await conformanceCli(args, (line) => lines.push(line));
      return { code, out: lines.join("\n") };
    };
    const good = await run("--kernel", "examples/kernels/rms_norm.ts", "--limits", "default");
    expect(good.code).toBe(0);
    const gpu = await requestGpu();
    try {
      const direct = await checkKernel("rmsNorm", vec4Norm[0], { gpu });
      expect(good.out.split("\n").slice(1).join("\n")).toBe(direct.table);
    } finally {
      gpu.destroy();
    }
    const bad = await run("--kernel", "examples/kernels/rms_norm_eps_outside.ts");
    expect(bad.code).toBe(1);
    expect(bad.out).toContain("6 passed, 2 failed");
    expect(await run("--limits", "all")).toEqual({
      code: 2,
      out: 'conformance: --limits: expected "default" or "adapter", got "all" (see --help)',
    });
    const missing = await run("--kernel", "examples/kernels/nope.ts");
    expect(missing.code).toBe(1);
    expect(missing.out).toMatch(/^conformance: --kernel examples\/kernels\/nope\.ts: /);
  },
});

Deno.test({
  name: "--limits default: the device has WebGPU's default limits, not the adapter's",
  ignore: ignoreGpuTests,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const gpu = await requestGpu({ limits: "default" });
    try {
      // the WebGPU specification's defaults
      expect(gpu.limits.maxStorageBufferBindingSize).toBe(134217728);
      expect(gpu.limits.maxComputeInvocationsPerWorkgroup).toBe(256);
      expect(gpu.limits.maxComputeWorkgroupStorageSize).toBe(16384);
    } finally {
      gpu.destroy();
    }
  },
});
