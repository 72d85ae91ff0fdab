/**
 * Finding and launching a headless Chromium with WebGPU on, and always ending it.
 *
 * @module
 */

/** Where Chromium is usually installed on Linux (Debian's headless shell first). */
export const BROWSER_CANDIDATES: readonly string[] = [
  "/usr/lib/chromium/chromium-headless-shell",
  "/usr/bin/chromium-headless-shell",
  "/usr/bin/chromium",
  "/usr/bin/chromium-browser",
  "/usr/bin/google-chrome",
  "/usr/bin/google-chrome-stable",
];

/** How to get a browser when there is none. */
export const NO_BROWSER_HELP: string =
  "no Chromium found; install the headless shell (`sudo apt-get install -y " +
  "chromium-headless-shell`) or pass --browser PATH";

/**
 * The browser to use: `explicit` when given (it must exist), else the first installed of
 * {@linkcode BROWSER_CANDIDATES}; `undefined` when there is none.
 *
 * @example
 * ```ts ignore
 * import { findBrowser } from "./chromium.ts";
 * console.log(findBrowser() ?? "no browser");
 * ```
 */
export function findBrowser(explicit?: string): string | undefined {
  const isFile = (path: string) => {
    try {
      return Deno.statSync(path).isFile;
    } catch {
      return false;
    }
  };
  if (explicit !== undefined) {
    if (!isFile(explicit)) {
      throw new Error(`--browser: expected an executable file, got "${explicit}"`);
    }
    return explicit;
  }
  return BROWSER_CANDIDATES.find(isFile);
}

/** A running browser. */
export interface BrowserProcess {
  /** Its process id. */
  readonly pid: number;
  /** Resolves with the exit code if the browser ends by itself. */
  readonly exited: Promise<number>;
  /** The browser's stderr so far (the tail), for error messages. */
  stderrTail(): string;
  /** Ends the browser (SIGTERM, then SIGKILL) and removes its profile; safe to call twice. */
  close(): Promise<void>;
}

/** The flags `deno task browser` starts Chromium with (before the profile and the URL). */
export const BROWSER_FLAGS: readonly string[] = [
  "--headless",
  "--no-sandbox",
  "--enable-unsafe-webgpu",
  "--no-first-run",
  "--no-default-browser-check",
  "--disable-extensions",
  "--mute-audio",
];

/**
 * Starts `path` headless with WebGPU on, a fresh profile in a temporary folder, at `url`.
 *
 * @example
 * ```ts ignore
 * import { findBrowser, launchBrowser } from "./chromium.ts";
 * const browser = await launchBrowser(findBrowser()!, "http://127.0.0.1:8000/");
 * await browser.close();
 * ```
 */
export async function launchBrowser(path: string, url: string): Promise<BrowserProcess> {
  const profile = await Deno.makeTempDir({ prefix: "llama-browser-" });
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(path, {
      args: [...BROWSER_FLAGS, `--user-data-dir=${profile}`, url],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
  } catch (error) {
    await Deno.remove(profile, { recursive: true }).catch(() => {});
    throw new Error(`${path}: cannot start the browser (${(error as Error).message})`);
  }
  let tail = "";
  const drained = (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of child.stderr) {
      tail = (tail + decoder.decode(chunk, { stream: true })).slice(-4000);
    }
  })().catch(() => {});
  let ended = false;
  const exited = child.status.then((s) => {
    ended = true;
    return s.code;
  });
  let closing: Promise<void> | undefined;
  const signal = (name: Deno.Signal) => {
    try {
      child.kill(name);
    } catch { /* exited meanwhile */ }
  };
  return {
    pid: child.pid,
    exited,
    stderrTail: () => tail,
    close() {
      closing ??= (async () => {
        if (!ended) {
          signal("SIGTERM");
          let timer: ReturnType<typeof setTimeout> | undefined;
          const stopped = await Promise.race([
            exited.then(() => true),
            new Promise<boolean>((r) => timer = setTimeout(() => r(false), 3000)),
          ]);
          clearTimeout(timer);
          if (!stopped) {
            signal("SIGKILL");
            await exited;
          }
        }
        await drained;
        await Deno.remove(profile, { recursive: true }).catch(() => {});
      })();
      return closing;
    },
  };
}
