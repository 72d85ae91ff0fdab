/**
 * The kernel-variants section of the report: per shape, the dispatches per decoded token and
 * the tuning table.
 *
 * @module
 */
import type { VariantsReport } from "../variants.ts";
import { formatTuneTable } from "../../gpu/tune.ts";

/**
 * The section as Markdown: per shape the dispatch counts and the tuning table.
 *
 * @example
 * ```ts
 * import { formatVariantsMarkdown } from "./variants.ts";
 * if (!formatVariantsMarkdown([]).startsWith("## Kernel variants")) throw new Error("wrong");
 * ```
 */
export function formatVariantsMarkdown(reports: readonly VariantsReport[]): string {
  const lines = ["## Kernel variants and tuning", ""];
  for (const r of reports) {
    const { fused, unfused } = r.dispatchesPerToken;
    lines.push(
      `### ${r.shape}`,
      "",
      `Dispatches per decoded token: fused ${fused}, unfused ${unfused} (${r.layers} layers; ` +
        `each count includes the embedding, final norm, classifier and token choice).`,
      "",
      "```",
      formatTuneTable(r.measurements, r.tuning.choices),
      "```",
      "",
    );
  }
  return lines.join("\n");
}
