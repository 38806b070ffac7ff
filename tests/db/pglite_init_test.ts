/**
 * A file-backed PGlite data directory: a new one is initialised (on a throw-away worker, to keep
 * initdb's WebAssembly memory out of the server) and then opened; an initialised one is opened
 * directly and keeps its data.
 */
import assert from "node:assert/strict";
import { needsInit, openPGlite } from "../../db/pglite.ts";

Deno.test("pglite: a new data dir is initialised, then reopened with its data", async () => {
  const dir = await Deno.makeTempDir({ prefix: "pglite-init-" });
  try {
    const dataDir = `${dir}/pg`;
    assert.equal(await needsInit(dataDir), true, "a missing dir needs initdb");

    const first = await openPGlite({ dataDir });
    await first.pglite.exec("CREATE TABLE notes (body text); INSERT INTO notes VALUES ('kept')");
    await first.close();
    assert.equal(await needsInit(dataDir), false, "the second open must not use the worker");

    const second = await openPGlite({ dataDir });
    try {
      const { rows } = await second.pglite.query<{ body: string }>("SELECT body FROM notes");
      assert.deepEqual(rows, [{ body: "kept" }]);
    } finally {
      await second.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("pglite: an in-memory database never needs the init worker", async () => {
  assert.equal(await needsInit("memory://"), false);
  const dir = await Deno.makeTempDir({ prefix: "pglite-init-" });
  try {
    assert.equal(await needsInit(dir), true, "an empty dir has no cluster yet");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("pglite: initdb failing in the worker is thrown with its message", async () => {
  const dir = await Deno.makeTempDir({ prefix: "pglite-init-" });
  try {
    // A file where initdb must create a directory.
    await Deno.writeTextFile(`${dir}/base`, "not a directory");
    await assert.rejects(
      () => openPGlite({ dataDir: dir }),
      (error: Error) => {
        assert.match(error.message, /^PGlite init failed in .+: \S/);
        assert.doesNotMatch(error.message, /\[object Object\]/);
        return true;
      },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
