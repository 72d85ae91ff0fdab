import { expect } from "expect";
import {
  type BatchRow,
  CpuBatchDecoder,
  CpuDecoder,
  generate,
  generateBatch,
  type KvLayout,
  makeConfig,
  randomWeights,
} from "../model/mod.ts";
import { argmax, compare } from "../reference/mod.ts";

const LAYOUTS: KvLayout[] = ["contiguous", "paged"];

function model(nKvHeads: number, slidingWindow?: number) {
  const config = makeConfig({
    dim: 32,
    hiddenDim: 48,
    nLayers: 2,
    nHeads: 4,
    nKvHeads,
    vocabSize: 40,
    maxSeqLen: 48,
    slidingWindow,
  });
  return { config, weights: randomWeights(config, 100 + nKvHeads) };
}

/**
 * Runs prompts through a batched decoder: every prompt prefilled as rows of one step, then
 * greedy steps; sequence `s` stops after `steps[s]` tokens and a late prompt joins when the first
 * one ends. Returns each sequence's tokens and the logits of every row, in order.
 */
function runBatch(decoder: CpuBatchDecoder, prompts: number[][], steps: number[]) {
  const tokens = prompts.map((p) => [...p]);
  const logits = prompts.map(() => [] as Float32Array[]);
  const live = new Set(prompts.map((_, s) => s).filter((s) => s < prompts.length - 1));
  const late = prompts.length - 1;
  let rows: BatchRow[] = [...live].flatMap((seq) =>
    prompts[seq].map((token, pos) => ({ seq, token, pos }))
  );
  while (rows.length > 0) {
    const out = decoder.stepSync(rows);
    const next: BatchRow[] = [];
    const lastRows = rows.filter((row, r) => r === rows.length - 1 || rows[r + 1].seq !== row.seq);
    expect(out.length).toBe(lastRows.length);
    lastRows.forEach((row, i) => {
      logits[row.seq].push(out[i]);
      if (tokens[row.seq].length - prompts[row.seq].length >= steps[row.seq]) {
        decoder.release(row.seq);
        live.delete(row.seq);
        if (row.seq === 0) {
          // The late sequence takes the freed memory, prefilled alongside the others' decode.
          live.add(late);
          next.push(...prompts[late].map((token, pos) => ({ seq: late, token, pos })));
        }
        return;
      }
      const token = argmax(out[i]);
      next.push({ seq: row.seq, token, pos: tokens[row.seq].length });
      tokens[row.seq].push(token);
    });
    rows = next;
  }
  return { tokens, logits };
}

async function runAlone(decoder: CpuDecoder, tokens: number[], promptLength: number) {
  const logits = [await decoder.prefill(tokens.slice(0, promptLength))];
  for (let pos = promptLength; pos < tokens.length; pos++) {
    logits.push(await decoder.forward(tokens[pos], pos));
  }
  return logits;
}

for (const nKvHeads of [4, 2, 1]) {
  for (const layout of LAYOUTS) {
    Deno.test(`batched ${layout} decoding of ragged sequences matches each sequence alone (${nKvHeads} KV heads)`, async () => {
      const { config, weights } = model(nKvHeads);
      const prompts = [[1, 5, 9, 2, 30], [7, 3], [4, 4, 8, 11, 12, 13, 1], [6, 2, 19]];
      const steps = [3, 6, 4, 5];
      const decoder = new CpuBatchDecoder(config, weights, {
        layout,
        blockSize: 4,
        numBlocks: 9, // fewer than four sequences' worth: the late one reuses freed blocks
        maxSequences: 3,
      });
      const batched = runBatch(decoder, prompts, steps);
      expect(decoder.sequences).toEqual([]);
      for (let s = 0; s < prompts.length; s++) {
        expect(batched.tokens[s].length).toBe(prompts[s].length + steps[s]);
        const alone = await runAlone(
          new CpuDecoder(config, weights),
          batched.tokens[s],
          prompts[s].length,
        );
        expect(batched.logits[s].length).toBe(alone.length);
        alone.forEach((want, i) => {
          expect(compare(batched.logits[s][i], want).maxAbsError).toBeLessThan(1e-5);
        });
      }
    });
  }
}

Deno.test("paged layout reserves blocks as sequences grow and frees them when they end", () => {
  const { config, weights } = model(2);
  const decoder = new CpuBatchDecoder(config, weights, {
    layout: "paged",
    blockSize: 4,
    numBlocks: 6,
  });
  const perToken = 2 * 2 * 2 * 8 * 4; // K and V, 2 layers, 2 KV heads of 8, f32
  decoder.stepSync([0, 1, 2, 3, 4].map((pos) => ({ seq: 0, token: 1, pos })));
  decoder.stepSync([{ seq: 1, token: 2, pos: 0 }]);
  expect(decoder.kvUsedBytes).toBe(6 * perToken);
  expect(decoder.kvReservedBytes).toBe(6 * 4 * perToken);
  // 2 + 1 blocks live: a third sequence of 13 positions (4 blocks) does not fit, and says so
  expect(() =>
    decoder.stepSync(Array.from({ length: 13 }, (_, pos) => ({ seq: 2, token: 3, pos })))
  )
    .toThrow("needs 4 more blocks of 4 positions for length");
  expect(decoder.sequences).toEqual([0, 1]); // the refused sequence left nothing behind
  decoder.release(0);
  decoder.stepSync(Array.from({ length: 13 }, (_, pos) => ({ seq: 2, token: 3, pos })));
  expect(decoder.kvUsedBytes).toBe(14 * perToken);
});

Deno.test("batched step checks every row before caching anything", () => {
  const { config, weights } = model(2);
  const decoder = new CpuBatchDecoder(config, weights);
  decoder.stepSync([{ seq: 0, token: 1, pos: 0 }]);
  expect(() => decoder.stepSync([{ seq: 0, token: 1, pos: 1 }, { seq: 1, token: 99, pos: 0 }]))
    .toThrow("step row 1 token: expected an id in [0, 40), got 99");
  expect(decoder.processed(0)).toBe(1);
  expect(() => decoder.stepSync([{ seq: 0, token: 1, pos: 2 }])).toThrow(
    "step row 0 (sequence 0): position 2 skips ahead: only positions 0..0 have been processed",
  );
  expect(() => decoder.stepSync([{ seq: 3, token: 1, pos: 0 }, { seq: 3, token: 1, pos: 0 }]))
    .toThrow("step row 1 pos of sequence 3: expected 1, the next position, got 0");
  expect(() => decoder.stepSync([{ seq: 4, token: 1, pos: 48 }])).toThrow(
    "step row 0 (sequence 4): position: expected an integer in [0, maxSeqLen 48), got 48",
  );
  expect(() =>
    decoder.stepSync([
      { seq: 3, token: 1, pos: 0 },
      { seq: 0, token: 1, pos: 1 },
      { seq: 3, token: 1, pos: 1 },
    ])
  ).toThrow("step row 2 seq: expected the rows of sequence 3 to be adjacent, got a second run");
  expect(() => decoder.stepSync([])).toThrow("step: expected at least one row, got none");
  expect(() => decoder.release(7)).toThrow("release: expected a live sequence id, got 7");
});

Deno.test("a sliding window gives the CPU decoder's logits on every layout, in a ring of window + rows - 1", async () => {
  const window = 6;
  const { config, weights } = model(2, window);
  const tokens = Array.from({ length: 20 }, (_, i) => (i * 7 + 3) % 40);
  // The single-sequence reference decoder, with the window (full attention over a cache).
  const reference = new CpuDecoder(config, weights);
  const want: Float32Array[] = [];
  for (const [pos, token] of tokens.entries()) want.push(await reference.forward(token, pos));
  for (const layout of ["contiguous", "paged", "sliding"] as const) {
    const decoder = new CpuBatchDecoder(config, weights, {
      layout,
      blockSize: 4,
      maxSequences: 1,
      maxRows: 4,
    });
    // A prompt longer than the window in steps of 4 rows, then one token a step.
    const got: [number, Float32Array][] = [];
    for (let pos = 0; pos < tokens.length;) {
      const n = pos < 12 ? 4 : 1;
      const rows = tokens.slice(pos, pos + n).map((token, i) => ({ seq: 0, token, pos: pos + i }));
      got.push([pos + rows.length - 1, decoder.stepSync(rows)[0]]);
      pos += rows.length;
    }
    for (const [pos, logits] of got) {
      expect(compare(logits, want[pos]).maxAbsError).toBeLessThan(1e-5);
    }
    if (layout === "sliding") {
      expect(decoder.kvReservedBytes).toBe((window + 3) * 2 * 2 * 2 * 8 * 4);
    }
  }
  // Past the window, the window matters: a full-attention model disagrees there, not before.
  const full = new CpuDecoder({ ...config, slidingWindow: undefined }, weights);
  const fullLogits: Float32Array[] = [];
  for (const [pos, token] of tokens.entries()) fullLogits.push(await full.forward(token, pos));
  expect(compare(fullLogits[window - 1], want[window - 1]).maxAbsError).toBe(0);
  expect(compare(fullLogits[window + 4], want[window + 4]).maxAbsError).toBeGreaterThan(1e-4);
  expect(() => new CpuBatchDecoder(model(2).config, weights, { layout: "sliding" })).toThrow(
    "KV layout sliding: expected a model with slidingWindow set",
  );
});

Deno.test("a sliding-window ring restarts a sequence but does not rewind it", () => {
  const { config, weights } = model(2, 4);
  const decoder = new CpuBatchDecoder(config, weights, { layout: "sliding", maxRows: 2 });
  for (let pos = 0; pos < 10; pos++) decoder.stepSync([{ seq: 0, token: 1, pos }]);
  expect(() => decoder.stepSync([{ seq: 0, token: 1, pos: 5 }])).toThrow(
    "step row 0 pos of sequence 0: a sliding-window ring continues at 10 or restarts at 0, got 5",
  );
  decoder.stepSync([{ seq: 0, token: 1, pos: 0 }]);
  expect(decoder.processed(0)).toBe(1);
});

Deno.test("a step refused for lack of blocks reserves nothing for any sequence", () => {
  const { config, weights } = model(2);
  const decoder = new CpuBatchDecoder(config, weights, {
    layout: "paged",
    blockSize: 4,
    numBlocks: 3,
  });
  decoder.stepSync([{ seq: 9, token: 1, pos: 0 }]);
  expect(() =>
    decoder.stepSync([
      { seq: 0, token: 1, pos: 0 },
      ...[0, 1, 2, 3, 4, 5, 6, 7, 8].map((pos) => ({ seq: 1, token: 2, pos })),
    ])
  ).toThrow(
    "KV cache (paged): sequences 0, 1 need 4 more blocks of 4 positions for length 1, 9, got 2 free of 3",
  );
  expect(decoder.sequences).toEqual([9]);
  expect(decoder.kvUsedBytes).toBe(1 * 2 * 2 * 2 * 8 * 4);
  decoder.stepSync([{ seq: 0, token: 1, pos: 0 }, { seq: 1, token: 1, pos: 0 }]);
});

for (const temperature of [0, 0.9]) {
  Deno.test(`continuous batching (temperature ${temperature}) picks the tokens each prompt gets alone`, async () => {
    const { config, weights } = model(2);
    const prompts = [[1, 5, 9], [7], [4, 4, 8, 11], [6, 2], [3, 3, 3, 3, 3]];
    const decoder = new CpuBatchDecoder(config, weights, {
      layout: "paged",
      blockSize: 4,
      numBlocks: 8, // two sequences at a time at most: later prompts take freed blocks
    });
    const steps = 9;
    const run = await generateBatch(decoder, prompts, {
      steps,
      temperature,
      seed: 5,
      stopAtBos: false,
      maxBatch: 2,
    });
    // The first step prefills the first two prompts; then one row per decoding sequence, plus
    // the whole prompt of each sequence that joins.
    expect(run.rowsPerStep[0]).toBe(4);
    expect(run.rowsPerStep[1]).toBe(2);
    expect(Math.max(...run.rowsPerStep)).toBeLessThanOrEqual(2 + 5);
    for (let i = 0; i < prompts.length; i++) {
      const alone = await generate(new CpuDecoder(config, weights), prompts[i], {
        steps,
        temperature,
        seed: 5,
        stopAtBos: false,
      });
      expect(run.tokens[i]).toEqual(alone.tokens);
    }
    expect(decoder.kvReservedBytes).toBe(8 * 4 * 2 * 2 * 2 * 8 * 4);
    expect(decoder.kvUsedBytes).toBe(0);
  });
}

Deno.test("continuous batching feeds long prompts in chunks of the rows left and waits for cache", async () => {
  const { config, weights } = model(1);
  const prompts = [[1, 5, 9, 2, 30, 8, 8], [7, 3], [4, 4, 8, 11, 12, 13, 1, 2, 3]];
  const decoder = new CpuBatchDecoder(config, weights, {
    layout: "paged",
    blockSize: 4,
    numBlocks: 7, // two runs of 7 + 5 and 2 + 5 positions fit (3 + 2 blocks); the third waits
    maxRows: 4,
  });
  const run = await generateBatch(decoder, prompts, { steps: 6, stopAtBos: false });
  expect(Math.max(...run.rowsPerStep)).toBeLessThanOrEqual(4);
  // 4 rows of prompt 0; its last 3 and the first of prompt 1; then decode rows, prompt 2 waiting
  expect(run.rowsPerStep.slice(0, 3)).toEqual([4, 4, 2]);
  for (let i = 0; i < prompts.length; i++) {
    const alone = await generate(new CpuDecoder(config, weights), prompts[i], {
      steps: 6,
      stopAtBos: false,
    });
    expect(run.tokens[i]).toEqual(alone.tokens);
  }
  expect(decoder.sequences).toEqual([]);
  // A prompt whose run can never fit says so rather than wait forever.
  await expect(generateBatch(decoder, [Array(30).fill(1)], { steps: 2 })).rejects.toThrow(
    "KV cache (paged): sequence 0 needs 8 more blocks of 4 positions for length 31, got 7 free of 7",
  );
});

Deno.test("continuous batching stops at non-finite logits, naming the prompt and position, and frees every sequence", async () => {
  const { config, weights } = model(2);
  weights.classifier.fill(7.9e37, 6 * config.dim, 7 * config.dim); // token 6's logit overflows
  const decoder = new CpuBatchDecoder(config, weights, { layout: "paged", blockSize: 4 });
  await expect(generateBatch(decoder, [[1, 4], [2, 5, 7]], { steps: 4 })).rejects.toThrow(
    /^prompt 0: generation stopped: the logits after position 1 are not finite \((-?Infinity|NaN) for token 6\)/,
  );
  expect(decoder.sequences).toEqual([]);
  expect(decoder.kvUsedBytes).toBe(0);
});
