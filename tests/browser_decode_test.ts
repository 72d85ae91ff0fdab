// The decoder in a real browser: headless Chromium decodes stories260K (with the default and
// the subgroup projections) and a TinyLlama-shaped step at WebGPU's default limits, each checked
// against the CPU reference. Ignored with one line where no Chromium is installed; under CI a
// missing browser fails.
import { expect } from "expect";
import type { ConformanceReport } from "../browser/tasks.ts";
import { conformanceCases } from "../gpu/conformance.ts";
import { cli, ignoreBrowserTests } from "./_browser.ts";
import { LILY } from "./_models.ts";

Deno.test({
  name: "browser step: a TinyLlama-1.1B-shaped f16 decode step at WebGPU's default limits",
  ignore: ignoreBrowserTests,
  async fn() {
    // the 131 MB f16 classifier exceeds the default 128 MiB binding: it must split
    const { code, out } = await cli("step", "--limits", "default");
    expect(out).toContain(
      "limits: maxStorageBufferBindingSize 134217728, maxBufferSize 268435456, " +
        "maxComputeWorkgroupStorageSize 16384, maxComputeInvocationsPerWorkgroup 256, " +
        "maxStorageBuffersPerShaderStage 8; largest matrix 131072000 bytes",
    );
    // fused: embedding, five per layer (six split), final norm, classifier, token choice
    const dispatches = Number(/; (\d+) dispatches per token/.exec(out)![1]);
    expect(dispatches).toBeLessThanOrEqual(1 + 6 + 2 + 4);
    const nmse = [...out.matchAll(/logit NMSE (\S+) against the CPU reference ok/g)].map((m) =>
      Number(m[1])
    );
    expect(nmse).toHaveLength(2);
    for (const e of nmse) expect(e).toBeLessThan(1e-9);
    expect(code).toBe(0);
  },
});

Deno.test({
  name: "browser decode: the page's greedy stories260K story is the CPU reference's",
  ignore: ignoreBrowserTests,
  async fn() {
    const { code, out } = await cli("decode", "--steps", "40");
    expect(out).toContain(LILY);
    expect(out).toContain("matches the CPU reference in Deno: all 45 token ids");
    expect(code).toBe(0);
  },
});

Deno.test({
  name: "browser subgroup64: Chromium's subgroups run every case of the projection and a decode",
  ignore: ignoreBrowserTests,
  async fn() {
    // Deno's lavapipe and GL adapters have no subgroups; Dawn's SwiftShader has them (size 4).
    const conformance = await cli("conformance", "--variant", "subgroup64", "--json");
    const report = JSON.parse(conformance.out) as ConformanceReport;
    expect(report.adapter.features).toContain("subgroups");
    expect({ code: conformance.code, failures: report.failures }).toEqual({
      code: 0,
      failures: [],
    });
    const cases = conformanceCases().filter((c) => c.variant === "subgroup64");
    expect(report.passed + report.skipped.length).toBe(cases.length);
    expect(report.passed).toBeGreaterThanOrEqual(10);
    // skipped only where the layout never applies (inDim < 64), never for want of the feature
    for (const skip of report.skipped) expect(skip).toMatch(/: does not apply to this shape$/);
    // The fused decode with every projection subgroup64 (a tuning's choice that cannot run is
    // an error, not a fallback): the CPU reference's greedy story.
    const decode = await cli("decode", "--steps", "40", "--projection", "subgroup64");
    expect(decode.out).toContain(LILY);
    expect(decode.out).toContain("subgroup64 projections");
    expect(decode.out).toContain("matches the CPU reference in Deno: all 45 token ids");
    expect(decode.code).toBe(0);
  },
});
