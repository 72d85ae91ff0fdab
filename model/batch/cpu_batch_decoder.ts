/**
 * Batched decoding on the CPU reference: many independent sequences advance together, each row
 * of a step one token of one sequence at its own position. The projections run as one
 * `(rows, dim)` matmul, so each weight is read once per step however many sequences share it;
 * attention runs per row against that row's sequence in a {@linkcode KvStore} of any layout.
 *
 * @module
 */
import { headDim, type LlamaConfig, ropeOptions } from "../config.ts";
import type { BatchDecoder, BatchRow } from "./batch_decoder.ts";
import { BatchSequences, primeRows } from "./sequences.ts";
import { createKvStore, type KvLayout, type KvStore, type KvStoreOptions } from "./kv_store.ts";
import { checkWeights, type LlamaWeights } from "../weights.ts";
import { embedding } from "../../reference/embedding.ts";
import { matmul } from "../../reference/matmul.ts";
import { rmsNorm } from "../../reference/norm.ts";
import { rope } from "../../reference/rope.ts";
import { siluMul } from "../../reference/swiglu.ts";

/**
 * LLaMA over many sequences at once on the CPU reference.
 *
 * @example
 * ```ts
 * import { makeConfig } from "../config.ts";
 * import { randomWeights } from "../weights.ts";
 * import { CpuBatchDecoder } from "./cpu_batch_decoder.ts";
 * const config = makeConfig({ dim: 16, hiddenDim: 32, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 20, maxSeqLen: 8 });
 * const decoder = new CpuBatchDecoder(config, randomWeights(config, 1), { layout: "paged", blockSize: 4, numBlocks: 4 });
 * // two sequences, one token each
 * const logits = decoder.stepSync([{ seq: 0, token: 1, pos: 0 }, { seq: 1, token: 5, pos: 0 }]);
 * if (logits.length !== 2 || logits[1].length !== 20) throw new Error("wrong");
 * decoder.release(0);
 * ```
 */
export class CpuBatchDecoder implements BatchDecoder {
  /** The model's configuration. */
  readonly config: LlamaConfig;
  /** The weights. */
  readonly weights: LlamaWeights;
  /** Keys and values of every live sequence. */
  readonly store: KvStore;
  readonly #sequences: BatchSequences;

  /** Wraps validated weights; `options` choose the KV layout and its sizes. */
  constructor(config: LlamaConfig, weights: LlamaWeights, options: KvStoreOptions = {}) {
    checkWeights(config, weights);
    this.config = config;
    this.weights = weights;
    this.store = createKvStore(config, options);
    this.#sequences = new BatchSequences(config, this.store.pool);
  }

  /** The KV-cache layout. */
  get layout(): KvLayout {
    return this.store.layout;
  }

  /** Rows one step may hold. */
  get maxRows(): number {
    return this.store.pool.shape.maxRows;
  }

  /** Bytes of the KV pools (every layer, used or not). */
  get kvReservedBytes(): number {
    return this.store.pool.reservedBytes;
  }

  /** Bytes of KV cache the live sequences' positions need. */
  get kvUsedBytes(): number {
    return this.store.pool.usedBytes;
  }

  /** Sequences with cached positions. */
  get sequences(): number[] {
    return this.#sequences.ids;
  }

  /** Positions sequence `seq` has processed (0 if unknown). */
  processed(seq: number): number {
    return this.#sequences.processed(seq);
  }

  /** Reserves cache for whole sequences, all or nothing (see {@linkcode BatchDecoder}). */
  reserve(lengths: ReadonlyMap<number, number>): void {
    this.store.pool.reserve(lengths);
  }

  /**
   * Runs one step over `rows` and returns each sequence's next-token logits `(vocabSize)`,
   * after its last row (see {@linkcode BatchDecoder}); the rows are checked, all of them, and
   * the cache reserved before anything is written.
   */
  // deno-lint-ignore require-await
  async step(rows: readonly BatchRow[]): Promise<Float32Array[]> {
    return this.stepSync(rows);
  }

  /** {@linkcode CpuBatchDecoder.step}, synchronously. */
  stepSync(rows: readonly BatchRow[]): Float32Array[] {
    const plan = this.#sequences.begin(rows);
    const { dim, hiddenDim, nHeads, nKvHeads, vocabSize, normEps: eps } = this.config;
    const hd = headDim(this.config);
    const qDim = nHeads * hd, kvDim = nKvHeads * hd;
    const turn = ropeOptions(this.config);
    const b = rows.length;
    const w = this.weights;
    // x: (b, dim), the residual stream of every row.
    const x = embedding(w.tokenEmbedding, rows.map((r) => r.token), dim);
    w.layers.forEach((layer, l) => {
      // attention: x += wo · attention(rope(wq·xb), cache of the row's sequence)
      let xb = rmsNorm(x, layer.attentionNorm, eps);
      const q = matmul(layer.wq, xb, b, qDim, dim);
      const k = matmul(layer.wk, xb, b, kvDim, dim);
      const v = matmul(layer.wv, xb, b, kvDim, dim);
      const att = new Float32Array(b * qDim);
      rows.forEach(({ seq, pos }, r) => {
        const qr = rope(q.subarray(r * qDim, (r + 1) * qDim), pos, hd, turn);
        const kr = rope(k.subarray(r * kvDim, (r + 1) * kvDim), pos, hd, turn);
        // Write, then attend: a later row of the same sequence sees this one.
        this.store.write(l, seq, pos, kr, v.subarray(r * kvDim, (r + 1) * kvDim));
        att.set(this.store.attend(l, seq, qr, pos), r * qDim);
      });
      addInPlace(x, matmul(layer.wo, att, b, dim, qDim));
      // feed-forward: x += w2 · (silu(w1·xb) ⊙ w3·xb)
      xb = rmsNorm(x, layer.ffnNorm, eps);
      const gate = matmul(layer.w1, xb, b, hiddenDim, dim);
      const up = matmul(layer.w3, xb, b, hiddenDim, dim);
      addInPlace(x, matmul(layer.w2, siluMul(gate, up), b, dim, hiddenDim));
    });
    // The classifier runs on each sequence's last row only.
    const { lastRows } = plan;
    const last = new Float32Array(lastRows.length * dim);
    lastRows.forEach((r, i) => last.set(x.subarray(r * dim, (r + 1) * dim), i * dim));
    const logits = matmul(
      w.classifier,
      rmsNorm(last, w.finalNorm, eps),
      lastRows.length,
      vocabSize,
      dim,
    );
    this.#sequences.commit(plan);
    return lastRows.map((_, i) => logits.slice(i * vocabSize, (i + 1) * vocabSize));
  }

  /** Caches `length` positions of new sequence `seq` with seeded random keys and values. */
  prime(seq: number, length: number, seed = 0): void {
    this.#sequences.prime(seq, length);
    const kvDim = this.config.nKvHeads * headDim(this.config);
    for (let l = 0; l < this.config.nLayers; l++) {
      const keys = primeRows(length, kvDim, seed + 2 * l);
      const values = primeRows(length, kvDim, seed + 2 * l + 1);
      // A ring keeps only the last of them.
      const { ring, blockSize } = this.store.pool.shape;
      for (let pos = ring ? Math.max(0, length - blockSize) : 0; pos < length; pos++) {
        const at = pos * kvDim;
        this.store.write(
          l,
          seq,
          pos,
          keys.subarray(at, at + kvDim),
          values.subarray(at, at + kvDim),
        );
      }
    }
  }

  /** Ends sequence `seq`, freeing its cache (its paged blocks return to the pool). */
  release(seq: number): void {
    this.#sequences.release(seq);
  }
}

function addInPlace(x: Float32Array, delta: Float32Array): void {
  for (let i = 0; i < x.length; i++) x[i] += delta[i];
}
