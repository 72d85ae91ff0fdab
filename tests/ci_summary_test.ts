// .ci/summarize: the plain "N passed, N failed" line CI ends with, and the clear line for a run
// that died by a signal after its summary (issue #20's abort at exit), on hand-written logs.
import { expect } from "expect";

const script = new URL("../.ci/summarize", import.meta.url).pathname;

async function summarize(log: string, status: number): Promise<{ code: number; out: string }> {
  const path = await Deno.makeTempFile({ suffix: ".log" });
  try {
    await Deno.writeTextFile(path, log);
    const { code, stdout } = await new Deno.Command("bash", {
      args: [script, path, String(status)],
      stdout: "piped",
    }).output();
    return { code, out: new TextDecoder().decode(stdout) };
  } finally {
    await Deno.remove(path);
  }
}

Deno.test({
  name: ".ci/summarize: Deno's counts, a signal after the summary named, the status kept",
  ignore: Deno.build.os === "windows",
  async fn() {
    // Deno colours its summary; the counts are read through the escapes
    const log = "running 3 tests\n\x1b[0m\x1b[32mok\x1b[0m | 1241 passed | 0 failed | " +
      "1 ignored \x1b[38;5;245m(2m13s)\x1b[0m\n";
    expect(await summarize(log, 0)).toEqual({ code: 0, out: "1241 passed, 0 failed\n" });
    expect(await summarize(log, 134)).toEqual({
      code: 134,
      out: "deno test died with signal 6 after its summary (1241 passed, 0 failed): a crash in " +
        'native teardown at exit, not a test; see docs/testing.md ("An abort at exit")\n' +
        "1241 passed, 0 failed\n",
    });
    const failed = "FAILED | 7 passed | 2 failed (3s)\n";
    expect(await summarize(failed, 1)).toEqual({ code: 1, out: "7 passed, 2 failed\n" });
    // no summary at all (the runner crashed before it): one failure
    expect(await summarize("error: Module not found\n", 1)).toEqual({
      code: 1,
      out: "0 passed, 1 failed\n",
    });
  },
});
