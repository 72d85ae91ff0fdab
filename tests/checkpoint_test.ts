import { expect } from "expect";
import {
  checkpointLayout,
  makeConfig,
  parseCheckpoint,
  randomWeights,
  readCheckpoint,
  serializeCheckpoint,
} from "../model/mod.ts";
import { MODEL_PATH, TOKENIZER_PATH } from "./_models.ts";
import { readTokenizer } from "../model/mod.ts";

const shape = {
  dim: 16,
  hiddenDim: 24,
  nLayers: 2,
  nHeads: 4,
  nKvHeads: 2,
  vocabSize: 11,
  maxSeqLen: 8,
};

for (const format of ["legacy", "v1"] as const) {
  for (const sharedClassifier of [true, false]) {
    Deno.test(`a random model written in the ${format} format (${sharedClassifier ? "shared" : "separate"} classifier) reads back identical`, () => {
      const config = makeConfig({ ...shape, sharedClassifier });
      const weights = randomWeights(config, 5);
      const read = parseCheckpoint(serializeCheckpoint(config, weights, format), "model.bin");
      expect(read.format).toBe(format);
      expect(read.config).toEqual(config);
      expect(read.weights.tokenEmbedding).toEqual(weights.tokenEmbedding);
      expect(read.weights.finalNorm).toEqual(weights.finalNorm);
      expect(read.weights.classifier).toEqual(weights.classifier);
      expect(read.weights.classifier === read.weights.tokenEmbedding).toBe(sharedClassifier);
      read.weights.layers.forEach((layer, l) => {
        for (const [name, tensor] of Object.entries(layer)) {
          expect(tensor).toEqual(weights.layers[l][name as keyof typeof layer]);
        }
      });
    });
  }
}

function bytesOf(format: "legacy" | "v1", sharedClassifier = true) {
  const config = makeConfig({ ...shape, sharedClassifier });
  return serializeCheckpoint(config, randomWeights(config, 1), format);
}

Deno.test("a wrong magic or version is named", () => {
  const v1 = bytesOf("v1");
  v1[0] = 0x33; // "3", "4", "k", "a" reversed: ak43
  expect(() => parseCheckpoint(v1, "m.bin")).toThrow(
    'm.bin: wrong magic "ak43" (expected "ak42" for a versioned checkpoint)',
  );
  const v2 = bytesOf("v1");
  new DataView(v2.buffer).setInt32(4, 2, true);
  expect(() => parseCheckpoint(v2, "m.bin")).toThrow(
    "m.bin: unsupported checkpoint version 2 (only version 1, fp32, is supported)",
  );
});

Deno.test("a file shorter or longer than its header implies says expected and actual bytes", () => {
  for (const format of ["legacy", "v1"] as const) {
    const bytes = bytesOf(format);
    const name = format === "legacy" ? "legacy" : "version 1";
    expect(() => parseCheckpoint(bytes.slice(0, bytes.length - 4), "m.bin")).toThrow(
      `m.bin: ${name} checkpoint is truncated: expected ${bytes.length} bytes, got ${
        bytes.length - 4
      }`,
    );
    const longer = new Uint8Array(bytes.length + 8);
    longer.set(bytes);
    expect(() => parseCheckpoint(longer, "m.bin")).toThrow(
      `m.bin: ${name} checkpoint is longer than its header implies: expected ${bytes.length} bytes, got ${
        bytes.length + 8
      }`,
    );
  }
  expect(() => parseCheckpoint(new Uint8Array(10), "m.bin")).toThrow(
    "m.bin: 10 bytes is too short for a llama2.c header",
  );
});

Deno.test("non-positive and inconsistent dimensions are named", () => {
  const withHeader = (field: number, value: number) => {
    const bytes = bytesOf("legacy");
    new DataView(bytes.buffer).setInt32(field * 4, value, true);
    return bytes;
  };
  expect(() => parseCheckpoint(withHeader(0, 0), "m.bin")).toThrow(
    "m.bin: dim must be a positive integer, got 0",
  );
  expect(() => parseCheckpoint(withHeader(2, -3), "m.bin")).toThrow(
    "m.bin: nLayers must be a positive integer, got -3",
  );
  expect(() => parseCheckpoint(withHeader(3, 3), "m.bin")).toThrow(
    "m.bin: dim (16) must be divisible by nHeads (3)",
  );
  expect(() => parseCheckpoint(withHeader(4, 3), "m.bin")).toThrow(
    "m.bin: nHeads (4) must be divisible by nKvHeads (3)",
  );
});

Deno.test("NaN or Inf weights are named with their tensor and index", () => {
  for (const [value, label] of [[NaN, "NaN"], [Infinity, "Infinity"]] as const) {
    const bytes = bytesOf("v1", false);
    const floats = new Float32Array(bytes.buffer, 256);
    floats[floats.length - 1] = value; // the last float of the separate classifier
    expect(() => parseCheckpoint(bytes, "m.bin")).toThrow(
      `m.bin: classifier holds a non-finite value (${label}) at index ${11 * 16 - 1}`,
    );
  }
});

Deno.test("an unreadable checkpoint names its path", async () => {
  await expect(readCheckpoint("/nonexistent/model.bin")).rejects.toThrow(
    "/nonexistent/model.bin: cannot read checkpoint",
  );
});

Deno.test("devices and directories are refused before any read, naming the path", async () => {
  // /dev/zero would stream zeros forever; stat says it is a character device
  await expect(readCheckpoint("/dev/zero")).rejects.toThrow(
    "/dev/zero: expected a regular file (a checkpoint), got a character device",
  );
  await expect(readTokenizer("/dev/zero", 512)).rejects.toThrow(
    "/dev/zero: expected a regular file (a tokenizer), got a character device",
  );
  await expect(readCheckpoint("/tmp")).rejects.toThrow(
    "/tmp: expected a regular file (a checkpoint), got a directory",
  );
});

Deno.test("checkpointLayout reads the size a header implies from the header alone", () => {
  for (const format of ["legacy", "v1"] as const) {
    const config = makeConfig({ ...shape, sharedClassifier: false });
    const bytes = serializeCheckpoint(config, randomWeights(config, 1), format);
    const layout = checkpointLayout(bytes.slice(0, 256), "m.bin");
    expect(layout.format).toBe(format);
    expect(layout.config).toEqual(config);
    expect(layout.expectedBytes).toBe(bytes.length);
  }
  // A version 1 header claiming 2^31 - 1 positions is still a small file: the size is the weights
  const v1 = bytesOf("v1");
  new DataView(v1.buffer).setInt32(8 + 6 * 4, 2 ** 31 - 1, true);
  expect(checkpointLayout(v1.slice(0, 256)).expectedBytes).toBe(v1.length);
  expect(parseCheckpoint(v1, "m.bin").config.maxSeqLen).toBe(2 ** 31 - 1);
});

Deno.test("ropeTheta and normEps must be finite", () => {
  expect(() => makeConfig({ ...shape, ropeTheta: Infinity }, "c")).toThrow(
    "c: ropeTheta must be finite and > 0, got Infinity",
  );
  expect(() => makeConfig({ ...shape, normEps: Infinity }, "c")).toThrow(
    "c: normEps must be finite and >= 0, got Infinity",
  );
});

Deno.test({
  name: "files of the wrong kind are refused from their header and size, before the rest is read",
  fn: async () => {
    // a checkpoint given as the tokenizer: its size exceeds what 512 tokens can hold
    const size = (await Deno.stat(MODEL_PATH)).size;
    await expect(readTokenizer(MODEL_PATH, 512)).rejects.toThrow(
      `${MODEL_PATH}: ${size} bytes is more than a tokenizer of 512 tokens of at most 64 bytes can hold (36868); is this a tokenizer.bin?`,
    );
    // a tokenizer given as the checkpoint: its header is no llama2.c header
    await expect(readCheckpoint(TOKENIZER_PATH)).rejects.toThrow(
      `${TOKENIZER_PATH}: hiddenDim must be a positive integer, got 0`,
    );
  },
});

Deno.test({
  name: "a checkpoint whose weights exceed the machine's memory is refused, naming the file",
  fn: async () => {
    // A machine of 1 MB: stories260K's 1.0 MB of weights exceed 80% of it.
    const original = Deno.systemMemoryInfo;
    const tiny = () => ({ ...original(), total: 1e6 });
    (Deno as { systemMemoryInfo: typeof tiny }).systemMemoryInfo = tiny;
    try {
      await expect(readCheckpoint(MODEL_PATH)).rejects.toThrow(
        `${MODEL_PATH}: fp32 weights need 1.0 MB, more than 80% of this machine's 1.0 MB of memory`,
      );
    } finally {
      (Deno as { systemMemoryInfo: typeof original }).systemMemoryInfo = original;
    }
    expect((await readCheckpoint(MODEL_PATH)).config.dim).toBe(64);
  },
});

Deno.test({
  name: "stories260K.bin loads with the header models/README.md documents",
  fn: async () => {
    const { format, config, weights } = await readCheckpoint(MODEL_PATH);
    expect(format).toBe("legacy");
    expect(config).toMatchObject({
      dim: 64,
      hiddenDim: 172,
      nLayers: 5,
      nHeads: 8,
      nKvHeads: 4,
      vocabSize: 512,
      maxSeqLen: 512,
    });
    expect(config.sharedClassifier).toBe(true);
    const digest = await crypto.subtle.digest("SHA-256", await Deno.readFile(MODEL_PATH));
    expect(Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join(""))
      .toBe(
        "b0a507e7ad0f626624f17112325e66691f9076d622e1d3274d103d00299f2696",
      );
    expect(weights.layers).toHaveLength(5);
    const tokenizerDigest = await crypto.subtle.digest(
      "SHA-256",
      await Deno.readFile(TOKENIZER_PATH),
    );
    expect(
      Array.from(new Uint8Array(tokenizerDigest), (b) => b.toString(16).padStart(2, "0")).join(""),
    )
      .toBe("037cb335abb25d1fa9e8ecae30ed2a3a8ace9302862ebcdc05d51a6bbb10c312");
  },
});
