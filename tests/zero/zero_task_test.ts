/**
 * `deno task zero` refuses to start zero-cache where it cannot work, saying what to do: without
 * `DATABASE_URL` (PGlite cannot serve it) and against a Postgres without logical WAL. The
 * zero-cache it installs is the Zero version the server runs.
 */
import assert from "node:assert/strict";
import { EXIT_STARTUP_PROBLEM } from "../../config.ts";
import { openTestDatabase, TEST_DATABASE_URL } from "../helpers/db.ts";

const ROOT = new URL("../../", import.meta.url);

async function zeroTask(env: Record<string, string>) {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["task", "-q", "zero"],
    cwd: ROOT,
    env: { NO_COLOR: "1", DATABASE_URL: "", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: output.code,
    text: new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr),
  };
}

Deno.test("deno task zero without DATABASE_URL says that zero-cache needs a Postgres server", async () => {
  const { code, text } = await zeroTask({});
  assert.equal(code, EXIT_STARTUP_PROBLEM, text);
  assert.match(text, /zero-cache replicates a Postgres server: set DATABASE_URL/);
});

Deno.test({
  name: "deno task zero against a Postgres without logical WAL says how to turn it on",
  // The shared test server runs with the default wal_level (replica).
  ignore: TEST_DATABASE_URL === undefined,
  async fn() {
    await using database = await openTestDatabase({ migrated: false });
    const { code, text } = await zeroTask({ DATABASE_URL: database.url! });
    assert.equal(code, EXIT_STARTUP_PROBLEM, text);
    assert.match(text, /zero-cache needs logical replication, but wal_level is 'replica'/);
    assert.match(text, /ALTER SYSTEM SET wal_level = logical/);
  },
});

Deno.test("zero-cache's package is the Zero version the server and its clients use", async () => {
  const denoJson = JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT)));
  const packageJson = JSON.parse(
    await Deno.readTextFile(new URL("zero_cache/npm/package.json", ROOT)),
  );
  const server = String(denoJson.imports["@rocicorp/zero"]).replace("npm:@rocicorp/zero@", "");
  assert.equal(packageJson.dependencies["@rocicorp/zero"], server);
});
