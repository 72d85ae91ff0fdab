// One core's share of the CPU ceilings (bench/ceilings.ts): instantiates the WebAssembly kernels
// on the shared memory it is sent, then runs each job it is given and answers its milliseconds.
import { type CeilingKernels, ceilingKernels } from "./_wasm_kernels.ts";

/** A job: `repeats` passes of one kernel over this worker's slice. */
export type CeilingJob =
  | { op: "init"; memory: WebAssembly.Memory; maxPages: number }
  | { op: "read"; ptr: number; bytes: number; repeats: number }
  | { op: "copy"; ptr: number; dst: number; bytes: number; repeats: number }
  | { op: "fma"; iterations: number; repeats: number };

const scope = self as unknown as {
  onmessage: ((event: MessageEvent<CeilingJob>) => void) | null;
  postMessage(message: unknown): void;
};
let kernels: CeilingKernels | undefined;
let sink = 0;

scope.onmessage = ({ data: job }) => {
  if (job.op === "init") {
    kernels = ceilingKernels(job.memory, job.maxPages);
    scope.postMessage({ ms: 0 });
    return;
  }
  const k = kernels!;
  const start = performance.now();
  for (let i = 0; i < job.repeats; i++) {
    if (job.op === "read") sink += k.sum(job.ptr, job.ptr + job.bytes);
    else if (job.op === "copy") k.copy(job.ptr, job.dst, job.ptr + job.bytes);
    else sink += k.fma(job.iterations);
  }
  scope.postMessage({ ms: performance.now() - start, sink: Number.isNaN(sink) ? 1 : 0 });
};
