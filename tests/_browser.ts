// Shared set-up of the browser tests: the Chromium found here, whether the tests are ignored
// (no Chromium, outside CI), and `deno task browser` run in-process.
import { browserMain } from "../browser/main.ts";
import { findBrowser } from "../browser/chromium.ts";
import { requireWebGpu } from "./_gpu.ts";

/** The headless Chromium found on this machine, if any. */
export const browser: string | undefined = findBrowser();

/** True when the browser tests are ignored here (no Chromium, and not required). */
export const ignoreBrowserTests: boolean = !browser && !requireWebGpu;

// Once per run (the environment is shared by the parallel test workers).
if (ignoreBrowserTests && !Deno.env.get("LLAMA_BROWSER_NOTICE_SHOWN")) {
  Deno.env.set("LLAMA_BROWSER_NOTICE_SHOWN", "1");
  console.warn(
    "browser tests ignored: no Chromium (apt-get install chromium-headless-shell); required under CI",
  );
}

/** Runs `deno task browser ARGS` in-process: its exit code, printed text and progress lines. */
export async function cli(
  ...args: string[]
): Promise<{ code: number; out: string; progress: string }> {
  let out = "";
  let progress = "";
  const code = await browserMain(args, {
    print: (t) => out += `${t}\n`,
    progress: (l) => progress += `${l}\n`,
  });
  return { code, out, progress };
}
