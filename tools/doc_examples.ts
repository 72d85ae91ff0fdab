/**
 * The runnable examples of the package's documentation: every ```` ```ts ```` block of a JSDoc
 * comment or a Markdown file that is not marked `ignore`, as `deno test --doc` finds them.
 * `tests/doc_examples_test.ts` runs them all in one test module.
 *
 * @module
 */

/** One runnable example. */
export interface DocExample {
  /** The file it is in (a `file:` URL). */
  file: string;
  /** First and last line of its code (1-based, inclusive). */
  lines: [number, number];
  /** Its code, the comment's leading `*` removed. */
  code: string;
}

const FENCE = /^(\s*)```(\S*)(.*)$/;

/**
 * The runnable examples of one file: JSDoc blocks of a `.ts` file, fenced blocks of a `.md`
 * file; a fence's language must be `ts` and its attributes must not include `ignore`.
 *
 * @example
 * ```ts
 * import { docExamples } from "./doc_examples.ts";
 * const fence = "`".repeat(3);
 * const text = [
 *   "/**", " * @example", ` * ${fence}ts`, " * const x = 1;", ` * ${fence}`,
 *   ` * ${fence}ts ignore`, " * skipped();", ` * ${fence}`, " *" + "/",
 * ].join("\n");
 * const found = docExamples("file:///a.ts", text);
 * if (found.length !== 1 || found[0].code !== "const x = 1;\n") throw new Error("wrong");
 * if (found[0].lines[0] !== 4 || found[0].lines[1] !== 4) throw new Error("wrong lines");
 * ```
 */
export function docExamples(file: string, text: string): DocExample[] {
  const lines = text.split("\n");
  const markdown = file.endsWith(".md");
  const examples: DocExample[] = [];
  let inComment = false;
  let open: { start: number; run: boolean; body: string[] } | undefined;
  for (const [i, raw] of lines.entries()) {
    let line = raw;
    if (!markdown) {
      if (!inComment) {
        if (/^\s*\/\*\*/.test(raw) && !/\*\/\s*$/.test(raw.replace(/^\s*\/\*\*/, ""))) {
          inComment = true;
        }
        continue;
      }
      if (/^\s*\*\/\s*$/.test(raw) || /\*\/\s*$/.test(raw) && !open) {
        inComment = false;
        open = undefined;
        continue;
      }
      line = raw.replace(/^\s*\* ?/, "");
    }
    const fence = FENCE.exec(line);
    if (open) {
      if (fence && fence[2] === "" && fence[3].trim() === "") {
        if (open.run) {
          examples.push({ file, lines: [open.start, i], code: open.body.join("\n") + "\n" });
        }
        open = undefined;
      } else open.body.push(line);
    } else if (fence) {
      const attributes = fence[3].trim().split(/\s+/);
      open = { start: i + 2, run: fence[2] === "ts" && !attributes.includes("ignore"), body: [] };
    }
  }
  return examples;
}
