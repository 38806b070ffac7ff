/**
 * A headless Chromium for end-to-end tests: Debian's `/usr/bin/chromium` (or `CHROMIUM_PATH`) driven
 * by `playwright-core` (Playwright's own browser downloads are not used; `.ci/run` installs the
 * Debian package).
 *
 * A machine with nothing but Deno has no Chromium: there {@link browserTestAvailability} says to skip,
 * loudly, unless `CI=true`, where a missing browser is a failure.
 *
 * @module
 */
// Imported here rather than through deno.json: a package only the tests use stays out of the
// server's start-up (Deno fetches every package the import map names).
import { type Browser, chromium } from "npm:playwright-core@1.65.1";

/** Where Debian's `chromium` package puts the browser; `CHROMIUM_PATH` overrides it. */
export const CHROMIUM_PATH = Deno.env.get("CHROMIUM_PATH") || "/usr/bin/chromium";

/** Whether the browser tests run here. */
export type BrowserTestAvailability =
  | { run: true }
  | { run: false; notice: string };

/**
 * Browser tests run when Chromium is installed, and always under CI (`CI=true`), where a missing
 * browser fails the test instead of skipping it. Elsewhere they are skipped with a notice printed
 * once, so `deno task test` passes on a machine with nothing but Deno.
 */
export async function browserTestAvailability(): Promise<BrowserTestAvailability> {
  if (Deno.env.get("CI") === "true" || await isFile(CHROMIUM_PATH)) return { run: true };
  const notice = `browser tests SKIPPED: no Chromium at ${CHROMIUM_PATH}`;
  console.error(
    `\n!!! ${notice}\n!!! install it (apt-get install -y chromium) or set CHROMIUM_PATH;` +
      " under CI=true the tests run and fail without it\n",
  );
  return { run: false, notice };
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

/** Flags that keep a CI browser quiet: no sandbox (root in containers), GPU, or background traffic. */
const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
  "--disable-quic",
];

/** Launches headless Chromium; close it with `browser.close()` (or `await using`). */
export async function launchBrowser(): Promise<Browser & AsyncDisposable> {
  if (!await isFile(CHROMIUM_PATH)) {
    throw new Error(
      `${CHROMIUM_PATH} is missing: install it with \`apt-get install -y chromium\` (.ci/run does)`,
    );
  }
  const browser = await chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: 30_000,
  });
  return Object.assign(browser, { [Symbol.asyncDispose]: () => browser.close() });
}
