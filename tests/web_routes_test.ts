/**
 * `GET /` and `GET /assets/:name` (routes/web.ts) against a fake build directory: caching headers,
 * revalidation, the not-built page, and names that must not escape the directory.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Hono } from "hono";
import { silentLogger } from "../log.ts";
import { errorHandler } from "../routes/middleware/error_handler.ts";
import { webRoutes } from "../routes/web.ts";
import { clientConfig } from "../routes/client_config.ts";
import { loadConfig } from "../config.ts";

/** The routes behind the app's own error handler, as `createApp` mounts them. */
function webApp(dir: string): Hono {
  const app = new Hono();
  app.route("/", webRoutes({ dir }));
  app.onError(errorHandler(silentLogger));
  return app;
}

async function withBuild(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "web_routes_" });
  try {
    await Deno.mkdir(`${dir}/assets`);
    await Deno.writeTextFile(`${dir}/index.html`, "<!doctype html><title>app</title>");
    await Deno.writeTextFile(`${dir}/assets/main-ABC123.js`, "console.log(1)");
    await Deno.writeTextFile(`${dir}/secret.txt`, "not an asset");
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("web: index.html is revalidated on every load, with an ETag", async () => {
  await withBuild(async (dir) => {
    const app = webApp(dir);
    const first = await app.request("/");
    assert.equal(first.status, 200);
    assert.equal(first.headers.get("cache-control"), "no-cache");
    assert.match(first.headers.get("content-type") ?? "", /^text\/html/);
    assert.equal(await first.text(), "<!doctype html><title>app</title>");
    const etag = first.headers.get("etag");
    assert.ok(etag);
    const again = await app.request("/", { headers: { "if-none-match": etag } });
    assert.equal(again.status, 304);
    assert.equal(await again.text(), "");
  });
});

Deno.test("web: hashed assets are immutable for a year", async () => {
  await withBuild(async (dir) => {
    const response = await webApp(dir).request("/assets/main-ABC123.js");
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("cache-control"), "public, max-age=31536000, immutable");
    assert.match(response.headers.get("content-type") ?? "", /^text\/javascript/);
    assert.equal(await response.text(), "console.log(1)");
  });
});

Deno.test("web: missing and escaping asset names are not found", async () => {
  await withBuild(async (dir) => {
    const app = webApp(dir);
    for (const path of ["/assets/nope.js", "/assets/..%2Fsecret.txt", "/assets/.hidden"]) {
      const response = await app.request(path);
      assert.equal(response.status, 404, path);
      assert.equal((await response.json()).error.code, "not_found");
    }
  });
});

Deno.test("web: without a build, / says so and asks the browser to retry", async () => {
  const dir = await Deno.makeTempDir({ prefix: "web_routes_empty_" });
  try {
    const response = await webApp(dir).request("/");
    assert.equal(response.status, 503);
    assert.equal(response.headers.get("cache-control"), "no-store");
    assert.match(await response.text(), /deno task build/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("web: the site icon is served at /favicon.ico and /favicon.svg", async () => {
  await withBuild(async (dir) => {
    const app = webApp(dir);
    for (const path of ["/favicon.ico", "/favicon.svg"]) {
      const response = await app.request(path);
      assert.equal(response.status, 200, path);
      assert.equal(response.headers.get("content-type"), "image/svg+xml");
      assert.match(await response.text(), /^<svg /);
    }
  });
});

Deno.test("web: /app/config tells the page how people sign in", () => {
  assert.deepEqual(clientConfig(loadConfig({}, { dev: true })).auth, {
    devIdentityProvider: true,
    signInUrl: null,
    verifiesTokens: false,
  });
  assert.deepEqual(
    clientConfig(loadConfig({
      AUTH_JWKS_URL: "https://clerk.example.com/.well-known/jwks.json",
      AUTH_SIGN_IN_URL: "https://accounts.example.com/sign-in",
    })).auth,
    {
      devIdentityProvider: false,
      signInUrl: "https://accounts.example.com/sign-in",
      verifiesTokens: true,
    },
  );
});
