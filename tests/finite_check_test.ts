import { expect } from "expect";
import { finiteCheckKernel, NO_FAULT, STATE_BYTES, stateWords } from "../gpu/mod.ts";
import { gpuTest } from "./_gpu.ts";

gpuTest(
  "the finite check records the first position whose logits hold an Inf or NaN",
  async (gpu) => {
    const n = 1000;
    const check = await finiteCheckKernel(gpu, n);
    const fault = gpu.upload(Uint32Array.of(NO_FAULT));
    const state = gpu.createBuffer(STATE_BYTES);
    const run = async (logits: Float32Array, next: number) => {
      gpu.write(state, stateWords({ next }));
      const buffer = gpu.upload(logits);
      await gpu.submit(check.bind({ logits: buffer, state, fault }));
      buffer.destroy();
      return (await gpu.readUint32(fault, 1))[0];
    };
    const finite = Float32Array.from({ length: n }, (_, i) => Math.sin(i) * 1e3);
    finite[17] = 3.4028234e38; // the largest finite float32 is no fault
    finite[18] = -3.4028234e38;
    finite[19] = 1e-45; // nor is a subnormal
    expect(await run(finite, 9)).toBe(NO_FAULT);
    for (const [bad, index] of [[Infinity, 999], [-Infinity, 0], [NaN, 500]]) {
      gpu.write(fault, Uint32Array.of(NO_FAULT));
      const logits = finite.slice();
      logits[index] = bad;
      // the logits chosen from for position `next` follow position next - 1
      expect(await run(logits, 12)).toBe(11);
    }
    // the smallest faulty position stays
    const logits = finite.slice();
    logits[3] = NaN;
    expect(await run(logits, 7)).toBe(6);
    expect(await run(finite, 4)).toBe(6);
    expect(await run(logits, 4)).toBe(3);
    fault.destroy();
    state.destroy();
  },
);
