// Every kernel and variant in a real browser: headless Chromium (Dawn/Tint, a second WebGPU
// implementation beside Deno's wgpu/naga) runs the conformance cases. Ignored with one line
// where no Chromium is installed; under CI a missing browser fails.
import { expect } from "expect";
import type { ConformanceReport } from "../browser/tasks.ts";
import { conformanceCases } from "../gpu/conformance.ts";
import { MATMUL_FAMILY } from "../gpu/families.ts";
import { RMS_NORM_PAIR } from "../gpu/norm.ts";
import { cli, ignoreBrowserTests } from "./_browser.ts";

Deno.test({
  name: "browser conformance: one case of every kernel and variant passes in headless Chromium",
  ignore: ignoreBrowserTests,
  async fn() {
    const { code, out, progress } = await cli("conformance", "--quick", "--json");
    const report = JSON.parse(out) as ConformanceReport;
    expect({ code, failures: report.failures, progress }).toMatchObject({ code: 0, failures: [] });
    expect(report.adapter.browser).toMatch(/Chrome\/\d+/);
    expect(report.table).toMatch(/^adapter: .+\(.*Chrome\/\d+/);
    // every kernel and variant of the registry ran or says why it cannot run here
    const variants = new Set(conformanceCases().map((c) => `${c.kernel} ${c.variant}`));
    expect(report.passed + report.skipped.length).toBe(variants.size);
    for (const row of report.table.split("\n").slice(3, -1)) expect(row).toMatch(/ pass$/);
    expect(report.table.split("\n").length - 4).toBe(report.passed);
  },
});

Deno.test({
  name: "browser conformance --kernel: a matvec assuming subgroups of 32 fails where they are " +
    "smaller, and the table's header names the sizes",
  ignore: ignoreBrowserTests,
  async fn() {
    const { code, out } = await cli(
      "conformance",
      "--kernel",
      "examples/kernels/matvec_subgroup32.ts",
      "--json",
    );
    const report = JSON.parse(out.slice(0, out.lastIndexOf("}") + 1)) as ConformanceReport;
    const header = report.table.split("\n")[0];
    const sizes = /subgroup sizes (\d+)-(\d+)\)$/.exec(header);
    expect(header).toMatch(/^adapter: .+\(.*Chrome\/\d+.*; features: .*subgroups/);
    expect(sizes).not.toBeNull();
    const [min, max] = [Number(sizes![1]), Number(sizes![2])];
    expect(min).toBeLessThanOrEqual(max);
    // One subgroupAdd sums the workgroup's 32 lanes only where a subgroup holds all 32: with
    // smaller subgroups, every shape whose dot products span more lanes than one subgroup fails.
    const shapes = MATMUL_FAMILY.pair.conformance;
    const wrong = shapes.filter((s) => min < 32 && s.inDim > max).map((s) =>
      MATMUL_FAMILY.pair.describe(s)
    );
    expect(report.failures.map((f) => f.split(": ")[0].split(" ").at(-1))).toEqual(wrong);
    expect(report.passed).toBe(shapes.length - wrong.length);
    expect(code).toBe(wrong.length ? 1 : 0);
    if (min < 32) expect(wrong.length).toBeGreaterThan(0); // headless Chromium: subgroups of 4
  },
});

Deno.test({
  name: "browser conformance --kernel: the vec4 RMSNorm passes in Chromium as in Deno",
  ignore: ignoreBrowserTests,
  async fn() {
    const { code, out } = await cli("conformance", "--kernel", "examples/kernels/rms_norm.ts");
    const rows = out.trim().split("\n").slice(3, -1);
    expect(rows.map((r) => r.split(/\s{2,}/)[2])).toEqual(
      RMS_NORM_PAIR.conformance.map((s) => RMS_NORM_PAIR.describe(s)),
    );
    for (const row of rows) expect(row).toMatch(/^rmsNorm\s+vec4 rows\s.+ pass$/);
    expect(code).toBe(0);
    expect(await cli("bench", "--kernel", "examples/kernels/rms_norm.ts")).toMatchObject({
      code: 2,
      out: "browser: --kernel: only with conformance (see --help)\n",
    });
    const missing = await cli("conformance", "--kernel", "examples/kernels/nope.ts");
    expect(missing).toMatchObject({
      code: 1,
      out: "browser: --kernel: examples/kernels/nope.ts does not exist\n",
    });
  },
});
