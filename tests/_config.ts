// Small model configurations for tests: one default tiny shape, each test overriding only
// what it is about.
import { type LlamaConfig, makeConfig } from "../model/config.ts";

/** The tiny default: 16 features, 2 heads sharing 1 KV head, 1 layer, 10 tokens, 8 positions. */
const TINY = {
  dim: 16,
  hiddenDim: 32,
  nLayers: 1,
  nHeads: 2,
  nKvHeads: 1,
  vocabSize: 10,
  maxSeqLen: 8,
};

/** A validated tiny configuration with `overrides` applied. */
export function tinyConfig(overrides: Partial<LlamaConfig> = {}): LlamaConfig {
  return makeConfig({ ...TINY, ...overrides }, "tinyConfig");
}
