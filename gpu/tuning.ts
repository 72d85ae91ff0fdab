/**
 * Tunings: which variant of each kernel a decoder runs on one adapter, chosen by measurement
 * (`deno task tune`) and saved as JSON keyed by the adapter and Deno's version; without one,
 * documented defaults per adapter class.
 *
 * Kernel keys name a role and a shape: `projection <epilogue>[+norm] <decode|prefill>
 * <units>x<inDim>[ <f16|q8_0|q4_0>]` (with a format: packed weights, whose values are
 * `PACKED_PROJECTION_VARIANTS` names) and `attention <decode|prefill> <nHeads>/<nKvHeads>x<headDim>`. Projection
 * values are {@linkcode PROJECTION_VARIANTS} names; attention values are `splitN` (N workgroups
 * share each head's keys, see `attentionKernel`), `split auto` (the kernel's own choice) or
 * `tiled` (prefill only, see `tiledAttentionKernel`). The key `decoder` holds `fused` or
 * `unfused`.
 *
 * @module
 */
import type { AdapterIdentity } from "./device.ts";
import { PROJECTION_VARIANTS } from "./matmul/projection.ts";
import { PACKED_PROJECTION_VARIANTS } from "./matmul/packed_projection.ts";

/** A tuning file's contents. */
export interface Tuning {
  /** Format version, 1. */
  version: 1;
  /** The adapter it was measured on. */
  adapter: AdapterIdentity;
  /** Deno's version at the time. */
  deno: string;
  /** Kernel key to variant name. */
  choices: Record<string, string>;
}

/** Whether a projection or attention runs one token (decode) or a prompt chunk (prefill). */
export type PassKind = "decode" | "prefill";

/**
 * The key of a projection.
 *
 * @example
 * ```ts
 * import { projectionKey } from "./tuning.ts";
 * if (projectionKey("qkvRope", true, 1, 432, 288) !== "projection qkvRope+norm decode 432x288") {
 *   throw new Error("wrong");
 * }
 * ```
 */
export function projectionKey(
  epilogue: string,
  norm: boolean,
  rows: number,
  units: number,
  inDim: number,
  format?: string,
): string {
  const key = `projection ${epilogue}${norm ? "+norm" : ""} ${passKind(rows)} ${units}x${inDim}`;
  return format ? `${key} ${format}` : key;
}

/**
 * The key of an attention.
 *
 * @example
 * ```ts
 * import { attentionKey } from "./tuning.ts";
 * if (attentionKey(64, 6, 6, 48) !== "attention prefill 6/6x48") throw new Error("wrong");
 * ```
 */
export function attentionKey(
  rows: number,
  nHeads: number,
  nKvHeads: number,
  headDim: number,
): string {
  return `attention ${passKind(rows)} ${nHeads}/${nKvHeads}x${headDim}`;
}

function passKind(rows: number): PassKind {
  return rows === 1 ? "decode" : "prefill";
}

/**
 * Whether an adapter runs its shaders on the CPU (llvmpipe/lavapipe, SwiftShader, WARP,
 * softpipe): there an invocation is a CPU loop and the row-per-invocation forms win.
 *
 * @example
 * ```ts
 * import { isSoftwareAdapter } from "./tuning.ts";
 * const lavapipe = { vendor: "", architecture: "", device: "", description: "llvmpipe (LLVM 15.0.6, 256 bits)" };
 * if (!isSoftwareAdapter(lavapipe)) throw new Error("wrong");
 * ```
 */
export function isSoftwareAdapter(adapter: AdapterIdentity): boolean {
  const text = Object.values(adapter).join(" ");
  return /llvmpipe|lavapipe|swiftshader|softpipe|microsoft basic render|\bwarp\b|\bcpu\b/i.test(
    text,
  );
}

/**
 * The default variant for a kernel key on an adapter class: software adapters get the
 * row-per-invocation projections, the tiled prefill projections (one W read per 32 tokens
 * pays there too) and the attention's own split choice; other adapters the cooperative
 * projections (`multirow16` for rows of 512 floats or fewer, `coop256` above), the tiled
 * projections and attention for prefill, and 16 splits per head for decode attention. Both
 * run the fused decoder.
 *
 * @example
 * ```ts
 * import { defaultChoice } from "./tuning.ts";
 * if (defaultChoice("projection add decode 288x768", true) !== "row") throw new Error("wrong");
 * if (defaultChoice("projection add decode 288x768", false) !== "coop256") throw new Error("wrong");
 * ```
 */
export function defaultChoice(key: string, software: boolean): string {
  if (key === "decoder") return "fused";
  const [family, , kind, size] = key.split(" ");
  if (family === "attention") {
    const pass = key.split(" ")[1];
    if (pass === "prefill") return software ? "split auto" : "tiled";
    return software ? "split auto" : "split16";
  }
  const format = key.split(" ")[4];
  if (format === "f16") return software ? "f32 row" : "f32 lanes8";
  if (format !== undefined) return software ? "q8 row256" : "q8 lanes32";
  if (kind === "prefill") return "tiled";
  if (software) return "row";
  const inDim = Number(size?.split("x")[1]);
  return inDim <= 512 ? "multirow16" : "coop256";
}

/** Reads a tuning: the variant for each key, falling back to the adapter class's default. */
export class TuningTable {
  /** The tuning given, if any. */
  readonly tuning: Tuning | undefined;
  /** Whether defaults are those of a software adapter. */
  readonly software: boolean;

  /**
   * A table over `tuning` (may be undefined) for `adapter`; throws if the tuning was measured
   * on another adapter (its choices would be guesses there). A different Deno version is
   * accepted.
   */
  constructor(adapter: AdapterIdentity, tuning?: Tuning) {
    if (tuning) {
      const fields = ["vendor", "architecture", "device", "description"] as const;
      const differs = fields.filter((f) => tuning.adapter[f] !== adapter[f]);
      if (differs.length > 0) {
        throw new TypeError(
          `tuning adapter: expected this adapter (${JSON.stringify(adapter)}), got one measured ` +
            `on ${JSON.stringify(tuning.adapter)}; run deno task tune here`,
        );
      }
    }
    this.tuning = tuning;
    this.software = isSoftwareAdapter(adapter);
  }

  /** The chosen variant for `key`. */
  choice(key: string): string {
    return this.tuning?.choices[key] ?? defaultChoice(key, this.software);
  }

  /** Whether the decoder runs the fused decode step. */
  get fused(): boolean {
    return this.choice("decoder") === "fused";
  }
}

const ATTENTION_CHOICE = /^(split auto|split[1-9][0-9]*|tiled)$/;

/**
 * Parses and validates a tuning (a file's text or an object), with one clear error naming the
 * field, what was expected and what came.
 *
 * @example
 * ```ts
 * import { parseTuning } from "./tuning.ts";
 * const tuning = parseTuning(JSON.stringify({
 *   version: 1,
 *   adapter: { vendor: "v", architecture: "a", device: "d", description: "x" },
 *   deno: "2.9.6",
 *   choices: { "projection add decode 288x288": "coop64", decoder: "fused" },
 * }));
 * if (tuning.choices.decoder !== "fused") throw new Error("wrong");
 * ```
 */
export function parseTuning(source: string | unknown, what = "tuning"): Tuning {
  let value: unknown = source;
  if (typeof source === "string") {
    try {
      value = JSON.parse(source);
    } catch (error) {
      throw new TypeError(`${what}: expected JSON, got ${(error as Error).message}`);
    }
  }
  const object = (v: unknown, field: string): Record<string, unknown> => {
    if (typeof v !== "object" || v === null || Array.isArray(v)) {
      throw new TypeError(`${what} ${field}: expected an object, got ${JSON.stringify(v)}`);
    }
    return v as Record<string, unknown>;
  };
  const string = (v: unknown, field: string): string => {
    if (typeof v !== "string") {
      throw new TypeError(`${what} ${field}: expected a string, got ${JSON.stringify(v)}`);
    }
    return v;
  };
  const root = object(value, "(root)");
  if (root.version !== 1) {
    throw new TypeError(`${what} version: expected 1, got ${JSON.stringify(root.version)}`);
  }
  const adapter = object(root.adapter, "adapter");
  const identity: AdapterIdentity = {
    vendor: string(adapter.vendor, "adapter.vendor"),
    architecture: string(adapter.architecture, "adapter.architecture"),
    device: string(adapter.device, "adapter.device"),
    description: string(adapter.description, "adapter.description"),
  };
  const choices: Record<string, string> = {};
  const projectionNames = PROJECTION_VARIANTS.map((v) => v.name);
  const packedNames = PACKED_PROJECTION_VARIANTS.map((v) => v.name);
  for (const [key, choice] of Object.entries(object(root.choices, "choices"))) {
    const name = string(choice, `choices["${key}"]`);
    const expected = key === "decoder"
      ? ["fused", "unfused"]
      : key.startsWith("projection ")
      ? (key.split(" ").length === 5 ? packedNames : projectionNames)
      : key.startsWith("attention ")
      ? undefined
      : [];
    const ok = expected ? expected.includes(name) : ATTENTION_CHOICE.test(name);
    if (!ok) {
      throw new TypeError(
        `${what} choices["${key}"]: expected ${
          expected
            ? (expected.length ? expected.join(" | ") : "a known key")
            : "split auto | splitN | tiled"
        }, got ${JSON.stringify(name)}`,
      );
    }
    choices[key] = name;
  }
  return { version: 1, adapter: identity, deno: string(root.deno, "deno"), choices };
}
