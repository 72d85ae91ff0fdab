/**
 * GGUF versions 2 and 3, the file format of llama.cpp (version 3 only allowed big-endian files,
 * which this module does not read: the layout is the same): typed key/value metadata, then tensor
 * descriptions (name, dimensions innermost first, ggml type, offset), then the tensor data at
 * the file's alignment. Reading checks every count and length against the bytes that remain
 * before allocating anything, and names the field in every error.
 *
 * Tensors are F32, F16, Q8_0, Q4_0, Q4_K, Q5_K or Q6_K (ggml types 0, 1, 8, 2, 12, 13, 14), in
 * the byte layouts of `reference/quantize.ts` and `reference/kquants.ts`.
 *
 * @module
 */
import { formatBlockValues, formatBytes, type TensorFormat } from "../../reference/quantize.ts";
import { K_QUANT_GGML_TYPES } from "../../reference/kquants.ts";

/** `GGUF` read as a little-endian uint32. */
export const GGUF_MAGIC = 0x46554747;
/** The GGUF version this module writes by default. */
export const GGUF_VERSION = 3;
/** The GGUF versions this module reads (and writes): llama.cpp refuses version 1 too. */
export const GGUF_VERSIONS: readonly number[] = [2, 3];
/** Alignment of tensor data when `general.alignment` is absent. */
export const GGUF_DEFAULT_ALIGNMENT = 32;

/** GGUF's metadata value types, by name. */
export type GgufScalarType =
  | "u8"
  | "i8"
  | "u16"
  | "i16"
  | "u32"
  | "i32"
  | "f32"
  | "bool"
  | "string"
  | "u64"
  | "i64"
  | "f64";

/** A scalar metadata value: a number, a boolean or a string (UTF-8 text as its bytes' string). */
export type GgufScalar = number | boolean | string;

/** A metadata value with its GGUF type, so that writing what was read gives the same bytes. */
export type GgufValue =
  | { type: GgufScalarType; value: GgufScalar }
  | { type: "array"; itemType: GgufScalarType; value: GgufScalar[] };

/** One tensor: its name, dimensions (innermost first, as GGUF stores them), format and bytes. */
export interface GgufTensor {
  /** Tensor name, e.g. `blk.0.attn_q.weight`. */
  name: string;
  /** Dimensions, innermost (contiguous) first: a `(rows, cols)` matrix is `[cols, rows]`. */
  dims: number[];
  /** Storage format. */
  format: TensorFormat;
  /** The stored bytes (a view into the file when read). */
  data: Uint8Array;
}

/** A GGUF file: metadata in file order, tensors in file order, and the data alignment. */
export interface GgufFile {
  /** Metadata by key, in file order. */
  metadata: Map<string, GgufValue>;
  /** Tensors in file order. */
  tensors: GgufTensor[];
  /** Alignment of the tensor data (from `general.alignment`, 32 by default). */
  alignment: number;
  /** The header's version, 2 or 3 (when writing, {@linkcode GGUF_VERSION} if absent). */
  version?: number;
}

const SCALAR_TYPES: GgufScalarType[] = [
  "u8",
  "i8",
  "u16",
  "i16",
  "u32",
  "i32",
  "f32",
  "bool",
  "string",
  "array" as GgufScalarType, // 9: array, handled apart
  "u64",
  "i64",
  "f64",
];
const ARRAY_TYPE = 9;
/** Bytes each value type takes at least (a string: its u64 length; an array: type and count). */
const MIN_BYTES: Record<GgufScalarType | "array", number> = {
  u8: 1,
  i8: 1,
  bool: 1,
  u16: 2,
  i16: 2,
  u32: 4,
  i32: 4,
  f32: 4,
  u64: 8,
  i64: 8,
  f64: 8,
  string: 8,
  array: 12,
};
/** ggml type ids of the supported tensor formats. */
const GGML_TYPE_IDS: Record<TensorFormat, number> = {
  f32: 0,
  f16: 1,
  q4_0: 2,
  q8_0: 8,
  ...K_QUANT_GGML_TYPES,
};
const GGML_TYPE_NAMES: Record<number, string> = {
  3: "Q4_1",
  6: "Q5_0",
  7: "Q5_1",
  9: "Q8_1",
  10: "Q2_K",
  11: "Q3_K",
  15: "Q8_K",
  30: "BF16",
};
const MAX_DIMS = 4;
/** Bytes a tensor name may have: ggml's GGML_MAX_NAME, 64, counts the terminating NUL. */
export const GGUF_MAX_TENSOR_NAME_BYTES = 63;

/** Keys and tensor names are printable ASCII (so that errors can quote them on one line). */
function checkName(name: string, what: string, maxBytes: number, source: string): void {
  if (name.length > maxBytes) {
    throw new RangeError(
      `${source}: ${what}: expected at most ${maxBytes} bytes${
        maxBytes === GGUF_MAX_TENSOR_NAME_BYTES
          ? " (ggml's limit of 64 counts the terminating NUL)"
          : ""
      }, got ${name.length}`,
    );
  }
  if (!/^[\x20-\x7e]*$/.test(name)) {
    throw new RangeError(
      `${source}: ${what}: expected printable ASCII, got ${JSON.stringify(name.slice(0, 64))}`,
    );
  }
}

class Reader {
  at = 0;
  readonly view: DataView;
  constructor(readonly bytes: Uint8Array, readonly source: string) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get left(): number {
    return this.bytes.byteLength - this.at;
  }

  need(n: number, what: string): void {
    if (n > this.left) {
      throw new RangeError(
        `${this.source}: ${what}: needs ${n} bytes, only ${this.left} left (truncated file?)`,
      );
    }
  }

  u32(what: string): number {
    this.need(4, what);
    const v = this.view.getUint32(this.at, true);
    this.at += 4;
    return v;
  }

  u64(what: string): number {
    this.need(8, what);
    const v = this.view.getBigUint64(this.at, true);
    this.at += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new RangeError(`${this.source}: ${what}: expected at most 2^53, got ${v}`);
    }
    return Number(v);
  }

  string(what: string): string {
    const length = this.u64(`${what} length`);
    this.need(length, `${what} (${length} bytes)`);
    const text = new TextDecoder("utf-8", { fatal: false }).decode(
      this.bytes.subarray(this.at, this.at + length),
    );
    this.at += length;
    return text;
  }

  scalar(type: GgufScalarType, what: string): GgufScalar {
    if (type === "string") return this.string(what);
    this.need(MIN_BYTES[type], what);
    const at = this.at;
    this.at += MIN_BYTES[type];
    const view = this.view;
    switch (type) {
      case "u8":
        return view.getUint8(at);
      case "i8":
        return view.getInt8(at);
      case "bool": {
        const b = view.getUint8(at);
        if (b > 1) {
          throw new RangeError(`${this.source}: ${what}: expected a bool (0 or 1), got ${b}`);
        }
        return b === 1;
      }
      case "u16":
        return view.getUint16(at, true);
      case "i16":
        return view.getInt16(at, true);
      case "u32":
        return view.getUint32(at, true);
      case "i32":
        return view.getInt32(at, true);
      case "f32":
        return view.getFloat32(at, true);
      case "f64":
        return view.getFloat64(at, true);
      case "u64":
      case "i64": {
        const v = type === "u64" ? view.getBigUint64(at, true) : view.getBigInt64(at, true);
        if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < -BigInt(Number.MAX_SAFE_INTEGER)) {
          throw new RangeError(`${this.source}: ${what}: ${v} is beyond 2^53`);
        }
        return Number(v);
      }
    }
  }

  valueType(what: string): GgufScalarType | "array" {
    const id = this.u32(`${what} type`);
    if (id === ARRAY_TYPE) return "array";
    const type = SCALAR_TYPES[id];
    if (type === undefined) {
      throw new RangeError(`${this.source}: ${what}: unknown value type ${id} (expected 0..12)`);
    }
    return type;
  }

  value(what: string): GgufValue {
    const type = this.valueType(what);
    if (type !== "array") return { type, value: this.scalar(type, what) };
    const itemType = this.valueType(`${what} array item`);
    if (itemType === "array") {
      throw new RangeError(`${this.source}: ${what}: nested arrays are not supported`);
    }
    const count = this.u64(`${what} array count`);
    // Each item takes at least MIN_BYTES: check before allocating.
    this.need(count * MIN_BYTES[itemType], `${what} (${count} ${itemType} items)`);
    const value = new Array<GgufScalar>(count);
    for (let i = 0; i < count; i++) value[i] = this.scalar(itemType, `${what}[${i}]`);
    return { type: "array", itemType, value };
  }
}

/**
 * Parses a GGUF file of version 2 or 3; `source` (the file name) prefixes every error. Tensor data are views
 * into `bytes`.
 *
 * @example
 * ```ts
 * import { parseGguf, serializeGguf } from "./gguf.ts";
 * const bytes = serializeGguf({
 *   metadata: new Map([["general.name", { type: "string", value: "tiny" }]]),
 *   tensors: [{ name: "x", dims: [2], format: "f32", data: new Uint8Array(8) }],
 *   alignment: 32,
 * });
 * const file = parseGguf(bytes);
 * if (file.metadata.get("general.name")?.value !== "tiny" || file.tensors[0].dims[0] !== 2) {
 *   throw new Error("wrong");
 * }
 * ```
 */
export function parseGguf(bytes: Uint8Array, source = "gguf"): GgufFile {
  const r = new Reader(bytes, source);
  const magic = r.u32("magic");
  if (magic !== GGUF_MAGIC) {
    const text = String.fromCharCode(...bytes.subarray(0, 4)).replace(/[^\x20-\x7e]/g, "?");
    throw new RangeError(`${source}: wrong magic "${text}" (expected "GGUF")`);
  }
  const version = r.u32("version");
  if (!GGUF_VERSIONS.includes(version)) {
    throw new RangeError(
      `${source}: unsupported GGUF version ${version} (expected ${GGUF_VERSIONS.join(" or ")}${
        version === 1 ? "; version 1 had 32-bit counts, and llama.cpp no longer reads it" : ""
      })`,
    );
  }
  const tensorCount = r.u64("tensor count");
  const metadataCount = r.u64("metadata count");
  // Each metadata entry takes at least a key length and a type; each tensor info more.
  r.need(metadataCount * 12, `${metadataCount} metadata entries`);
  const metadata = new Map<string, GgufValue>();
  for (let i = 0; i < metadataCount; i++) {
    const key = r.string(`metadata entry ${i} key`);
    checkName(key, `metadata entry ${i} key`, 65535, source);
    if (metadata.has(key)) throw new RangeError(`${source}: metadata ${key} appears twice`);
    metadata.set(key, r.value(`metadata ${key}`));
  }
  const alignmentValue = metadata.get("general.alignment");
  let alignment = GGUF_DEFAULT_ALIGNMENT;
  if (alignmentValue !== undefined) {
    alignment = alignmentValue.value as number;
    if (
      alignmentValue.type !== "u32" || alignment < 1 || (alignment & (alignment - 1)) !== 0
    ) {
      throw new RangeError(
        `${source}: general.alignment: expected a u32 power of two, got ${alignmentValue.type} ${
          String(alignmentValue.value)
        }`,
      );
    }
  }
  r.need(tensorCount * 24, `${tensorCount} tensor descriptions`);
  const infos: { name: string; dims: number[]; format: TensorFormat; offset: number }[] = [];
  const names = new Set<string>();
  for (let i = 0; i < tensorCount; i++) {
    const name = r.string(`tensor ${i} name`);
    checkName(name, `tensor ${i} name`, GGUF_MAX_TENSOR_NAME_BYTES, source);
    const what = `tensor ${name}`;
    if (names.has(name)) throw new RangeError(`${source}: ${what} appears twice`);
    names.add(name);
    const nDims = r.u32(`${what} dimension count`);
    if (nDims < 1 || nDims > MAX_DIMS) {
      throw new RangeError(`${source}: ${what}: expected 1..${MAX_DIMS} dimensions, got ${nDims}`);
    }
    const dims: number[] = [];
    let count = 1;
    for (let d = 0; d < nDims; d++) {
      const size = r.u64(`${what} dimension ${d}`);
      if (size < 1) throw new RangeError(`${source}: ${what}: dimension ${d} is 0`);
      dims.push(size);
      count *= size;
    }
    if (count > bytes.byteLength * 2) { // no format stores more than 2 values per byte
      throw new RangeError(
        `${source}: ${what}: ${count} values cannot fit in a ${bytes.byteLength}-byte file`,
      );
    }
    const typeId = r.u32(`${what} type`);
    const format = (Object.keys(GGML_TYPE_IDS) as TensorFormat[]).find((f) =>
      GGML_TYPE_IDS[f] === typeId
    );
    if (format === undefined) {
      throw new RangeError(
        `${source}: ${what}: unsupported ggml type ${typeId}${
          GGML_TYPE_NAMES[typeId] ? ` (${GGML_TYPE_NAMES[typeId]})` : ""
        }; expected F32 (0), F16 (1), Q4_0 (2), Q8_0 (8), Q4_K (12), Q5_K (13) or Q6_K (14)`,
      );
    }
    const block = formatBlockValues(format);
    if (dims[0] % block !== 0) {
      throw new RangeError(
        `${source}: ${what}: ${format} rows must be a multiple of ${block} values, got ${dims[0]}`,
      );
    }
    const offset = r.u64(`${what} offset`);
    if (offset % alignment !== 0) {
      throw new RangeError(
        `${source}: ${what}: offset ${offset} is not a multiple of the alignment ${alignment}`,
      );
    }
    infos.push({ name, dims, format, offset });
  }
  const dataStart = alignUp(r.at, alignment);
  const tensors = infos.map(({ name, dims, format, offset }) => {
    const size = formatBytes(format, dims.reduce((a, b) => a * b, 1));
    const start = dataStart + offset;
    if (start + size > bytes.byteLength) {
      throw new RangeError(
        `${source}: tensor ${name}: data at ${start}..${
          start + size
        } runs past the end of the ${bytes.byteLength}-byte file`,
      );
    }
    return { name, dims, format, data: bytes.subarray(start, start + size) };
  });
  return { metadata, tensors, alignment, version };
}

/**
 * Writes a GGUF file, version 3 unless `file.version` says 2 (the same layout).
 * `general.alignment` is written when `alignment` is not 32; tensor data follow in order, each
 * padded to the alignment. Tensor names longer than 63 bytes are refused, as ggml refuses them.
 *
 * @example
 * ```ts
 * import { serializeGguf } from "./gguf.ts";
 * const bytes = serializeGguf({ metadata: new Map(), tensors: [], alignment: 32 });
 * if (bytes.length !== 24 || new TextDecoder().decode(bytes.subarray(0, 4)) !== "GGUF") {
 *   throw new Error("wrong");
 * }
 * ```
 */
export function serializeGguf(file: GgufFile): Uint8Array {
  const { alignment } = file;
  if (!Number.isInteger(alignment) || alignment < 1 || (alignment & (alignment - 1)) !== 0) {
    throw new RangeError(`alignment: expected a power of two, got ${alignment}`);
  }
  const version = file.version ?? GGUF_VERSION;
  if (!GGUF_VERSIONS.includes(version)) {
    throw new RangeError(`version: expected ${GGUF_VERSIONS.join(" or ")}, got ${version}`);
  }
  const metadata = new Map(file.metadata);
  if (alignment !== GGUF_DEFAULT_ALIGNMENT) {
    metadata.set("general.alignment", { type: "u32", value: alignment });
  }
  const w = new Writer();
  w.u32(GGUF_MAGIC);
  w.u32(version);
  w.u64(file.tensors.length);
  w.u64(metadata.size);
  for (const [key, value] of metadata) {
    w.string(key);
    if (value.type === "array") {
      w.u32(ARRAY_TYPE);
      w.u32(SCALAR_TYPES.indexOf(value.itemType));
      w.u64(value.value.length);
      for (const item of value.value) w.scalar(value.itemType, item, key);
    } else {
      w.u32(SCALAR_TYPES.indexOf(value.type));
      w.scalar(value.type, value.value, key);
    }
  }
  let offset = 0;
  const offsets: number[] = [];
  for (const tensor of file.tensors) {
    const expected = formatBytes(tensor.format, tensor.dims.reduce((a, b) => a * b, 1));
    if (tensor.data.byteLength !== expected) {
      throw new RangeError(
        `tensor ${tensor.name}: expected ${expected} bytes of ${tensor.format} for dims [${tensor.dims}], got ${tensor.data.byteLength}`,
      );
    }
    const nameBytes = new TextEncoder().encode(tensor.name).length;
    if (nameBytes > GGUF_MAX_TENSOR_NAME_BYTES) {
      throw new RangeError(
        `tensor ${tensor.name}: name: expected at most ${GGUF_MAX_TENSOR_NAME_BYTES} bytes (ggml's limit of 64 counts the terminating NUL), got ${nameBytes}`,
      );
    }
    w.string(tensor.name);
    w.u32(tensor.dims.length);
    for (const d of tensor.dims) w.u64(d);
    w.u32(GGML_TYPE_IDS[tensor.format]);
    w.u64(offset);
    offsets.push(offset);
    offset = alignUp(offset + expected, alignment);
  }
  const header = w.finish();
  const dataStart = alignUp(header.byteLength, alignment);
  const last = file.tensors.length
    ? dataStart + offsets[offsets.length - 1] + file.tensors[file.tensors.length - 1].data.length
    : header.byteLength;
  const bytes = new Uint8Array(last);
  bytes.set(header);
  file.tensors.forEach((tensor, i) => bytes.set(tensor.data, dataStart + offsets[i]));
  return bytes;
}

class Writer {
  #chunks: Uint8Array[] = [];
  #encoder = new TextEncoder();

  #push(size: number, write: (view: DataView) => void): void {
    const chunk = new Uint8Array(size);
    write(new DataView(chunk.buffer));
    this.#chunks.push(chunk);
  }

  u32(v: number): void {
    this.#push(4, (d) => d.setUint32(0, v, true));
  }

  u64(v: number): void {
    this.#push(8, (d) => d.setBigUint64(0, BigInt(v), true));
  }

  string(text: string): void {
    const bytes = this.#encoder.encode(text);
    this.u64(bytes.length);
    this.#chunks.push(bytes);
  }

  scalar(type: GgufScalarType, value: GgufScalar, key: string): void {
    if (type === "string") {
      if (typeof value !== "string") throw new TypeError(`metadata ${key}: expected a string`);
      return this.string(value);
    }
    if (type === "bool") return this.#push(1, (d) => d.setUint8(0, value ? 1 : 0));
    if (typeof value !== "number") throw new TypeError(`metadata ${key}: expected a number`);
    const size = MIN_BYTES[type];
    this.#push(size, (d) => {
      switch (type) {
        case "u8":
          return d.setUint8(0, value);
        case "i8":
          return d.setInt8(0, value);
        case "u16":
          return d.setUint16(0, value, true);
        case "i16":
          return d.setInt16(0, value, true);
        case "u32":
          return d.setUint32(0, value, true);
        case "i32":
          return d.setInt32(0, value, true);
        case "f32":
          return d.setFloat32(0, value, true);
        case "f64":
          return d.setFloat64(0, value, true);
        case "u64":
          return d.setBigUint64(0, BigInt(value), true);
        case "i64":
          return d.setBigInt64(0, BigInt(value), true);
      }
    });
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.#chunks.reduce((n, c) => n + c.length, 0));
    let at = 0;
    for (const chunk of this.#chunks) {
      out.set(chunk, at);
      at += chunk.length;
    }
    return out;
  }
}

function alignUp(n: number, alignment: number): number {
  return Math.ceil(n / alignment) * alignment;
}
