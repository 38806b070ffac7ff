/**
 * `GET /unfurl` through the real app against pages served by this test on loopback. The production
 * address policy refuses loopback, so the test policy allows exactly one port of 127.0.0.1 (the page
 * server) and applies the production rules to everything else. A spy on the unfurler's `fetch` and a
 * trap server prove that refused requests never leave the process.
 */
import assert from "node:assert/strict";
import { startAuthServer } from "../helpers/user_sync_client.ts";
import { api, tempBlobs } from "../helpers/content.ts";
import { TEST_ENGINE } from "../helpers/db.ts";
import { isNonPublicAddress, publicAddressesOnly } from "../../sync/unfurl/address_policy.ts";
import { extractMeta } from "../../sync/unfurl/html_meta.ts";

const engine = `[${TEST_ENGINE}]`;

const PAGE = `<!doctype html><html><head>
<title>Fallback title</title>
<meta property="og:title" content="A &amp; B — the page">
<meta name="description" content="Plain description">
<meta property="og:description" content="OG description">
<meta property="og:image" content="/images/card.png">
<link rel="icon" href="/static/favicon.svg">
</head><body>hello</body></html>`;

function serve(handler: (request: Request) => Response | Promise<Response>) {
  let hits = 0;
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, (request) => {
    hits++;
    return handler(request);
  });
  return {
    port: server.addr.port,
    hits: () => hits,
    close: () => server.shutdown(),
  };
}

Deno.test(`${engine} unfurl: metadata from a local page, cached; SSRF attempts never leave the process`, async () => {
  // Anything that reaches this server is a failure of the address checks.
  const trap = serve(() => new Response("secret"));
  const pages = serve(async (request) => {
    const url = new URL(request.url);
    switch (url.pathname) {
      case "/page":
        return new Response(PAGE, { headers: { "content-type": "text/html; charset=utf-8" } });
      case "/redirect-ok":
        return Response.redirect(new URL("/page", url), 302);
      case "/redirect-private":
        return new Response(null, {
          status: 302,
          headers: { location: `http://127.0.0.1:${trap.port}/admin` },
        });
      case "/redirect-metadata":
        return new Response(null, {
          status: 301,
          headers: { location: "http://169.254.169.254/latest/meta-data/" },
        });
      case "/redirect-loop":
        return new Response(null, { status: 302, headers: { location: "/redirect-loop" } });
      case "/slow":
        await new Promise((resolve) => setTimeout(resolve, 1_500));
        return new Response(PAGE, { headers: { "content-type": "text/html" } });
      case "/big": {
        // The metadata first, then far more than the cap.
        const filler = "<!-- " + "x".repeat(1024 * 1024) + " -->";
        return new Response(PAGE.replace("<body>", `<body>${filler}${filler}${filler}`), {
          headers: { "content-type": "text/html" },
        });
      }
      case "/data.json":
        return Response.json({ not: "html" });
      default:
        return new Response("nope", { status: 404 });
    }
  });
  const fetched: string[] = [];
  const spy: typeof fetch = (input, init) => {
    fetched.push(String(input instanceof Request ? input.url : input));
    return fetch(input, init);
  };
  const names: Record<string, string[]> = {
    localhost: ["127.0.0.1", "::1"],
    "evil.test": ["10.0.0.5"],
    "mixed.test": ["93.184.216.34", "127.0.0.1"],
    "v6.test": ["::1"],
  };
  await using blobs = await tempBlobs();
  await using server = await startAuthServer({
    content: {
      blobs: blobs.blobs,
      unfurl: {
        policy: (address, port) =>
          (address === "127.0.0.1" && port === pages.port) || publicAddressesOnly(address, port),
        resolve: (hostname) => Promise.resolve(names[hostname] ?? []),
        fetch: spy,
        timeoutMs: 700,
        maxBytes: 64 * 1024,
      },
    },
  });
  try {
    const base = `http://127.0.0.1:${pages.port}`;
    const unfurl = (url: string) => api(server, `/unfurl?url=${encodeURIComponent(url)}`);

    const page = await unfurl(`${base}/page`);
    assert.equal(page.status, 200);
    assert.deepEqual(page.body, {
      title: "A & B — the page",
      description: "OG description",
      image: `${base}/images/card.png`,
      favicon: `${base}/static/favicon.svg`,
    });
    // Cached in KV: the page is not fetched again.
    const hits = pages.hits();
    assert.deepEqual((await unfurl(`${base}/page`)).body, page.body);
    assert.equal(pages.hits(), hits);
    // A redirect that stays on allowed addresses is followed.
    assert.equal((await unfurl(`${base}/redirect-ok`)).body.title, "A & B — the page");
    // The size cap: the metadata is in the first bytes; the rest is never read.
    assert.equal((await unfurl(`${base}/big`)).body.title, "A & B — the page");

    const refused = async (url: string, reason: string) => {
      const before = fetched.length;
      const response = await unfurl(url);
      assert.equal(response.status, 400, url);
      assert.equal(response.body.error.details.reason, reason, url);
      assert.equal(fetched.length, before, `${url} reached fetch`);
    };
    await refused(`http://127.0.0.1:${trap.port}/`, "blocked_address");
    await refused("http://169.254.169.254/latest/meta-data/", "blocked_address");
    await refused(`http://[::1]:${trap.port}/`, "blocked_address");
    await refused(`http://[::ffff:127.0.0.1]:${trap.port}/`, "blocked_address");
    await refused(`http://localhost:${trap.port}/`, "blocked_address");
    await refused("http://10.1.2.3/", "blocked_address");
    await refused("http://evil.test/", "blocked_address");
    await refused("http://mixed.test/", "blocked_address");
    await refused("http://v6.test/", "blocked_address");
    await refused("http://0x7f000001/", "blocked_address");
    await refused("file:///etc/passwd", "invalid_url");
    await refused("ftp://example.com/", "invalid_url");
    await refused("javascript:alert(1)", "invalid_url");
    await refused(`http://user:pw@127.0.0.1:${pages.port}/page`, "invalid_url");
    await refused("not a url", "invalid_url");

    // Redirects to private addresses: the first hop is fetched, the target never is.
    for (const path of ["/redirect-private", "/redirect-metadata"]) {
      const before = fetched.length;
      const response = await unfurl(`${base}${path}`);
      assert.equal(response.status, 400);
      assert.equal(response.body.error.details.reason, "blocked_address");
      assert.deepEqual(fetched.slice(before), [`${base}${path}`]);
    }
    assert.equal(trap.hits(), 0);
    assert.ok(!fetched.some((url) => url.includes(String(trap.port)) || url.includes("169.254")));

    const failures: [string, string][] = [
      ["/redirect-loop", "too_many_redirects"],
      ["/slow", "timeout"],
      ["/missing", "http_error"],
      ["/data.json", "not_html"],
    ];
    for (const [path, reason] of failures) {
      const response = await unfurl(`${base}${path}`);
      assert.equal(response.status, 502, path);
      assert.equal(response.body.error.details.reason, reason, path);
    }
    assert.equal((await api(server, "/unfurl")).status, 400);
  } finally {
    await pages.close();
    await trap.close();
  }
});

Deno.test("unfurl: the address policy refuses every non-public range", () => {
  const blocked = [
    "127.0.0.1",
    "127.255.255.254",
    "0.0.0.0",
    "10.0.0.1",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "224.0.0.1",
    "255.255.255.255",
    "::",
    "::1",
    "fe80::1",
    "fc00::1",
    "fd12:3456::1",
    "ff02::1",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "::ffff:7f00:1",
    "64:ff9b::a9fe:a9fe",
    "2002:7f00:1::1",
    "not-an-ip",
  ];
  for (const address of blocked) assert.ok(isNonPublicAddress(address), address);
  const allowed = [
    "93.184.216.34",
    "8.8.8.8",
    "172.32.0.1",
    "2606:4700:4700::1111",
    "::ffff:8.8.8.8",
  ];
  for (const address of allowed) assert.ok(!isNonPublicAddress(address), address);
});

Deno.test("unfurl: meta extraction falls back to <title>, skips non-http URLs", () => {
  const meta = extractMeta(
    `<title> Just &lt;a&gt; title </title><meta name="twitter:image" content="javascript:alert(1)">
     <link rel="apple-touch-icon" href="https://cdn.example/icon.png">`,
    new URL("https://example.com/a/b"),
  );
  assert.deepEqual(meta, { title: "Just <a> title", favicon: "https://cdn.example/icon.png" });
  assert.deepEqual(extractMeta("", new URL("https://example.com/x")), {
    favicon: "https://example.com/favicon.ico",
  });
});

Deno.test(`${engine} unfurl and snapshots: per-caller rate limits answer 429 before any work`, async () => {
  const fetched: string[] = [];
  await using blobs = await tempBlobs();
  await using server = await startAuthServer({
    content: {
      blobs: blobs.blobs,
      rates: { unfurl: { limit: 2, windowMs: 60_000 }, snapshot: { limit: 1, windowMs: 60_000 } },
      unfurl: {
        fetch: (input) => {
          fetched.push(String(input));
          return Promise.resolve(
            new Response("<title>t</title>", {
              headers: { "content-type": "text/html" },
            }),
          );
        },
        resolve: () => Promise.resolve(["93.184.216.34"]),
      },
    },
  });
  const unfurl = (n: number, as?: string) =>
    api(server, `/unfurl?url=${encodeURIComponent(`https://example.com/${n}`)}`, {
      ...(as ? { as } : {}),
    });
  assert.equal((await unfurl(1)).status, 200);
  assert.equal((await unfurl(2)).status, 200);
  const limited = await unfurl(3);
  assert.equal(limited.status, 429);
  assert.equal(limited.body.error.code, "rate_limited");
  assert.equal(fetched.length, 2);
  // A signed-in user has a budget of their own.
  assert.equal((await unfurl(4, "alice")).status, 200);

  const snapshot = { snapshot: { schema: { schemaVersion: 2, sequences: {} }, records: [] } };
  assert.equal((await api(server, "/snapshots", { json: snapshot })).status, 201);
  assert.equal((await api(server, "/snapshots", { json: snapshot })).status, 429);
});
