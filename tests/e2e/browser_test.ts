/**
 * The web app in a real browser (Debian's Chromium via playwright-core) against the real server:
 * two pages draw in one room and see each other's shapes, a read-only page cannot edit, a page
 * survives a server restart, and a signed-in user manages a file. A screenshot is saved under
 * test-artifacts/.
 *
 * The app is built by the same command `deno task build` runs, into a temporary directory.
 *
 * @module
 */
import "../helpers/tldraw_settle.ts";
import { freePortPair } from "../helpers/ports.ts";
import assert from "node:assert/strict";
import type { Browser, Page } from "npm:playwright-core@1.65.1";
import { type Config, testConfig } from "../../config.ts";
import type { Database } from "../../db/database.ts";
import { silentLogger } from "../../log.ts";
import { createApp } from "../../routes/app.ts";
import { Lifecycle } from "../../routes/lifecycle.ts";
import { browserTestAvailability, launchBrowser } from "../helpers/browser.ts";
import { startZeroCache } from "../../zero_cache/run.ts";
import { logicalPostgresAvailability, startLogicalPostgres } from "../helpers/logical_postgres.ts";
import { eventually } from "../helpers/wait.ts";
import { openTestDatabase } from "../helpers/db.ts";

const ADMIN_TOKEN = "operator-token-for-the-browser-test";
const ARTIFACTS = new URL("../../test-artifacts/", import.meta.url);
/** Every browser-side wait is bounded by this. */
const WAIT_MS = 15_000;

async function buildApp(outDir: string): Promise<void> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", "web/deno.json", "web/build.ts", "--out", outDir],
    cwd: decodeURIComponent(new URL("../../", import.meta.url).pathname),
    stdout: "piped",
    stderr: "piped",
    // A fresh clone first installs web/node_modules with npm.
    signal: AbortSignal.timeout(180_000),
  }).output();
  if (!output.success) throw new Error(new TextDecoder().decode(output.stderr));
}

interface Server {
  url: string;
  close(): Promise<void>;
}

/**
 * The app as `startServer` builds it, on a fixed port with a KV file: what a restart needs. The
 * database stays open across restarts, like an external Postgres would.
 */
async function startServer(
  options: {
    port: number;
    kvPath: string;
    database: Database;
    webDir: string;
    config?: Partial<Config>;
    /** A loopback port the server may unfurl (the test's page; production refuses loopback). */
    unfurlPort?: number;
  },
): Promise<Server & { port: number }> {
  const config = { ...testConfig(), ...options.config };
  const kv = await Deno.openKv(options.kvPath);
  const lifecycle = new Lifecycle();
  const app = createApp({
    config: { ...config, auth: { ...config.auth, devIdentityProvider: true } },
    kv,
    database: options.database,
    log: silentLogger,
    lifecycle,
    web: { dir: options.webDir },
    ...(options.unfurlPort
      ? {
        content: {
          unfurl: {
            policy: (address: string, port: number) =>
              address === "127.0.0.1" && port === options.unfurlPort,
          },
        },
      }
      : {}),
  });
  let resolvePort: (port: number) => void;
  const listening = new Promise<number>((resolve) => (resolvePort = resolve));
  const server = Deno.serve(
    { port: options.port, hostname: "127.0.0.1", onListen: ({ port }) => resolvePort(port) },
    app.fetch,
  );
  const port = await listening;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    async close() {
      await lifecycle.drain();
      await server.shutdown();
      kv.close();
    },
  };
}

/** Waits until the page's board reports `status` (`online`, `offline`, …). */
async function waitForStatus(page: Page, status: string): Promise<void> {
  await page.locator(`[data-sync-status="${status}"]`).waitFor({ timeout: WAIT_MS });
}

/** Ids of the shapes on the page's current page, sorted. */
function shapeIds(page: Page): Promise<string[]> {
  return page.evaluate(() => {
    // deno-lint-ignore no-explicit-any
    const editor = (globalThis as any).editor;
    return editor.getCurrentPageShapes().map((shape: { id: string }) => shape.id).sort();
  });
}

/** Waits until the page shows exactly `ids`. */
async function waitForShapes(page: Page, ids: string[]): Promise<void> {
  const expected = [...ids].sort();
  await page.waitForFunction(
    (expected) => {
      // deno-lint-ignore no-explicit-any
      const editor = (globalThis as any).editor;
      const ids = editor?.getCurrentPageShapes().map((shape: { id: string }) => shape.id).sort();
      return JSON.stringify(ids) === JSON.stringify(expected);
    },
    expected,
    { timeout: WAIT_MS },
  );
}

/** Creates a rectangle through the editor API and returns its id. */
function createRectangle(page: Page, x: number, y: number): Promise<string> {
  return page.evaluate(([x, y]) => {
    // deno-lint-ignore no-explicit-any
    const editor = (globalThis as any).editor;
    const id = `shape:${crypto.randomUUID()}`;
    editor.createShape({ id, type: "geo", x, y, props: { w: 120, h: 80 } });
    return id;
  }, [x, y] as const);
}

/**
 * Puts an image (a PNG drawn in the page) on the board the way a drop does: through the editor's
 * external content, hence the asset store. Returns the image shape's id.
 */
async function dropImage(page: Page, name: string): Promise<string> {
  const before = new Set(await shapeIds(page));
  await page.evaluate(async (name) => {
    // Runs in the page; Deno's types have no DOM.
    // deno-lint-ignore no-explicit-any
    const g = globalThis as any;
    const canvas = g.document.createElement("canvas");
    canvas.width = 64;
    canvas.height = 48;
    const context = canvas.getContext("2d");
    context.fillStyle = "#3a7";
    context.fillRect(0, 0, 64, 48);
    const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
    const file = new g.File([blob], name, { type: "image/png" });
    await g.editor.putExternalContent({ type: "files", files: [file], point: { x: 500, y: 400 } });
  }, name);
  let added: string[] = [];
  await eventually(
    async () => {
      added = (await shapeIds(page)).filter((id) => !before.has(id));
      return added.length === 1;
    },
    WAIT_MS,
    "an image shape",
  );
  return added[0]!;
}

/** The `src` of the asset behind the image shape `shapeId` (empty until uploaded). */
function imageSource(page: Page, shapeId: string): Promise<string> {
  return page.evaluate((shapeId) => {
    // deno-lint-ignore no-explicit-any
    const editor = (globalThis as any).editor;
    const shape = editor.getShape(shapeId);
    return shape?.props.assetId ? editor.getAsset(shape.props.assetId)?.props.src ?? "" : "";
  }, shapeId);
}

/** Waits until the image shape's asset is the server's upload URL; returns it. */
async function uploadedSource(page: Page, shapeId: string, url: string): Promise<string> {
  await page.waitForFunction(
    ([shapeId, prefix]) => {
      // deno-lint-ignore no-explicit-any
      const editor = (globalThis as any).editor;
      const shape = editor?.getShape(shapeId);
      const src = shape?.props.assetId ? editor.getAsset(shape.props.assetId)?.props.src : "";
      return typeof src === "string" && src.startsWith(prefix);
    },
    [shapeId, `${url}/app/uploads/`] as const,
    { timeout: WAIT_MS },
  );
  return await imageSource(page, shapeId);
}

/**
 * Signed in with the dev identity provider: create a file and open it as it is (it keeps its name),
 * rename, share; a signed-out visitor of the share link is asked to sign in and lands on the file;
 * the guest's board shows the file's name and their list has it; duplicate, delete and restore;
 * deleting the shared file closes the guest's board.
 */
async function signedInFiles(browser: Browser, url: string, database: Database): Promise<void> {
  // Separate contexts: each has its own localStorage, hence its own session.
  const ownerContext = await browser.newContext();
  const guestContext = await browser.newContext();
  ownerContext.setDefaultTimeout(WAIT_MS);
  guestContext.setDefaultTimeout(WAIT_MS);
  try {
    const owner = await ownerContext.newPage();
    await signIn(owner, url, "carol");
    await owner.getByLabel("New file name").fill("Plan");
    await owner.getByRole("button", { name: "Create file" }).click();
    const item = owner.getByTestId("file-item");
    await item.getByRole("button", { name: "Plan" }).waitFor({ timeout: WAIT_MS });
    const fileId = await item.getAttribute("data-file-id");
    assert.ok(fileId);
    // The list shows only committed rows; no reject came either.
    assert.equal(await owner.locator(".error").count(), 0);

    // Opened as it is, nothing drawn: the board and, afterwards, the list keep the name.
    await item.getByRole("button", { name: "Plan" }).click();
    await waitForStatus(owner, "online");
    await owner.getByTestId("sync-status").getByText("Plan", { exact: true }).waitFor();
    await owner.waitForTimeout(1_500);
    await owner.goto(`${url}/#/`);
    await item.getByRole("button", { name: "Plan" }).waitFor({ timeout: WAIT_MS });

    owner.once("dialog", (dialog) => dialog.accept("Roadmap"));
    await item.getByRole("button", { name: "Rename" }).click();
    await item.getByRole("button", { name: "Roadmap" }).waitFor({ timeout: WAIT_MS });
    await item.getByLabel("Sharing").selectOption("edit");
    const shareLink = await item.locator("code").textContent({ timeout: WAIT_MS });
    assert.equal(shareLink, `${url}/#/file/${fileId}`);

    await item.getByRole("button", { name: "Roadmap" }).click();
    await waitForStatus(owner, "online");
    const shape = await createRectangle(owner, 100, 100);

    // The panel's read-only link: a stranger (not signed in) sees the board and cannot edit it.
    const readonlyLink = await owner.getByTestId("file-panel").getByTestId("file-readonly-link")
      .textContent();
    assert.match(readonlyLink ?? "", new RegExp(`^${url}/#/ro/[A-Za-z0-9_-]{22}$`));
    assert.ok(!readonlyLink!.includes(fileId!), "the read-only link reveals the file id");
    const strangerContext = await browser.newContext();
    strangerContext.setDefaultTimeout(WAIT_MS);
    const stranger = await strangerContext.newPage();
    await stranger.goto(readonlyLink!);
    await waitForStatus(stranger, "online");
    await waitForShapes(stranger, [shape]);
    assert.equal(
      // deno-lint-ignore no-explicit-any
      await stranger.evaluate(() => (globalThis as any).editor.getIsReadonly()),
      true,
    );
    await strangerContext.close();

    // A signed-out visitor of the link is told to sign in, then lands on the file.
    const guest = await guestContext.newPage();
    await guest.goto(shareLink);
    await guest.getByTestId("notice").getByText(/Sign in to open it/).waitFor();
    await guest.getByLabel("User id").fill("dave");
    await guest.getByRole("button", { name: "Sign in as" }).click();
    await waitForStatus(guest, "online");
    await waitForShapes(guest, [shape]);
    // The guest's board is titled with the file's name, and their list has the file.
    await guest.getByTestId("sync-status").getByText("Roadmap", { exact: true }).waitFor();
    await guest.goto(`${url}/#/`);
    const guestItem = guest.getByTestId("file-item");
    await guestItem.getByRole("button", { name: "Roadmap" }).waitFor();
    await guestItem.getByText(/shared with you/).waitFor();
    await guest.goto(shareLink);
    await waitForStatus(guest, "online");

    // Duplicate, delete the copy, restore it.
    await owner.goto(`${url}/#/`);
    await item.filter({ hasText: "Roadmap" }).getByRole("button", { name: "Duplicate" }).click();
    const copy = owner.getByTestId("file-item").filter({ hasText: "Roadmap (copy)" });
    await copy.waitFor();
    owner.once("dialog", (dialog) => dialog.accept());
    await copy.getByRole("button", { name: "Delete" }).click();
    await copy.waitFor({ state: "detached" });
    await owner.getByTestId("deleted-files").locator("summary").click();
    await owner.getByTestId("deleted-file").getByRole("button", { name: "Restore" }).click();
    await copy.waitFor();
    await copy.getByRole("button", { name: "Roadmap (copy)" }).click();
    await waitForStatus(owner, "online");
    await waitForShapes(owner, [shape]);
    // A file's board uploads with the signed-in user's token (the file's asset).
    const beforeImage = Date.now();
    const image = await dropImage(owner, "diagram.png");
    const source = await uploadedSource(owner, image, url);
    const objectName = source.split("/app/uploads/")[1]!;
    const assets = await database.db.selectFrom("asset").select(["fileId", "userId"])
      .where("objectName", "=", objectName).execute();
    assert.equal(assets.length, 1, objectName);
    assert.equal(assets[0]!.userId, "carol");
    assert.notEqual(assets[0]!.fileId, fileId, "the copy's asset belongs to the copy");
    // Committed: a second page of the owner's loads it from the server.
    const second = await ownerContext.newPage();
    await second.goto(owner.url());
    await waitForStatus(second, "online");
    await waitForShapes(second, [shape, image]);
    await second.close();

    // The board's panel: the owner publishes, and the published link shows the copy read-only.
    const panel = owner.getByTestId("file-panel");
    await panel.getByRole("button", { name: "Publish" }).click();
    const publishedLink = await panel.getByTestId("published-link").textContent();
    assert.match(publishedLink ?? "", new RegExp(`^${url}/#/p/[A-Za-z0-9_-]+$`));
    const reader = await guestContext.newPage();
    await reader.goto(publishedLink!);
    await reader.locator('[data-testid="published-page"][data-state="ready"]').waitFor();
    await eventually(
      async () => await reader.locator(".tl-shape").count() === 2,
      WAIT_MS,
      "2 shapes",
    );
    await reader.screenshot({
      path: decodeURIComponent(new URL("browser_published.png", ARTIFACTS).pathname),
    });
    await reader.close();

    // History: a version with the image is kept; the image is deleted; restoring brings it back.
    const history = panel.getByTestId("history");
    let withImage: string | undefined;
    await eventually(
      async () => {
        await history.getByRole("button", { name: "Refresh" }).click();
        await owner.waitForTimeout(200);
        for (const version of await history.getByTestId("history-version").all()) {
          const createdAt = Number(await version.getAttribute("data-created-at"));
          if (createdAt >= beforeImage) {
            withImage = await version.getAttribute("data-version-id") ?? "";
          }
        }
        return withImage !== undefined;
      },
      WAIT_MS,
      "a version with the image",
    );
    await owner.evaluate((id) => {
      // deno-lint-ignore no-explicit-any
      (globalThis as any).editor.deleteShapes([id]);
    }, image);
    await waitForShapes(owner, [shape]);
    const version = history.locator(`[data-version-id="${withImage}"]`);
    await version.getByRole("button").first().click();
    await history.getByTestId("version-preview").locator(".tl-shape").first().waitFor();
    await owner.screenshot({
      path: decodeURIComponent(new URL("browser_history.png", ARTIFACTS).pathname),
    });
    await history.getByRole("button", { name: "Restore this version" }).click();
    await waitForShapes(owner, [shape, image]);

    // The sidebar: rename the open file in place; a new file; delete it and undo.
    const sidebar = owner.getByTestId("file-sidebar");
    const current = sidebar.locator('[data-testid="sidebar-file"].current');
    await current.getByRole("button", { name: "Rename" }).click();
    await current.getByLabel("File name").fill("Roadmap v2");
    await current.getByLabel("File name").press("Enter");
    await owner.getByTestId("sync-status").getByText("Roadmap v2", { exact: true }).waitFor();
    await sidebar.getByRole("button", { name: "+ New file" }).click();
    await waitForStatus(owner, "online");
    await owner.getByTestId("sync-status").getByText("Untitled", { exact: true }).waitFor();
    await sidebar.getByRole("button", { name: "Roadmap v2" }).click();
    await owner.getByTestId("sync-status").getByText("Roadmap v2", { exact: true }).waitFor();
    await waitForStatus(owner, "online");
    const untitled = sidebar.getByTestId("sidebar-file").filter({ hasText: "Untitled" });
    await untitled.getByRole("button", { name: "Delete" }).click();
    await untitled.waitFor({ state: "detached" });
    await owner.getByTestId("undo-delete").getByRole("button", { name: "Undo" }).click();
    await untitled.waitFor();
    // Each file says when it was last edited; pinning the open one moves it to the pinned list,
    // in the database, so it stays pinned after a reload.
    assert.equal(await current.locator("time").textContent(), "just now");
    const pinnedId = await current.getAttribute("data-file-id");
    await current.getByRole("button", { name: "Pin", exact: true }).click();
    const pinned = sidebar.getByTestId("sidebar-pinned");
    await pinned.getByRole("button", { name: "Roadmap v2" }).waitFor();
    await owner.reload();
    await waitForStatus(owner, "online");
    await pinned.getByRole("button", { name: "Roadmap v2" }).waitFor();
    const pinnedRow = await database.db.selectFrom("file_state").select("isPinned")
      .where("userId", "=", "carol").where("fileId", "=", pinnedId!).executeTakeFirst();
    assert.equal(pinnedRow?.isPinned, true);
    await owner.screenshot({
      path: decodeURIComponent(new URL("browser_sidebar.png", ARTIFACTS).pathname),
    });

    await owner.goto(`${url}/#/`);
    const original = owner.getByTestId("file-item").filter({
      has: owner.getByRole("button", { name: "Roadmap", exact: true }),
    });
    owner.once("dialog", (dialog) => dialog.accept());
    await original.getByRole("button", { name: "Delete" }).click();
    await original.waitFor({ state: "detached", timeout: WAIT_MS });
    // The server closes a deleted file's room with NOT_FOUND; the board says it cannot connect.
    await guest.locator(".board-error").waitFor({ timeout: WAIT_MS });
    await Deno.mkdir(ARTIFACTS, { recursive: true });
    await owner.screenshot({
      path: decodeURIComponent(new URL("browser_files.png", ARTIFACTS).pathname),
    });
  } finally {
    await ownerContext.close();
    await guestContext.close();
  }
}

async function signIn(page: Page, url: string, userId: string): Promise<void> {
  await page.goto(url);
  await page.getByLabel("User id").fill(userId);
  await page.getByRole("button", { name: "Sign in as" }).click();
  await page.locator('[data-testid="file-list"][data-status="online"]').waitFor({
    timeout: WAIT_MS,
  });
}

const availability = await browserTestAvailability();

Deno.test({
  name: "browser: a shared room, read-only, reconnect after a restart, and signed-in files",
  ignore: !availability.run,
  async fn() {
    await using database = await openTestDatabase();
    const dataDir = await Deno.makeTempDir({ prefix: "browser_e2e_" });
    const webDir = `${dataDir}/web`;
    const kvPath = `${dataDir}/kv.sqlite3`;
    let server: Server | undefined;
    try {
      await buildApp(webDir);
      // A page on loopback for a bookmark (the server may unfurl this one port only).
      const pageServer = Deno.serve(
        { port: 0, hostname: "127.0.0.1", onListen: () => {} },
        (request) =>
          new URL(request.url).pathname === "/"
            ? new Response(
              `<html><head><title>A page for bookmarks</title>` +
                `<meta property="og:description" content="Served by the browser test"></head></html>`,
              { headers: { "content-type": "text/html" } },
            )
            : new Response(null, { status: 204 }),
      );
      await using _pageServer = { [Symbol.asyncDispose]: () => pageServer.shutdown() };
      const unfurlPort = pageServer.addr.port;
      // Versions every half second, so the history panel has some to show.
      const config = {
        content: { ...testConfig().content, historyIntervalMs: 500 },
        auth: { ...testConfig().auth, adminToken: ADMIN_TOKEN },
      };
      let current = await startServer({ port: 0, kvPath, database, webDir, unfurlPort, config });
      server = current;
      const { port } = current;

      // The page and its assets come with the intended caching headers.
      const index = await fetch(`${current.url}/`);
      const html = await index.text();
      assert.equal(index.headers.get("cache-control"), "no-cache");
      const script = html.match(/src="(\/assets\/main-[^"]+\.js)"/)?.[1];
      assert.ok(script, html);
      const asset = await fetch(`${current.url}${script}`);
      await asset.body?.cancel();
      assert.equal(asset.headers.get("cache-control"), "public, max-age=31536000, immutable");

      await using browser = await launchBrowser();
      const context = await browser.newContext({ viewport: { width: 1200, height: 800 } });
      context.setDefaultTimeout(WAIT_MS);
      // Offline from the internet: the editor's fonts, icons and translations must come from us.
      const external: string[] = [];
      await context.route(/^https?:\/\/(?!127\.0\.0\.1)/, (route) => {
        external.push(route.request().url());
        return route.abort();
      });
      // …and every one of our own requests must succeed (a wrong asset URL only shows as a 404).
      const failed: string[] = [];
      context.on("response", (response) => {
        if (response.status() >= 400) failed.push(`${response.status()} ${response.url()}`);
      });
      const alice = await context.newPage();
      const bob = await context.newPage();
      const watcher = await context.newPage();

      // Alice creates a room from the home page; Bob opens her share link.
      await alice.goto(current.url);
      await alice.getByTestId("create-room").click({ timeout: WAIT_MS });
      await waitForStatus(alice, "online");
      const shareLink = await alice.getByTestId("link-share").getAttribute("href") ?? "";
      const readonlyLink = await alice.getByTestId("link-read-only").getAttribute("href") ?? "";
      assert.match(shareLink, /\/#\/r\//);
      assert.match(readonlyLink, /\/#\/ro\//);
      // The read-only link carries the room's read-only id, never the room's own id.
      const roomId = shareLink.split("/#/r/")[1]!;
      assert.ok(!readonlyLink.includes(roomId), `${readonlyLink} reveals ${roomId}`);
      await bob.goto(shareLink);
      await waitForStatus(bob, "online");

      // Alice draws with the mouse (rectangle tool by its shortcut), Bob through the editor API.
      const canvas = alice.locator(".tl-canvas");
      await canvas.click({ position: { x: 600, y: 600 } });
      await alice.keyboard.press("r");
      await alice.mouse.move(200, 200);
      await alice.mouse.down();
      await alice.mouse.move(300, 260, { steps: 5 });
      await alice.mouse.up();
      const [drawn] = await shapeIds(alice);
      assert.ok(drawn, "Alice's drag drew no shape");
      const created = await createRectangle(bob, 400, 150);
      await waitForShapes(alice, [drawn, created]);
      await waitForShapes(bob, [drawn, created]);

      // The read-only page sees the room but its edits go nowhere, and offers no edit link.
      await watcher.goto(readonlyLink);
      await waitForStatus(watcher, "online");
      assert.equal(await watcher.getByTestId("link-share").count(), 0);
      assert.equal(
        await watcher.getByTestId("link-read-only").getAttribute("href"),
        readonlyLink,
      );
      await waitForShapes(watcher, [drawn, created]);
      // deno-lint-ignore no-explicit-any
      assert.ok(await watcher.evaluate(() => (globalThis as any).editor.getIsReadonly()));
      await watcher.evaluate(() => {
        // deno-lint-ignore no-explicit-any
        const editor = (globalThis as any).editor;
        try {
          editor.createShape({ id: "shape:from-watcher", type: "geo", x: 0, y: 0 });
        } catch {
          // Refusing locally is fine too.
        }
      });
      const marker = await createRectangle(alice, 600, 150);
      // Once Alice's later shape has reached Bob, the watcher's (had it been sent) would have too.
      await waitForShapes(bob, [drawn, created, marker]);
      assert.ok(!(await shapeIds(bob)).includes("shape:from-watcher"));

      // A restart: the page goes offline, reconnects to the new server, and keeps syncing.
      await current.close();
      server = undefined;
      await waitForStatus(alice, "offline");
      current = await startServer({ port, kvPath, database, webDir, unfurlPort, config });
      server = current;
      await waitForStatus(alice, "online");
      await waitForStatus(bob, "online");
      const afterRestart = await createRectangle(alice, 200, 350);
      await waitForShapes(bob, [drawn, created, marker, afterRestart]);
      await waitForShapes(alice, [drawn, created, marker, afterRestart]);

      // An image dropped on the board is uploaded: the document holds the server's URL, not the
      // bytes, also after a reload, and the image loads from there.
      const image = await dropImage(alice, "photo.png");
      const source = await uploadedSource(alice, image, current.url);
      await waitForShapes(bob, [drawn, created, marker, afterRestart, image]);
      await bob.reload();
      await waitForStatus(bob, "online");
      assert.equal(await uploadedSource(bob, image, current.url), source);
      const inline = await bob.evaluate(() =>
        // deno-lint-ignore no-explicit-any
        (globalThis as any).editor.getAssets().filter((asset: any) =>
          String(asset.props.src ?? "").startsWith("data:")
        ).length
      );
      assert.equal(inline, 0, "an asset is stored inline");
      const shown = bob.locator(`img[src^="${source}"]`).first();
      await shown.waitFor({ timeout: WAIT_MS });
      // Fetched at the width it is drawn at (the server resizes wider PNGs and JPEGs).
      assert.match(await shown.getAttribute("src") ?? "", /\?w=\d+$/);
      const uploaded = await fetch(source);
      assert.equal(uploaded.status, 200);
      assert.equal(uploaded.headers.get("content-type"), "image/png");
      await uploaded.body?.cancel();

      // A pasted link becomes a bookmark described by the server's unfurl.
      const pageUrl = `http://127.0.0.1:${unfurlPort}/`;
      await alice.evaluate((url) => {
        // deno-lint-ignore no-explicit-any
        const editor = (globalThis as any).editor;
        return editor.putExternalContent({ type: "url", url, point: { x: 700, y: 300 } });
      }, pageUrl);
      await bob.waitForFunction(
        (url) => {
          // deno-lint-ignore no-explicit-any
          const editor = (globalThis as any).editor;
          return editor?.getAssets().some((
            asset: { type: string; props: Record<string, string> },
          ) =>
            asset.type === "bookmark" && asset.props.src === url &&
            asset.props.title === "A page for bookmarks" &&
            asset.props.description === "Served by the browser test"
          );
        },
        pageUrl,
        { timeout: WAIT_MS },
      );
      await alice.getByText("A page for bookmarks").first().waitFor({ timeout: WAIT_MS });

      await Deno.mkdir(ARTIFACTS, { recursive: true });
      await alice.screenshot({
        path: decodeURIComponent(new URL("browser_e2e.png", ARTIFACTS).pathname),
      });

      // The operator page: asked for the admin token, it lists the room with its three sessions
      // and charts the pushes (more arrive while it is open).
      const operator = await context.newPage();
      await operator.goto(`${current.url}/admin`);
      await operator.getByLabel("Admin token").fill(ADMIN_TOKEN);
      await operator.getByRole("button", { name: "Open" }).click();
      const adminRoom = operator.locator(`[data-testid="admin-room"][data-room-id="${roomId}"]`);
      await eventually(
        async () => await adminRoom.getByTestId("admin-session").count() === 3,
        WAIT_MS,
        "the room's three sessions on the operator page",
      );
      for (let i = 0; i < 3; i++) {
        await createRectangle(bob, 100 + i * 50, 500);
        await operator.waitForTimeout(2_100);
      }
      await operator.locator("polyline").first().waitFor();
      assert.equal(await operator.getByTestId("admin-isolate").count(), 1);
      await operator.screenshot({
        path: decodeURIComponent(new URL("browser_admin.png", ARTIFACTS).pathname),
        fullPage: true,
      });
      await operator.close();
      assert.deepEqual(external, [], "the page fetched from outside this server");
      assert.deepEqual(failed, [], "requests failed");
      // The icons are drawn from our sprite (an icon without it renders as an empty box).
      const mask = await alice.locator(".tlui-toolbar .tlui-icon").first().evaluate((element) => {
        // Runs in the page; Deno's types have no DOM.
        // deno-lint-ignore no-explicit-any
        const style = (globalThis as any).getComputedStyle(element);
        return String(style.maskImage || style.webkitMaskImage);
      });
      assert.match(mask, /\/assets\/0_merged-[A-Z0-9]+\.svg#/);
      await context.close();

      await signedInFiles(browser, current.url, database);
    } finally {
      await server?.close();
      await Deno.remove(dataDir, { recursive: true });
    }
  },
});

const zeroAvailability = await logicalPostgresAvailability();

Deno.test({
  name: "browser, Zero mode: the signed-in file list syncs through zero-cache",
  ignore: !availability.run ||
    (!zeroAvailability.available && Deno.env.get("CI") !== "true"),
  async fn() {
    await using pg = await startLogicalPostgres();
    const database = await pg.createDatabase("app");
    const dataDir = await Deno.makeTempDir({ prefix: "browser_zero_" });
    const webDir = `${dataDir}/web`;
    let server: Server | undefined;
    try {
      await buildApp(webDir);
      const zeroPort = freePortPair();
      const zeroUrl = `http://127.0.0.1:${zeroPort}`;
      server = await startServer({
        port: 0,
        kvPath: `${dataDir}/kv.sqlite3`,
        database,
        webDir,
        config: { zeroCacheUrl: zeroUrl },
      });
      await using _cache = await startZeroCache({
        upstreamDb: pg.urlOf("app"),
        replicaFile: `${dataDir}/replica.db`,
        serverUrl: server.url,
        port: zeroPort,
        output: "piped",
      });
      await using browser = await launchBrowser();
      const ownerContext = await browser.newContext();
      const guestContext = await browser.newContext();
      ownerContext.setDefaultTimeout(WAIT_MS);
      guestContext.setDefaultTimeout(WAIT_MS);
      try {
        const owner = await ownerContext.newPage();
        await signIn(owner, server.url, "erin");
        await owner.getByRole("heading", { name: /through Zero/ }).waitFor();
        await owner.getByLabel("New file name").fill("Zero plan");
        await owner.getByRole("button", { name: "Create file" }).click();
        const item = owner.getByTestId("file-item");
        await item.getByRole("button", { name: "Zero plan" }).waitFor();
        const fileId = await item.getAttribute("data-file-id");
        assert.ok(fileId);
        owner.once("dialog", (dialog) => dialog.accept("Zero roadmap"));
        await item.getByRole("button", { name: "Rename" }).click();
        await item.getByRole("button", { name: "Zero roadmap" }).waitFor();
        // The rename went through zero-cache to Postgres.
        await eventually(
          async () =>
            (await database.db.selectFrom("file").select("name").where("id", "=", fileId)
              .executeTakeFirst())?.name === "Zero roadmap",
          WAIT_MS,
          "the rename in Postgres",
        );
        await item.getByLabel("Sharing").selectOption("edit");
        const shareLink = await item.locator("code").textContent();
        assert.equal(shareLink, `${server.url}/#/file/${fileId}`);

        // A guest opens the link: the board works, and the file is in the guest's Zero list.
        const guest = await guestContext.newPage();
        await signIn(guest, server.url, "frank");
        await guest.goto(shareLink!);
        await waitForStatus(guest, "online");
        // The join recorded the visit in Postgres (then zero-cache brings it to the guest's list).
        await eventually(
          async () =>
            (await database.db.selectFrom("file_state").select("fileId")
              .where("userId", "=", "frank").where("fileId", "=", fileId).executeTakeFirst()) !==
              undefined,
          WAIT_MS,
          "the guest's visit in Postgres",
        );
        // The guest pins it in the board's sidebar: through zero-cache to Postgres.
        const guestSidebar = guest.getByTestId("file-sidebar");
        await guestSidebar.getByTestId("sidebar-shared")
          .getByRole("button", { name: "Zero roadmap" }).waitFor();
        await guestSidebar.getByRole("button", { name: "Pin", exact: true }).click();
        await guestSidebar.getByTestId("sidebar-pinned")
          .getByRole("button", { name: "Zero roadmap" }).waitFor();
        await eventually(
          async () =>
            (await database.db.selectFrom("file_state").select("isPinned")
              .where("userId", "=", "frank").where("fileId", "=", fileId).executeTakeFirst())
              ?.isPinned === true,
          WAIT_MS,
          "the pin in Postgres",
        );
        await guest.goto(`${server.url}/#/`);
        await guest.getByTestId("file-item").getByText(/shared with you/).waitFor();
        await Deno.mkdir(ARTIFACTS, { recursive: true });
        await guest.screenshot({
          path: decodeURIComponent(new URL("browser_zero_guest.png", ARTIFACTS).pathname),
        });

        // The owner deletes it: it leaves both lists.
        owner.once("dialog", (dialog) => dialog.accept());
        await item.getByRole("button", { name: "Delete" }).click();
        await item.waitFor({ state: "detached" });
        await guest.getByTestId("file-item").waitFor({ state: "detached" });
        assert.equal(await owner.locator(".error").count(), 0);
      } finally {
        await ownerContext.close();
        await guestContext.close();
      }
    } finally {
      await server?.close();
      await database.close();
      await Deno.remove(dataDir, { recursive: true });
    }
  },
});
