/**
 * The house rules of the import graph, run by `deno task check`:
 *
 * - a `_file.ts` is private to its folder: no file in another folder imports it (tests are
 *   white-box and exempt, as std's tests beside their modules are);
 * - imports run down the layers only: `reference/` < `gpu/` < `model/` < `cli/` < `bench/`,
 *   `fuzz/` < `browser/` (a folder imports its own layer and those below; `tests/` and `tools/`
 *   stand outside);
 * - the graph has no cycle (type-only imports count: a cycle of types is still two files that
 *   cannot be read apart).
 *
 * It reads the static `import`/`export ... from` statements of every `.ts` file below the
 * repository root (comments, JSDoc examples included, are skipped) and exits 1 listing every
 * violation.
 *
 * @module
 */
import { dirname, join, normalize, relative } from "node:path";

const ROOT = normalize(join(dirname(new URL(import.meta.url).pathname), ".."));
const SKIP = new Set([".git", "node_modules", "results"]);

/** Layer of each top-level folder: a module imports only from its layer or below. */
const LAYERS: Record<string, number> = {
  reference: 0,
  gpu: 1,
  model: 2,
  cli: 3,
  bench: 4,
  fuzz: 4,
  browser: 5,
};

/** Every `.ts` file below `dir`, relative to the root. */
function tsFiles(dir: string): string[] {
  const found: string[] = [];
  for (const entry of Deno.readDirSync(join(ROOT, dir))) {
    const path = dir ? `${dir}/${entry.name}` : entry.name;
    if (entry.isDirectory && !SKIP.has(entry.name) && !entry.name.startsWith(".")) {
      found.push(...tsFiles(path));
    } else if (entry.isFile && entry.name.endsWith(".ts")) found.push(path);
  }
  return found;
}

/** The relative specifiers a module imports, resolved to root-relative paths. */
export function importsOf(file: string, source: string): string[] {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
  const specifiers = [
    ...code.matchAll(/^\s*(?:import|export)\b[^;]*?\bfrom\s*["']([^"']+)["']/gm),
    ...code.matchAll(/^\s*import\s*["']([^"']+)["']/gm),
  ].map((m) => m[1]);
  return specifiers.filter((s) => s.startsWith(".")).map((s) => normalize(join(dirname(file), s)));
}

/** Cycles of `graph` (one per strongly connected component of two or more, or a self-loop). */
export function cycles(graph: Map<string, string[]>): string[][] {
  let index = 0;
  const stack: string[] = [];
  const onStack = new Set<string>();
  const indexOf = new Map<string, number>();
  const low = new Map<string, number>();
  const found: string[][] = [];
  const visit = (v: string): void => {
    indexOf.set(v, index);
    low.set(v, index++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!indexOf.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, indexOf.get(w)!));
    }
    if (low.get(v) === indexOf.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1 || (graph.get(v) ?? []).includes(v)) found.push(component.sort());
    }
  };
  for (const v of graph.keys()) if (!indexOf.has(v)) visit(v);
  return found;
}

if (import.meta.main) {
  const problems: string[] = [];
  const graph = new Map<string, string[]>();
  for (const file of tsFiles("")) {
    const deps = importsOf(file, Deno.readTextFileSync(join(ROOT, file)));
    graph.set(file, deps);
    if (file.startsWith("tests/")) continue;
    for (const dep of deps) {
      const [from, to] = [LAYERS[file.split("/")[0]], LAYERS[dep.split("/")[0]]];
      if (from !== undefined && to !== undefined && to > from) {
        problems.push(`${file} imports ${dep}, a layer above it`);
      }
      const name = dep.split("/").pop()!;
      if (name.startsWith("_") && dirname(dep) !== dirname(file)) {
        problems.push(`${file} imports ${dep}, private to ${relative(".", dirname(dep))}/`);
      }
    }
  }
  for (const cycle of cycles(graph)) problems.push(`import cycle: ${cycle.join(" <-> ")}`);
  if (problems.length > 0) {
    console.error(problems.join("\n"));
    console.error(`check_imports: ${problems.length} violation(s)`);
    Deno.exit(1);
  }
  console.log(`check_imports: ${graph.size} modules, no private import across folders, no cycle`);
}
