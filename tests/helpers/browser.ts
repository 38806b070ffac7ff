/**
 * A headless Chromium for end-to-end tests: Debian's `/usr/bin/chromium` driven by `playwright-core`
 * (Playwright's own browser downloads are not used; `.ci/run` installs the Debian package).
 *
 * @module
 */
import { type Browser, chromium } from "playwright-core";

/** Where Debian's `chromium` package puts the browser. */
export const CHROMIUM_PATH = "/usr/bin/chromium";

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
  try {
    await Deno.stat(CHROMIUM_PATH);
  } catch {
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
