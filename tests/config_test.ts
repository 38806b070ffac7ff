import assert from "node:assert/strict";
import { ConfigError, loadConfig } from "../config.ts";

Deno.test("defaults need no environment: local KV file and PGlite under .data", () => {
  const config = loadConfig({});
  assert.equal(config.http.port, 8000);
  assert.equal(config.kvPath, ".data/kv.sqlite3");
  assert.deepEqual(config.database, { kind: "pglite", dataDir: ".data/pg" });
  assert.equal(config.platform, "local");
  assert.equal(config.migrateOnStart, true);
  assert.equal(config.limits.maxSessionsPerRoom, 50);
  assert.equal(config.limits.maxRoomBytes, 25 * 1024 * 1024);
  assert.equal(config.auth.devIdentityProvider, false);
  assert.equal(loadConfig({}, { dev: true }).auth.devIdentityProvider, true);
});

Deno.test("values from the environment are parsed; empty strings count as unset", () => {
  const config = loadConfig({
    PORT: "9090",
    DATA_DIR: "/tmp/x",
    DATABASE_URL: "postgresql://u:p@db.internal:5433/app",
    LOG_LEVEL: "debug",
    MIGRATE_ON_START: "false",
    CORS_ORIGINS: "https://a.example, https://b.example",
    KV_PATH: "",
  });
  assert.equal(config.http.port, 9090);
  assert.equal(config.kvPath, "/tmp/x/kv.sqlite3");
  assert.deepEqual(config.database, {
    kind: "postgres",
    url: "postgresql://u:p@db.internal:5433/app",
    poolSize: 10,
  });
  assert.equal(config.logLevel, "debug");
  assert.equal(config.migrateOnStart, false);
  assert.deepEqual(config.http.corsOrigins, ["https://a.example", "https://b.example"]);
});

function configError(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (error) {
    assert.ok(error instanceof ConfigError);
    return error;
  }
  assert.fail("expected a ConfigError");
}

Deno.test("a bad PORT names the variable", () => {
  for (const port of ["abc", "-1", "70000", "80.5"]) {
    const error = configError({ PORT: port });
    assert.deepEqual(error.issues.map((i) => i.variable), ["PORT"]);
    assert.match(error.message, /PORT: /);
  }
});

Deno.test("a malformed DATABASE_URL names the variable and does not echo the secret", () => {
  for (const url of ["not a url", "mysql://root:hunter2@localhost/db", "postgres://"]) {
    const error = configError({ DATABASE_URL: url });
    assert.deepEqual(error.issues.map((i) => i.variable), ["DATABASE_URL"]);
    assert.match(error.message, /DATABASE_URL: expected a URL like postgres:\/\//);
    assert.doesNotMatch(error.message, /hunter2/);
  }
});

Deno.test("every bad variable is reported at once", () => {
  const error = configError({ PORT: "x", LOG_LEVEL: "loud", MIGRATE_ON_START: "maybe" });
  assert.deepEqual(error.issues.map((i) => i.variable).sort(), [
    "LOG_LEVEL",
    "MIGRATE_ON_START",
    "PORT",
  ]);
});

Deno.test("on Deno Deploy KV uses the platform default and DATABASE_URL is required", () => {
  const error = configError({ DENO_DEPLOYMENT_ID: "abc123" });
  assert.deepEqual(error.issues.map((i) => i.variable), ["DATABASE_URL"]);
  const config = loadConfig({ DENO_DEPLOYMENT_ID: "abc123", DATABASE_URL: "postgres://h/db" });
  assert.equal(config.platform, "deploy");
  assert.equal(config.kvPath, undefined);
});

Deno.test("WEB_DIR names the web app's build; unset, the checkout's web/dist is served", () => {
  assert.equal(loadConfig({ WEB_DIR: "/srv/page" }).webDir, "/srv/page");
  assert.equal(loadConfig({}).webDir, undefined);
});

Deno.test("KV operations in flight: 2 on a local file, 16 on Deno Deploy's remote KV, or as set", () => {
  assert.equal(loadConfig({}).rooms.kvCommitsInFlight, 2);
  assert.equal(loadConfig({}).rooms.kvRemote, false);
  const deploy = { DENO_DEPLOYMENT_ID: "abc123", DATABASE_URL: "postgres://h/db" };
  assert.equal(loadConfig(deploy).rooms.kvCommitsInFlight, 16);
  assert.equal(loadConfig(deploy).rooms.kvRemote, true);
  assert.equal(loadConfig({ KV_REMOTE: "true" }).rooms.kvCommitsInFlight, 16);
  assert.equal(loadConfig({ ...deploy, KV_REMOTE: "false" }).rooms.kvRemote, false);
  assert.equal(loadConfig({ ...deploy, KV_COMMITS_IN_FLIGHT: "16" }).rooms.kvCommitsInFlight, 16);
  assert.deepEqual(
    configError({ KV_COMMITS_IN_FLIGHT: "0" }).issues.map((i) => i.variable),
    ["KV_COMMITS_IN_FLIGHT"],
  );
});

Deno.test("KV commit linger: 2 ms on a local file and on a remote KV, or as set", () => {
  assert.equal(loadConfig({}).rooms.kvCommitLingerMs, 2);
  assert.equal(loadConfig({ KV_REMOTE: "true" }).rooms.kvCommitLingerMs, 2);
  assert.equal(
    loadConfig({ DENO_DEPLOYMENT_ID: "abc", DATABASE_URL: "postgres://h/db" }).rooms
      .kvCommitLingerMs,
    2,
  );
  assert.equal(loadConfig({ KV_COMMIT_LINGER_MS: "0" }).rooms.kvCommitLingerMs, 0);
  assert.equal(loadConfig({ KV_COMMIT_LINGER_MS: "5" }).rooms.kvCommitLingerMs, 5);
  assert.deepEqual(
    configError({ KV_COMMIT_LINGER_MS: "51" }).issues.map((i) => i.variable),
    ["KV_COMMIT_LINGER_MS"],
  );
});
