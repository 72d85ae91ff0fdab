// The oracle harness itself: it must fail wrong kernels, skip variants a device cannot run, and
// pick up a new registry entry with no other edit.
import { expect } from "expect";
import { compileElementwise, elementwiseWgsl } from "../gpu/kernel.ts";
import { type KernelPair, TIGHT } from "../gpu/pair.ts";
import { conformanceCases, judgeCase, pairCases } from "../gpu/conformance.ts";
import { KERNEL_PAIRS } from "../gpu/pairs.ts";
import { conformanceMain } from "../cli/conformance.ts";
import { benchKernels } from "../bench/kernel_table.ts";
import { add } from "../reference/add.ts";
import { Rng } from "../reference/random.ts";
import { gpuTest } from "./_gpu.ts";

type Mistake = "none" | "arithmetic" | "nan" | "out of bounds";

/** A residual add whose one variant makes `mistake`, as a registry entry. */
function wrongAddPair(
  mistake: Mistake,
  variant: Partial<KernelPair<{ n: number }, unknown>["variants"][0]> = {},
): KernelPair<{ n: number }, { x: Float32Array; delta: Float32Array }> {
  return {
    family: `wrong add (${mistake})`,
    describe: ({ n }) => `${n}`,
    inputs({ n }) {
      const rng = new Rng(99);
      return { x: rng.uniformArray(n), delta: rng.uniformArray(n) };
    },
    reference: (_, { x, delta }) => add(x, delta),
    conformance: [{ n: 100 }],
    bench: { quick: [{ n: 100 }], full: [{ n: 100 }] },
    bytes: ({ n }) => 12 * n,
    flops: ({ n }) => n,
    tolerance: TIGHT,
    variants: [{
      name: "wrong",
      async record(gpu, { n }, { x, delta }, buffers) {
        const body = mistake === "arithmetic"
          ? "x[i] += delta[i] * 1.01;"
          : mistake === "nan"
          ? "x[i] = select(x[i] + delta[i], sqrt(-1.0 - x[i] * x[i]), i == 7u);"
          : "x[i] += delta[i];";
        const code = elementwiseWgsl(
          `@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read> delta: array<f32>;`,
          body,
        );
        const kernel = await compileElementwise(gpu, `add ${mistake}`, code, n, ["x", "delta"]);
        const out = buffers.output(n, x);
        // The out-of-bounds mistake: the output bound from the buffer's start, as an offset bug would.
        const target = mistake === "out of bounds" && "buffer" in out
          ? { buffer: out.buffer }
          : out;
        return kernel.bind({ x: target, delta: buffers.input(delta) });
      },
      ...variant,
    }],
  };
}

gpuTest("the harness fails a numerically wrong kernel", async (gpu) => {
  const result = await judgeCase(gpu, pairCases(wrongAddPair("arithmetic"))[0]);
  expect(result.passed).toBe(false);
  expect(result.nmse).toBeGreaterThan(1e-7);
  expect(result.guardsIntact).toBe(true);
});

gpuTest("the harness fails a kernel that writes NaN", async (gpu) => {
  const result = await judgeCase(gpu, pairCases(wrongAddPair("nan"))[0]);
  expect(result.passed).toBe(false);
  expect(result.firstNonFinite).toBe(7);
});

gpuTest("the harness fails a kernel that writes outside its output", async (gpu) => {
  const result = await judgeCase(gpu, pairCases(wrongAddPair("out of bounds"))[0]);
  expect(result.passed).toBe(false);
  expect(result.guardsIntact).toBe(false);
});

gpuTest(
  "a variant whose feature or predicate the device lacks is skipped, not run",
  async (gpu) => {
    const feature = wrongAddPair("arithmetic", {
      features: ["no-such-feature" as GPUFeatureName],
    });
    const result = await judgeCase(gpu, pairCases(feature)[0]);
    expect(result.skipped).toBe("needs no-such-feature");
    const predicate = wrongAddPair("arithmetic", { applies: ({ n }) => n > 1000 });
    expect((await judgeCase(gpu, pairCases(predicate)[0])).skipped).toBe(
      "does not apply to this shape",
    );
    const lines: string[] = [];
    expect(await conformanceMain(pairCases(feature), (line) => lines.push(line))).toBe(0);
    expect(lines.join("\n")).toContain("0 passed, 0 failed, 1 skipped");
  },
);

gpuTest(
  "deno task conformance prints its table with the variant and exits 1 on a wrong kernel",
  async (gpu) => {
    const lines: string[] = [];
    const code = await conformanceMain(
      pairCases(wrongAddPair("arithmetic")),
      (line) => lines.push(line),
    );
    const output = lines.join("\n");
    expect(code).toBe(1);
    expect(output).toMatch(/adapter: .+/);
    expect(output).toMatch(/kernel\s+variant\s+shape\s+NMSE/);
    expect(output).toMatch(/wrong add \(arithmetic\)\s+wrong\s+100\s+\S+\s+\S+\s+intact\s+FAIL/);
    expect(output).toContain("0 passed, 1 failed");
    expect(await conformanceMain(pairCases(wrongAddPair("none")), () => {})).toBe(0);
    expect(gpu).toBeDefined();
  },
);

Deno.test("a new registry entry shows up in the conformance cases and the benchmark's kernels", () => {
  const pair = wrongAddPair("none");
  const cases = conformanceCases([...KERNEL_PAIRS, pair]);
  expect(cases.length).toBe(conformanceCases().length + 1);
  expect(cases.at(-1)).toMatchObject({
    kernel: "wrong add (none)",
    variant: "wrong",
    shape: "100",
  });
  const kernels = benchKernels(true, [pair]);
  expect(kernels.map((k) => [k.kernel, k.variant, k.shape, k.bytes])).toEqual([
    ["wrong add (none)", "wrong", "100", 1200],
  ]);
});

Deno.test("every registry entry has shapes, a default variant and positive byte counts", () => {
  for (const pair of KERNEL_PAIRS) {
    expect(pair.conformance.length).toBeGreaterThan(0);
    // projections and the K-quant matmuls have no single default: the adapter class chooses
    // their layout (gpu/tuning.ts, gpu/matmul/quant.ts); their first variant is the row layout
    // (Q8 activations for the packed projections)
    const byClass = pair.family === "projection" || /^matmul q\d_k$/.test(pair.family);
    const first = pair.family === "projection packed" ? "q8 row" : byClass ? "row" : "default";
    expect(pair.variants[0]?.name).toBe(first);
    for (const shape of [...pair.conformance, ...pair.bench.full]) {
      expect(pair.bytes(shape)).toBeGreaterThan(0);
      expect(pair.flops(shape)).toBeGreaterThanOrEqual(0);
    }
  }
});

Deno.test("byte and FLOP counts follow the one rule, by hand", () => {
  const byFamily = new Map(KERNEL_PAIRS.map((p) => [p.family, p]));
  // matvec 2x3: W (6) + x (3) read, out (2) written
  expect(byFamily.get("matmul")!.bytes({ rows: 1, outDim: 2, inDim: 3 })).toBe(4 * 11);
  expect(byFamily.get("matmul")!.flops({ rows: 1, outDim: 2, inDim: 3 })).toBe(12);
  // attention decode at pos 2, 1 head of 4: q and out (8), keys and values of 3 positions (24)
  const decode = { rows: 1, nHeads: 1, nKvHeads: 1, headDim: 4, pos: 2 };
  expect(byFamily.get("attention")!.bytes(decode)).toBe(4 * 32);
  // 3 visible keys: dot product and weighted sum of 4 features each
  expect(byFamily.get("attention")!.flops(decode)).toBe(3 * 2 * 2 * 4);
  // two rows from pos 2 see 3 and 4 keys
  expect(byFamily.get("attention")!.flops({ ...decode, rows: 2 })).toBe(7 * 2 * 2 * 4);
});
