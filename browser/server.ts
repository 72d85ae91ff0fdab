/**
 * Bundling the page and serving it from `Deno.serve` on 127.0.0.1: the HTML, the bundled
 * `page.js`, model files, and the two endpoints the page POSTs to (`/api/log` for progress,
 * `/api/result` for its report).
 *
 * @module
 */

/** The page's entry module. */
export const PAGE_ENTRY: URL = new URL("./page.ts", import.meta.url);
/** The page's HTML. */
export const PAGE_HTML: URL = new URL("./index.html", import.meta.url);

/**
 * Bundles the page's modules (or the module at `entry`) into one browser script with `deno bundle` (the Deno running
 * this, so the same version), and returns its text.
 *
 * @example
 * ```ts ignore
 * import { bundlePage } from "./server.ts";
 * const js = await bundlePage();
 * console.log(js.length);
 * ```
 */
export async function bundlePage(entry: URL = PAGE_ENTRY): Promise<string> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["bundle", "--quiet", "--platform", "browser", decodeURIComponent(entry.pathname)],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const stderr = new TextDecoder().decode(output.stderr).trim();
  if (!output.success) {
    throw new Error(`deno bundle ${entry.pathname}: failed (${stderr || `exit ${output.code}`})`);
  }
  return new TextDecoder().decode(output.stdout);
}

/** Options of {@linkcode servePage}. */
export interface ServePageOptions {
  /** The bundled page script. */
  script: string;
  /** Files served under `/models/NAME`, by name. */
  files?: Record<string, string>;
  /** A folder whose files are served under `/models/` too (the user page's defaults). */
  modelsDir?: string;
  /** Called with each progress line the page posts. */
  onLog?: (line: string) => void;
  /** Port (default: any free one). */
  port?: number;
  /** A bundled kernel module served at `/kernel.js` (`conformance --kernel`). */
  kernelScript?: string;
}

/** A running page server. */
export interface PageServer {
  /** The page's address, e.g. "http://127.0.0.1:41234/". */
  readonly url: string;
  /** The first report the page posts to `/api/result`, parsed. */
  readonly result: Promise<unknown>;
  /** Stops the server. */
  close(): Promise<void>;
}

const TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  bin: "application/octet-stream",
};

async function fileResponse(path: string): Promise<Response> {
  try {
    const file = await Deno.open(path, { read: true });
    return new Response(file.readable, { headers: { "content-type": TYPES.bin } });
  } catch {
    return new Response(`${path}: not found`, { status: 404 });
  }
}

/**
 * Serves the page on 127.0.0.1 (a secure context, as WebGPU requires).
 *
 * @example
 * ```ts ignore
 * import { bundlePage, servePage } from "./server.ts";
 * const server = servePage({ script: await bundlePage(), onLog: console.log });
 * console.log(`open ${server.url}`);
 * ```
 */
export function servePage(options: ServePageOptions): PageServer {
  const html = Deno.readTextFileSync(PAGE_HTML);
  let deliver: (value: unknown) => void = () => {};
  const result = new Promise<unknown>((resolve) => deliver = resolve);
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: options.port ?? 0, onListen: () => {} },
    async (request) => {
      const { pathname } = new URL(request.url);
      if (request.method === "POST" && pathname === "/api/log") {
        options.onLog?.(await request.text());
        return new Response("ok");
      }
      if (request.method === "POST" && pathname === "/api/result") {
        const text = await request.text();
        try {
          deliver(JSON.parse(text));
        } catch {
          deliver({ error: `the page posted a report that is not JSON: ${text.slice(0, 200)}` });
        }
        return new Response("ok");
      }
      if (request.method !== "GET") return new Response("method not allowed", { status: 405 });
      if (pathname === "/" || pathname === "/index.html") {
        return new Response(html, { headers: { "content-type": TYPES.html } });
      }
      if (pathname === "/page.js") {
        return new Response(options.script, { headers: { "content-type": TYPES.js } });
      }
      if (pathname === "/kernel.js" && options.kernelScript !== undefined) {
        return new Response(options.kernelScript, { headers: { "content-type": TYPES.js } });
      }
      const model = /^\/models\/(\w[\w.-]*)$/.exec(pathname)?.[1]; // a plain name, no ".."
      if (model && options.files?.[model]) return await fileResponse(options.files[model]);
      if (model && options.modelsDir) return await fileResponse(`${options.modelsDir}/${model}`);
      return new Response("not found", { status: 404 });
    },
  );
  const { port } = server.addr as Deno.NetAddr;
  return {
    url: `http://127.0.0.1:${port}/`,
    result,
    close: async () => {
      await server.shutdown();
    },
  };
}
