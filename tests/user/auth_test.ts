import assert from "node:assert/strict";
import { generateKeyPair } from "jose";
import { testConfig } from "../../config.ts";
import { createLogger } from "../../log.ts";
import { startTestServer } from "../helpers/server.ts";
import { startAuthServer, TestIssuer } from "../helpers/user_sync_client.ts";

async function files(url: string, init: RequestInit = {}, query = "") {
  const response = await fetch(`${url}/app/files${query}`, init);
  return { status: response.status, body: await response.json() };
}

const bearer = (token: string) => ({ headers: { Authorization: `Bearer ${token}` } });

Deno.test("dev identity provider: issues tokens the verifier accepts and serves its JWKS", async () => {
  await using server = await startAuthServer();
  const token = await server.token("alice", { name: "Alice", email: "alice@example.com" });
  const ok = await files(server.url, bearer(token));
  assert.equal(ok.status, 200);
  assert.deepEqual(ok.body, { files: [] });
  const jwks = await (await fetch(`${server.url}/.well-known/jwks.json`)).json();
  assert.equal(jwks.keys.length, 1);
  assert.equal(jwks.keys[0].kty, "RSA");
  assert.equal(jwks.keys[0].d, undefined, "no private part");
  const bad = await fetch(`${server.url}/auth/dev/token`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ name: "no user id" }),
  });
  assert.equal(bad.status, 400);
  assert.equal((await bad.json()).error.code, "bad_request");
});

Deno.test("dev identity provider is off unless configured; then dev routes are 404 and no token verifies", async () => {
  await using server = await startTestServer();
  const response = await fetch(`${server.url}/auth/dev/token`, {
    method: "POST",
    body: JSON.stringify({ userId: "alice" }),
  });
  assert.equal(response.status, 404);
  await response.body?.cancel();
  const jwks = await fetch(`${server.url}/.well-known/jwks.json`);
  assert.equal(jwks.status, 404);
  await jwks.body?.cancel();
  const refused = await files(server.url, bearer("a.b.c"));
  assert.equal(refused.status, 401);
});

Deno.test("the dev key persists in KV: a token from one server verifies on another sharing the KV", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    let token: string;
    {
      await using first = await startAuthServer({ kv });
      token = await first.token("alice");
    }
    await using second = await startAuthServer({ kv });
    assert.equal((await files(second.url, bearer(token))).status, 200);
  } finally {
    kv.close();
  }
});

Deno.test("token sources: Authorization header, then token/accessToken query, then __session cookie", async () => {
  await using server = await startAuthServer();
  const token = await server.token("alice");
  assert.equal((await files(server.url, {}, `?token=${token}`)).status, 200);
  assert.equal((await files(server.url, {}, `?accessToken=${token}`)).status, 200);
  assert.equal(
    (await files(server.url, { headers: { Cookie: `__session=${token}` } })).status,
    200,
  );
  // The header wins: a bad header is not rescued by a good query token or cookie.
  const refused = await files(
    server.url,
    { headers: { Authorization: "Bearer nope", Cookie: `__session=${token}` } },
    `?token=${token}`,
  );
  assert.equal(refused.status, 401);
  assert.equal(refused.body.error.code, "unauthorized");
  const missing = await files(server.url);
  assert.equal(missing.status, 401);
  assert.equal(missing.body.error.code, "unauthorized");
  assert.ok(missing.body.requestId);
});

Deno.test("remote JWKS: tokens verify, a rotated key is fetched, expired / wrong signature / audience / issuer are refused", async () => {
  await using issuer = await TestIssuer.start();
  const lines: string[] = [];
  await using server = await startAuthServer({
    auth: {
      devIdentityProvider: false,
      jwksUrl: issuer.url,
      issuer: issuer.issuer,
      audience: issuer.audience,
    },
    userData: { auth: { remoteJwks: { cooldownMs: 0 } } },
    log: createLogger("debug", (line) => lines.push(line)),
  });
  const good = await issuer.sign("carol");
  assert.equal((await files(server.url, bearer(good))).status, 200);
  const fetchesBefore = issuer.fetches;
  // Cached: a second request does not fetch the JWKS again.
  assert.equal((await files(server.url, bearer(good))).status, 200);
  assert.equal(issuer.fetches, fetchesBefore);

  const expired = await issuer.sign("carol", { expiresInSeconds: -60 });
  assert.equal((await files(server.url, bearer(expired))).status, 401);
  const { privateKey: otherKey } = await generateKeyPair("RS256");
  const forged = await issuer.sign("carol", { key: otherKey });
  assert.equal((await files(server.url, bearer(forged))).status, 401);
  const wrongAudience = await issuer.sign("carol", { audience: "someone-else" });
  assert.equal((await files(server.url, bearer(wrongAudience))).status, 401);
  const wrongIssuer = await issuer.sign("carol", { issuer: "https://evil.test" });
  assert.equal((await files(server.url, bearer(wrongIssuer))).status, 401);

  await issuer.rotate();
  const rotated = await issuer.sign("carol");
  assert.equal((await files(server.url, bearer(rotated))).status, 200, "new key fetched");
  // The old key left the JWKS: its tokens stop working.
  assert.equal((await files(server.url, bearer(good))).status, 401);

  const logged = lines.join("\n");
  for (const token of [good, expired, forged, rotated]) {
    assert.ok(!logged.includes(token), "tokens are never logged");
  }
});

Deno.test("sockets: missing, invalid or expired tokens and forged user ids close with 4099 NOT_AUTHENTICATED", async () => {
  await using issuer = await TestIssuer.start();
  await using server = await startAuthServer({
    auth: { jwksUrl: issuer.url, issuer: issuer.issuer, audience: issuer.audience },
  });
  const cases = [
    { userId: "alice", token: null },
    { userId: "alice", token: "not-a-jwt" },
    { userId: "alice", token: await issuer.sign("alice", { expiresInSeconds: -60 }) },
    { userId: "alice", token: await issuer.sign("alice", { audience: "other" }) },
    { userId: "alice", token: await server.token("mallory"), pathUserId: "alice" },
    { userId: "alice", token: await issuer.sign("mallory"), pathUserId: "alice" },
  ];
  for (const { userId, token, pathUserId } of cases) {
    const client = await server.connect(userId, { token, ...(pathUserId ? { pathUserId } : {}) });
    const closed = await client.closed;
    assert.deepEqual(closed, { code: 4099, reason: "NOT_AUTHENTICATED" });
    assert.equal(client.messages.length, 0, "no data before the close");
  }
  // A remote (Clerk-style) token for the right user is accepted on the socket too.
  await using carol = await server.connect("carol", { token: await issuer.sign("carol") });
  const initial = await carol.initialData();
  assert.equal(initial.initialData.user.name, "Name of carol");
});

Deno.test("config defaults: the dev identity provider follows dev mode", () => {
  assert.equal(testConfig().auth.devIdentityProvider, false);
});
