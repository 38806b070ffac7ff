/**
 * Builds the web app (web/src) into a static directory with esbuild: hashed `assets/*` (JS, CSS and
 * tldraw's fonts, icons and translations from `@tldraw/assets`) and an `index.html` written last, so
 * a server reading the directory never sees a page whose assets are missing. The Zero client the
 * page loads when files sync through Zero is bundled apart (`deno bundle`, see
 * {@link bundleZeroClient}).
 *
 * The app's npm packages live in web/node_modules, installed by Deno (`deno install`) from the
 * committed web/deno.lock on first use: esbuild resolves them the Node way, and Deno's global npm
 * cache has no node_modules layout for it to walk. web/ is a Deno project of its own (web/deno.json),
 * so the server never downloads the app's packages.
 *
 * CLI: `deno run -A --config web/deno.json web/build.ts [--watch] [--out DIR]` (`deno task build`;
 * `deno task dev` runs it with `--watch`).
 *
 * @module
 */
// This script runs under Deno, while the rest of the web member is type-checked for the browser.
/// <reference lib="deno.ns" />
import type * as esbuild from "esbuild";
import { ensurePackagesInstalled } from "./deno_install.ts";

/** The web app's directory (package.json, src/). */
export const WEB_DIR: string = decodeURIComponent(new URL(".", import.meta.url).pathname);
/** Where `deno task build` and `deno task dev` put the app; `routes/web.ts` serves it by default. */
export const DEFAULT_OUT_DIR: string = `${WEB_DIR}dist`;

/** Options of {@link buildWeb} and {@link watchWeb}. */
export interface BuildOptions {
  /** Output directory (created if missing). Default {@link DEFAULT_OUT_DIR}. */
  outDir?: string;
  /** Minify and drop source maps. Default true. */
  production?: boolean;
  /** Called after every build with its errors (empty on success) and its duration. */
  onBuild?: (errors: string[], ms: number) => void;
}

/** Installs web/node_modules unless it matches package.json and deno.lock. */
export function ensureInstalled(): Promise<void> {
  return ensurePackagesInstalled(WEB_DIR, {
    onInstall: () => console.error("web: installing the app's packages (first run only)…"),
  });
}

/**
 * esbuild, once web/node_modules is installed. Imported by its file, dynamically: on a fresh clone
 * the package does not exist when this module loads, and Deno resolves bare `npm` names against
 * the node_modules it saw at start-up (`main` of esbuild's package.json is `lib/main.js`).
 */
async function loadEsbuild(): Promise<typeof esbuild> {
  await ensureInstalled();
  return await import(new URL("./node_modules/esbuild/lib/main.js", import.meta.url).href);
}

/** tldraw's asset files (imported by `@tldraw/assets/imports`) are emitted as files, not inlined. */
const tldrawAssetFiles: esbuild.Plugin = {
  name: "tldraw-asset-files",
  setup(build) {
    build.onLoad(
      { filter: /[\\/]@tldraw[\\/]assets[\\/].*\.(json|png|svg|woff2?)$/ },
      async (args) => ({
        contents: await Deno.readFile(args.path),
        loader: "file",
      }),
    );
  },
};

/** Writes index.html for the build's entry JS and CSS, then removes assets no longer produced. */
/** The repository (web/ is one of its directories). */
const ROOT_DIR = decodeURIComponent(new URL("../", import.meta.url).pathname);

/**
 * Bundles the Zero client the page loads when the server has `ZERO_CACHE_URL`
 * (sync/zero/browser_client.ts) with `deno bundle`: it is the server's own code and package,
 * resolved through the server's deno.json, so web/ installs nothing for it. Written under a content
 * hash; returns its path under `outDir` (`assets/zero-client-<hash>.js`).
 */
async function bundleZeroClient(outDir: string, production: boolean): Promise<string> {
  const temporary = `${outDir}/zero-client.tmp.js`;
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "bundle",
      "--quiet",
      "--platform",
      "browser",
      ...(production ? ["--minify"] : []),
      "--config",
      `${ROOT_DIR}deno.json`,
      "-o",
      temporary,
      `${ROOT_DIR}sync/zero/browser_client.ts`,
    ],
    cwd: ROOT_DIR,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!output.success) {
    throw new Error(`bundling the Zero client failed:\n${new TextDecoder().decode(output.stderr)}`);
  }
  const bytes = await Deno.readFile(temporary);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  const hash = [...digest.slice(0, 6)].map((b) => b.toString(16).padStart(2, "0")).join("");
  const path = `assets/zero-client-${hash}.js`;
  await Deno.rename(temporary, `${outDir}/${path}`);
  return path;
}

function writeIndex(outDir: string, alsoKeep: readonly string[]): esbuild.Plugin {
  return {
    name: "write-index",
    setup(build) {
      build.onEnd(async (result) => {
        if (result.errors.length > 0 || !result.metafile) return;
        const outputs = Object.keys(result.metafile.outputs).map((path) =>
          path.slice(path.lastIndexOf("/assets/") + 1)
        );
        const js = outputs.find((path) => /^assets\/main-[^/]+\.js$/.test(path));
        const css = outputs.find((path) => /^assets\/main-[^/]+\.css$/.test(path));
        if (!js) throw new Error("the build produced no main-*.js");
        const html = indexHtml(js, css);
        // Written to a temporary name and renamed: a request never reads a half-written page.
        await Deno.writeTextFile(`${outDir}/index.html.tmp`, html);
        await Deno.rename(`${outDir}/index.html.tmp`, `${outDir}/index.html`);
        const keep = new Set([...outputs, ...alsoKeep]);
        for await (const entry of Deno.readDir(`${outDir}/assets`)) {
          if (!keep.has(`assets/${entry.name}`)) {
            await Deno.remove(`${outDir}/assets/${entry.name}`).catch(() => {});
          }
        }
      });
    },
  };
}

function indexHtml(js: string, css: string | undefined): string {
  return `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>deno-sync whiteboard</title>
    <link rel="icon" href="/favicon.svg" type="image/svg+xml" />
    ${css ? `<link rel="stylesheet" href="/${css}" />` : ""}
    <script type="module" src="/${js}"></script>
  </head>
  <body>
    <div id="root"></div>
  </body>
</html>
`;
}

function buildOptions(options: BuildOptions, zeroClient: string): esbuild.BuildOptions {
  const outDir = options.outDir ?? DEFAULT_OUT_DIR;
  const production = options.production ?? true;
  const report: esbuild.Plugin = {
    name: "report",
    setup(build) {
      let started = 0;
      build.onStart(() => {
        started = Date.now();
      });
      build.onEnd((result) => {
        options.onBuild?.(result.errors.map((error) => error.text), Date.now() - started);
      });
    },
  };
  return {
    absWorkingDir: WEB_DIR,
    entryPoints: { main: `${WEB_DIR}src/main.tsx` },
    outdir: outDir,
    entryNames: "assets/[name]-[hash]",
    assetNames: "assets/[name]-[hash]",
    // File-loader URLs (tldraw's fonts, icons, translations) are absolute: the page is always `/`.
    publicPath: "/",
    bundle: true,
    format: "esm",
    target: "es2022",
    platform: "browser",
    jsx: "automatic",
    minify: production,
    sourcemap: production ? false : "linked",
    metafile: true,
    logLevel: "silent",
    define: {
      "process.env.NODE_ENV": JSON.stringify(production ? "production" : "development"),
      TLDRAW_LICENSE_KEY: JSON.stringify(Deno.env.get("TLDRAW_LICENSE_KEY") ?? ""),
      ZERO_CLIENT_URL: JSON.stringify(`/${zeroClient}`),
    },
    plugins: [tldrawAssetFiles, writeIndex(outDir, [zeroClient]), report],
  };
}

/** Builds once into `options.outDir`. Throws with esbuild's messages when the build fails. */
export async function buildWeb(options: BuildOptions = {}): Promise<void> {
  const esbuild = await loadEsbuild();
  const outDir = options.outDir ?? DEFAULT_OUT_DIR;
  await Deno.mkdir(`${outDir}/assets`, { recursive: true });
  const zeroClient = await bundleZeroClient(outDir, options.production ?? true);
  try {
    await esbuild.build(buildOptions(options, zeroClient));
  } finally {
    // esbuild keeps a child process for the next build; stop it so the caller can exit (and tests
    // see no leaked resources).
    await esbuild.stop();
  }
}

/** Builds, then rebuilds whenever a file of the bundle changes. Dispose the result to stop. */
export async function watchWeb(options: BuildOptions = {}): Promise<AsyncDisposable> {
  const esbuild = await loadEsbuild();
  const outDir = options.outDir ?? DEFAULT_OUT_DIR;
  await Deno.mkdir(`${outDir}/assets`, { recursive: true });
  // Built once: it changes with the server's sync/zero/, which restarts nothing here.
  const zeroClient = await bundleZeroClient(outDir, options.production ?? false);
  const context = await esbuild.context(buildOptions(options, zeroClient));
  await context.watch();
  return {
    async [Symbol.asyncDispose]() {
      await context.dispose();
      await esbuild.stop();
    },
  };
}

async function main(): Promise<void> {
  const watch = Deno.args.includes("--watch");
  const outIndex = Deno.args.indexOf("--out");
  const outArg = outIndex >= 0 ? Deno.args[outIndex + 1] : undefined;
  // Relative to where the command runs (esbuild would resolve it against web/).
  const outDir = outArg && !outArg.startsWith("/") ? `${Deno.cwd()}/${outArg}` : outArg;
  const onBuild = (errors: string[], ms: number) => {
    if (errors.length > 0) console.error(`web: build failed:\n  ${errors.join("\n  ")}`);
    else console.error(`web: built ${outDir ?? "web/dist"} in ${ms} ms`);
  };
  if (!watch) {
    await buildWeb({ ...(outDir ? { outDir } : {}), onBuild });
    return;
  }
  // Development: readable output with source maps, rebuilt on every change under web/src.
  console.error("web: building, then rebuilding on changes under web/src");
  const watching = watchWeb({ ...(outDir ? { outDir } : {}), production: false, onBuild });
  // Stopped by `deno task dev` (SIGTERM) or Ctrl-C, also during the first build: esbuild's service
  // process goes too. Left running, it would keep the launcher's output pipes open after
  // everything else has exited.
  const stop = async () => {
    await watching.then((w) => w[Symbol.asyncDispose]()).catch(() => {});
    Deno.exit(0);
  };
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    try {
      Deno.addSignalListener(signal, () => void stop());
    } catch {
      // SIGTERM cannot be listened for on Windows; Ctrl-C still can.
    }
  }
  await watching;
}

if (import.meta.main) await main();
