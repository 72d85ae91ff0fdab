/**
 * The same RMSNorm as `rms_norm.ts` with eps added outside the square root,
 * `x / (sqrt(mean(x²)) + eps)`: indistinguishable on ordinary rows, wrong on rows whose mean
 * square is near eps. Conformance fails it on exactly those rows:
 *
 * ```sh
 * deno task conformance --kernel examples/kernels/rms_norm_eps_outside.ts
 * ```
 *
 * @module
 */
import type { ForeignKernel, RmsNormPairShape } from "../../gpu/mod.ts";
import { rmsNormWgsl } from "./rms_norm.ts";

/** The kernels this module offers to `deno task conformance --kernel`. */
export const kernels: ForeignKernel<RmsNormPairShape>[] = [{
  family: "rmsNorm",
  name: "eps outside sqrt",
  wgsl: ({ dim }) => rmsNormWgsl(dim, false),
  workgroups: ({ rows }) => rows,
}];
