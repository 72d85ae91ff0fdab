// Every runnable example of the documentation (JSDoc and Markdown `ts` blocks not marked
// `ignore`), each a module of its own, all in this one test module, and all type-checked by
// `deno check --doc-only`. `deno test --doc` would start a test runtime per example, and each
// of Deno 2.9.6's test runtimes allocates an 80 MB array (`new Array(10_000_000)`, 40_bench.js)
// as it starts: about 0.35 s of CPU per example on a 2-core VM (docs/testing.md).
import { expect } from "expect";
import { docExamples } from "../tools/doc_examples.ts";

const root = new URL("../", import.meta.url);
const SKIP_DIRS = new Set([".git", "node_modules", "results"]);

function files(dir: URL): URL[] {
  const out: URL[] = [];
  for (const entry of [...Deno.readDirSync(dir)].sort((a, b) => a.name < b.name ? -1 : 1)) {
    if (entry.isDirectory) {
      if (!SKIP_DIRS.has(entry.name)) out.push(...files(new URL(`${entry.name}/`, dir)));
    } else if (entry.name.endsWith(".ts")) out.push(new URL(entry.name, dir));
  }
  return out;
}

/**
 * The example as a module: relative specifiers made absolute against its file, and its name as
 * a last comment, so that two examples with the same text are still two modules (an import of a
 * URL already loaded would not run it again).
 */
function moduleUrl(file: string, code: string, name: string): string {
  const absolute = code.replace(
    /(\bfrom\s*|\bimport\s*\(?\s*)(["'])(\.{1,2}\/[^"']+)\2/g,
    (_, head: string, quote: string, specifier: string) =>
      `${head}${quote}${new URL(specifier, file).href}${quote}`,
  );
  const bytes = new TextEncoder().encode(`${absolute}// ${name}\n`);
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return `data:application/typescript;base64,${btoa(binary)}`;
}

const sources = [
  ...files(root),
  new URL("README.md", root),
  ...[...Deno.readDirSync(new URL("docs/", root))].filter((e) => e.name.endsWith(".md"))
    .map((e) => new URL(`docs/${e.name}`, root)).sort((a, b) => a.href < b.href ? -1 : 1),
];
const examples = sources.flatMap((file) => docExamples(file.href, Deno.readTextFileSync(file)));
for (const example of examples) {
  const name = `./${example.file.slice(root.href.length)}#${example.lines[0]}-${example.lines[1]}`;
  Deno.test(name, async () => {
    await import(moduleUrl(example.file, example.code, name));
  });
}

Deno.test("the documentation's runnable examples type-check, and are the blocks deno check finds", async () => {
  // every source, not only those with examples found: a file whose blocks were all missed counts
  const paths = sources.map((u) => u.pathname);
  // A cache of its own: Deno prints a block's name only when it checks it, not on a cache hit.
  const denoDir = await Deno.makeTempDir({ prefix: "doc-examples-check-" });
  const { code, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["check", "--doc-only", ...paths],
    cwd: root.pathname,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", DENO_DIR: denoDir },
  }).output().finally(() => Deno.remove(denoDir, { recursive: true }));
  const printed = new TextDecoder().decode(stderr);
  expect({ code, errors: printed.split("\n").filter((l) => l && !l.startsWith("Check ")) })
    .toEqual({ code: 0, errors: [] });
  // Deno names a block by its fences' lines (the opening fence to one past the closing one);
  // tools/doc_examples.ts by its code's: the same blocks, an independent reading of them.
  const checked = [...printed.matchAll(/^Check (\S+\.(?:ts|md)#\d+-\d+)\.ts$/gm)]
    .map((m) => m[1]).sort();
  const ours = examples.map((e) =>
    `${e.file.slice(root.href.length)}#${e.lines[0] - 1}-${e.lines[1] + 2}`
  ).sort();
  expect(ours).toEqual(checked);
});

Deno.test("docExamples finds the ts blocks not marked ignore, with their lines", () => {
  const fence = "`".repeat(3);
  const ts = [
    "/** One line: no example. */",
    "/**",
    " * Text.",
    " *",
    " * @example",
    ` * ${fence}ts`,
    ' * import { a } from "./a.ts";',
    " * a();",
    ` * ${fence}`,
    ` * ${fence}ts ignore`,
    " * notRun();",
    ` * ${fence}`,
    ` * ${fence}sh`,
    " * deno task bench",
    ` * ${fence}`,
    " */",
    "export const b = 1; // not in a comment:",
    `// ${fence}ts`,
    "/** @example",
    ` * ${fence}ts`,
    " * second();",
    ` * ${fence}`,
    " * and text that ends the comment */",
  ].join("\n");
  expect(docExamples("file:///x/a.ts", ts)).toEqual([
    { file: "file:///x/a.ts", lines: [7, 8], code: 'import { a } from "./a.ts";\na();\n' },
    { file: "file:///x/a.ts", lines: [21, 21], code: "second();\n" },
  ]);
  const md = [
    "# Title",
    `${fence}ts`,
    "one();",
    fence,
    `${fence}ts ignore`,
    "no();",
    fence,
    `- a list item:`,
    `  ${fence}ts`,
    "  two();",
    `  ${fence}`,
    `${fence}text`,
    `${fence}ts`, // inside a text block: not a fence of its own
    fence,
  ].join("\n");
  expect(docExamples("file:///x/a.md", md).map((e) => [e.lines, e.code])).toEqual([
    [[3, 3], "one();\n"],
    [[10, 10], "  two();\n"],
  ]);
});
