// The CPU ceilings' WebAssembly kernels over an imported shared memory, so that one Worker per
// core runs them on its own slice: a SIMD sum (read stream), a SIMD copy, and independent
// f32x4 multiply-add chains (peak arithmetic). Hand-assembled: no toolchain at run time.

/** Unsigned LEB128 (sizes, indices, memory offsets). */
export const leb = (n: number): number[] => {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n) byte |= 0x80;
    out.push(byte);
  } while (n);
  return out;
};
/** Signed LEB128 (i32.const immediates). */
const sleb = (n: number): number[] => {
  const out: number[] = [];
  for (;;) {
    const byte = n & 0x7f;
    n >>= 7;
    if ((n === 0 && !(byte & 0x40)) || (n === -1 && (byte & 0x40))) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
};
/** A module section: its id, its byte length, its content. */
export const section = (id: number, content: number[]): number[] => [
  id,
  ...leb(content.length),
  ...content,
];
/** A name as the binary format writes it: length, then UTF-8. */
export const name = (text: string): number[] => [text.length, ...new TextEncoder().encode(text)];
const f32 = (x: number): number[] => [...new Uint8Array(new Float32Array([x]).buffer)];

/** local.get, local.set, local.tee. */
export const [GET, SET, TEE] = [0x20, 0x21, 0x22];
/** v128.load at `offset`, align 2^4. */
export const LOAD = (offset: number): number[] => [0xfd, 0x00, 0x04, ...leb(offset)];
const STORE = (offset: number) => [0xfd, 0x0b, 0x04, ...leb(offset)];
/** f32x4.add. */
export const ADD = [0xfd, 0xe4, 0x01];
const MUL = [0xfd, 0xe6, 0x01]; // f32x4.mul
const MADD = [0xfd, 0x85, 0x02]; // f32x4.relaxed_madd (relaxed SIMD): fused where the CPU has FMA
const SPLAT = [0xfd, 0x13]; // f32x4.splat
const I32_ADD = 0x6a, I32_LT_U = 0x49, BR_IF = 0x0d, LOOP = [0x03, 0x40], END = 0x0b;
const HSUM = (local: number) =>
  [0, 1, 2, 3].flatMap((lane) => [GET, local, 0xfd, 0x1f, lane, ...(lane ? [0x92] : [])]);

// sum(ptr, end) -> f32: four v128 accumulators (locals 2..5), 64 bytes per iteration.
// deno-fmt-ignore
const SUM = [
  0x01, 0x04, 0x7b,
  ...LOOP,
  ...[0, 1, 2, 3].flatMap((k) => [GET, 2 + k, GET, 0, ...LOAD(16 * k), ...ADD, SET, 2 + k]),
  GET, 0, 0x41, ...sleb(64), I32_ADD, TEE, 0, GET, 1, I32_LT_U, BR_IF, 0,
  END,
  GET, 2, GET, 3, ...ADD, GET, 4, ...ADD, GET, 5, ...ADD, SET, 2,
  ...HSUM(2),
  END,
];

// copy(src, dst, end_src): 64 bytes per iteration through four v128 loads and stores.
// deno-fmt-ignore
const COPY = [
  0x00,
  ...LOOP,
  ...[0, 1, 2, 3].flatMap((k) => [GET, 1, GET, 0, ...LOAD(16 * k), ...STORE(16 * k)]),
  GET, 1, 0x41, ...sleb(64), I32_ADD, SET, 1,
  GET, 0, 0x41, ...sleb(64), I32_ADD, TEE, 0, GET, 2, I32_LT_U, BR_IF, 0,
  END,
  END,
];

/** Independent f32x4 chains in the FMA kernel: enough to hide the add latency. */
export const FMA_CHAINS = 8;

// fma(iterations) -> f32: a_k = a_k * m + c on eight f32x4 chains (locals 1..8; 9: m; 10: c;
// 11: i32 counter), as one relaxed multiply-add where `fused`, else a multiply then an add.
// Each iteration: 8 chains x 4 lanes x 2 FLOPs.
// deno-fmt-ignore
const fmaBody = (fused: boolean): number[] => [
  0x02, 0x0a, 0x7b, 0x01, 0x7f, // 10 v128 locals, one i32
  0x43, ...f32(0.999999), ...SPLAT, SET, 9,
  0x43, ...f32(1e-7), ...SPLAT, SET, 10,
  ...Array.from({ length: FMA_CHAINS }, (_, k) => [0x43, ...f32(1 + k / 10), ...SPLAT, SET, 1 + k])
    .flat(),
  ...LOOP,
  ...Array.from(
    { length: FMA_CHAINS },
    (_, k) =>
      fused
        ? [GET, 1 + k, GET, 9, GET, 10, ...MADD, SET, 1 + k]
        : [GET, 1 + k, GET, 9, ...MUL, GET, 10, ...ADD, SET, 1 + k],
  ).flat(),
  GET, 11, 0x41, ...sleb(1), I32_ADD, TEE, 11, GET, 0, I32_LT_U, BR_IF, 0,
  END,
  ...Array.from({ length: FMA_CHAINS - 1 }, (_, k) => [GET, 1, GET, 2 + k, ...ADD, SET, 1]).flat(),
  ...HSUM(1),
  END,
];

/**
 * The module: imports `env.mem` (shared, up to `maxPages`), exports sum, copy and fma (with a
 * relaxed-SIMD multiply-add where `fused`).
 */
export function ceilingModule(maxPages: number, fused = false): Uint8Array<ArrayBuffer> {
  const FMA = fmaBody(fused);
  // deno-fmt-ignore
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, [
      0x03,
      0x60, 0x02, 0x7f, 0x7f, 0x01, 0x7d, // sum: (i32, i32) -> f32
      0x60, 0x03, 0x7f, 0x7f, 0x7f, 0x00, // copy: (i32, i32, i32) -> ()
      0x60, 0x01, 0x7f, 0x01, 0x7d, // fma: (i32) -> f32
    ]),
    ...section(2, [0x01, ...name("env"), ...name("mem"), 0x02, 0x03, ...leb(1), ...leb(maxPages)]),
    ...section(3, [0x03, 0x00, 0x01, 0x02]),
    ...section(7, [0x03, ...name("sum"), 0x00, 0x00, ...name("copy"), 0x00, 0x01, ...name("fma"), 0x00, 0x02]),
    ...section(10, [
      0x03,
      ...leb(SUM.length), ...SUM,
      ...leb(COPY.length), ...COPY,
      ...leb(FMA.length), ...FMA,
    ]),
  ]);
}

/** The instantiated kernels over `memory`. */
export interface CeilingKernels {
  /** Sums the f32s in `[ptr, end)` (`end - ptr` a positive multiple of 64). */
  sum(ptr: number, end: number): number;
  /** Copies `[src, srcEnd)` to `dst` (a positive multiple of 64 bytes). */
  copy(src: number, dst: number, srcEnd: number): void;
  /** Runs `iterations` of the multiply-add chains; returns their sum (keeps them live). */
  fma(iterations: number): number;
}

/** Whether this runtime compiles relaxed SIMD (then the FMA probe uses a fused multiply-add). */
export const RELAXED_SIMD: boolean = WebAssembly.validate(ceilingModule(1, true));

/**
 * Instantiates the kernels on a shared memory created with `maxPages` as its maximum; the FMA
 * kernel fused where `fused` (default: where the runtime has relaxed SIMD).
 */
export function ceilingKernels(
  memory: WebAssembly.Memory,
  maxPages: number,
  fused: boolean = RELAXED_SIMD,
): CeilingKernels {
  const module = new WebAssembly.Module(ceilingModule(maxPages, fused));
  const instance = new WebAssembly.Instance(module, { env: { mem: memory } });
  return instance.exports as unknown as CeilingKernels;
}
