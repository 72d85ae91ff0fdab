import { expect } from "expect";
import { cycles, importsOf } from "../tools/check_imports.ts";

Deno.test("check_imports finds every cycle, self-loops included, and no false one", () => {
  const graph = new Map([
    ["a.ts", ["b.ts"]],
    ["b.ts", ["c.ts"]],
    ["c.ts", ["a.ts", "d.ts"]],
    ["d.ts", []],
    ["e.ts", ["e.ts"]],
    ["f.ts", ["d.ts"]],
  ]);
  expect(cycles(graph)).toEqual([["a.ts", "b.ts", "c.ts"], ["e.ts"]]);
  expect(cycles(new Map([["x.ts", ["y.ts"]], ["y.ts", []]]))).toEqual([]);
});

Deno.test("check_imports reads static imports and re-exports, not JSDoc examples", () => {
  const source = [
    "/**",
    " * @example",
    ' * import { x } from "../model/_private.ts";',
    " */",
    'import { a } from "./a.ts";',
    'import type {\n  B,\n} from "../gpu/_b.ts";',
    'export * from "./c.ts";',
    '// import { d } from "./d.ts";',
    'import { expect } from "expect";',
  ].join("\n");
  expect(importsOf("model/x.ts", source)).toEqual(["model/a.ts", "gpu/_b.ts", "model/c.ts"]);
});
