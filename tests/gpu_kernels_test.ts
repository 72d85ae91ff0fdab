import { expect } from "expect";
import { conformanceCases, judgeCase } from "../gpu/conformance.ts";
import { gpuTest } from "./_gpu.ts";

// Each kernel, at every shape of the conformance suite, against its reference: NMSE and max
// abs error within the case's bounds, no NaN/Inf, guards around the output untouched.
for (const testCase of conformanceCases()) {
  const name = `${testCase.kernel} ${testCase.variant} ${testCase.shape} matches its reference`;
  gpuTest(name, async (gpu) => {
    const result = await judgeCase(gpu, testCase);
    // a variant that does not serve this shape, or needs a feature this adapter lacks
    if (result.skipped !== undefined) {
      expect(result.skipped).toMatch(/^(needs |does not apply)/);
      return;
    }
    expect(result.error).toBeUndefined();
    expect(result.firstNonFinite).toBe(-1);
    expect(result.guardsIntact).toBe(true);
    expect(result.nmse).toBeLessThanOrEqual(testCase.maxNmse);
    expect(result.maxAbsError).toBeLessThanOrEqual(testCase.maxAbsError);
    expect(result.passed).toBe(true);
  });
}
