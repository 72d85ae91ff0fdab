// Reading kernels' WGSL in tests: what a pipeline declares in workgroup memory.
import { expect } from "expect";
import type { Gpu } from "../gpu/device.ts";

/** A pipeline's shader and override constants, as passed to `Gpu.pipeline`. */
export interface CapturedPipeline {
  kernel: string;
  code: string;
  constants: Record<string, number>;
}

/** Records every pipeline `gpu` is asked for until `restore` is called. */
export function captureWgsl(gpu: Gpu): { codes: CapturedPipeline[]; restore: () => void } {
  const codes: CapturedPipeline[] = [];
  const pipeline = gpu.pipeline;
  gpu.pipeline = (kernel, code, constants = {}) => {
    codes.push({ kernel, code, constants });
    return pipeline.call(gpu, kernel, code, constants);
  };
  return { codes, restore: () => gpu.pipeline = pipeline };
}

const SCALAR_BYTES: Record<string, number> = {
  f32: 4,
  u32: 4,
  i32: 4,
  "vec2<f32>": 8,
  "vec2<u32>": 8,
  "vec4<f32>": 16,
};

/** The workgroup variables' types, aliases and override-sized counts resolved. */
function workgroupTypes(pipeline: CapturedPipeline): string[] {
  const { code, constants } = pipeline;
  const aliases = new Map(
    [...code.matchAll(/alias (\w+) = ([^;]+);/g)].map((m) => [m[1], m[2].trim()]),
  );
  const defaults = new Map(
    [...code.matchAll(/override (\w+): \w+ = (\d+)u?;/g)].map((m) => [m[1], Number(m[2])]),
  );
  const count = (n: string) => /^\d+$/.test(n) ? n : String(constants[n] ?? defaults.get(n));
  const declarations = [...code.matchAll(/var<workgroup> \w+: ([^;]+);/g)];
  expect(declarations.length).toBeGreaterThan(0);
  return declarations.map((m) => {
    const type = m[1].trim().replace(
      /^array<(.+), (\w+)>$/,
      (_, e, n) => `array<${e}, ${count(n)}>`,
    );
    return type.replace(/\b\w+\b/g, (word) => aliases.get(word) ?? word);
  });
}

function parseArray(type: string): { element: string; count: number } {
  const array = type.match(/^array<(.+), (\d+)>$/);
  return array ? { element: array[1], count: Number(array[2]) } : { element: type, count: 1 };
}

/**
 * Workgroup bytes the WGSL declares, by WebGPU's rules, parsed from the shader text: each
 * variable's size (arrays: count x element size) rounded up to 16 bytes.
 */
export function declaredWorkgroupBytes(pipeline: CapturedPipeline): number {
  return workgroupTypes(pipeline).reduce((sum, type) => {
    const { element, count } = parseArray(type);
    if (!(element in SCALAR_BYTES)) throw new Error(`unexpected workgroup type ${element}`);
    return sum + Math.ceil((count * SCALAR_BYTES[element]) / 16) * 16;
  }, 0);
}

/** Elements of the workgroup variables in all (a scalar or vector variable counts one). */
export function workgroupElements(pipeline: CapturedPipeline): number {
  return workgroupTypes(pipeline).reduce((sum, type) => sum + parseArray(type).count, 0);
}
