// A real LiveStore client (in-memory or fs-persisted adapter-node store, @livestore/sync-cf WebSocket or HTTP
// sync), driven over stdin/stdout with one JSON object per line so that tests can script it.
//
// Environment: SYNC_URL, STORE_ID, CLIENT_ID, AUTH_TOKEN (sent as the sync payload `{authToken}`),
// TRANSPORT (`ws`, default, or `http`), STORAGE_DIR (fs persistence; in-memory when unset).
//
// Commands in:  {"cmd":"add","n":3,"prefix":"a"}  {"cmd":"state"}  {"cmd":"wait","count":6,"timeoutMs":20000}
//               {"cmd":"quit"}
// Lines out:    {"type":"ready"}  {"type":"added","n":3}  {"type":"state","count":6,"ids":[...]}
//               {"type":"timeout","count":4}  {"type":"error","message":"..."}  {"type":"shutdown","cause":"..."}
import process from "node:process";
import readline from "node:readline";

// Packages come from this directory's node_modules (package.json here, installed with npm). They are
// imported by computed specifiers so that the repo's `deno check .` does not try to resolve them.
const load = (specifier) => import(specifier);
const { makeAdapter } = await load("@livestore/adapter-node");
const {
  createStorePromise,
  Events,
  makeSchema,
  makeShutdownDeferred,
  queryDb,
  Schema,
  State,
} = await load("@livestore/livestore");
const { Deferred, Effect } = await load("effect");
const { makeHttpSync, makeWsSync } = await load("@livestore/sync-cf/client");

const env = (name, fallback) => process.env[name] ?? fallback;
const syncUrl = env("SYNC_URL");
const storeId = env("STORE_ID", "store-1");
const clientId = env("CLIENT_ID", "client-a");
const authToken = env("AUTH_TOKEN", "");
const transport = env("TRANSPORT", "ws");
const storageDir = env("STORAGE_DIR", "");

const out = (message) => process.stdout.write(JSON.stringify(message) + "\n");

const todos = State.SQLite.table({
  name: "todos",
  columns: {
    id: State.SQLite.text({ primaryKey: true }),
    text: State.SQLite.text({ default: "" }),
  },
});
const events = {
  todoCreated: Events.synced({
    name: "v1.TodoCreated",
    schema: Schema.Struct({ id: Schema.String, text: Schema.String }),
  }),
};
const materializers = State.SQLite.materializers(events, {
  "v1.TodoCreated": ({ id, text }) => todos.insert({ id, text }).onConflict("id", "ignore"),
});
const schema = makeSchema({
  events,
  state: State.SQLite.makeState({ tables: { todos }, materializers }),
});

const backend = transport === "http"
  ? makeHttpSync({ url: syncUrl, livePull: { pollInterval: 250 } })
  : makeWsSync({ url: syncUrl });
const adapter = makeAdapter({
  storage: storageDir ? { type: "fs", baseDirectory: storageDir } : { type: "in-memory" },
  clientId,
  sessionId: `${clientId}-session`,
  sync: { backend, onSyncError: env("ON_SYNC_ERROR", "ignore") },
});

let shuttingDown = false;
// The store shuts itself down on a backend reset (BackendIdMismatch): tests look for this line.
const shutdownDeferred = Effect.runSync(makeShutdownDeferred);
Effect.runPromise(Deferred.await(shutdownDeferred)).then(
  (cause) =>
    !shuttingDown &&
    out({ type: "shutdown", cause: String(cause?.reason ?? cause?._tag ?? cause) }),
  (cause) =>
    !shuttingDown &&
    out({ type: "shutdown", cause: String(cause?.reason ?? cause?._tag ?? cause) }),
);
const store = await createStorePromise({
  adapter,
  schema,
  storeId,
  syncPayload: { authToken },
  shutdownDeferred,
});
const allTodos = queryDb(todos.select("id").orderBy("id", "asc"));
const state = () => {
  const ids = store.query(allTodos).map((row) => (typeof row === "string" ? row : row.id));
  return { type: "state", count: ids.length, ids };
};
out({ type: "ready" });

const wait = async (count, timeoutMs) => {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const current = state();
    if (current.count >= count) return current;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return { ...state(), type: "timeout" };
};

const lines = readline.createInterface({ input: process.stdin });
for await (const line of lines) {
  if (line.trim() === "") continue;
  try {
    const command = JSON.parse(line);
    if (command.cmd === "add") {
      const batch = [];
      for (let i = 0; i < command.n; i++) {
        const id = `${command.prefix}-${String(i).padStart(6, "0")}`;
        batch.push(events.todoCreated({ id, text: `${clientId} ${i}` }));
      }
      // Commit in slices so that a big add does not build one huge transaction.
      for (let i = 0; i < batch.length; i += 500) store.commit(...batch.slice(i, i + 500));
      out({ type: "added", n: command.n });
    } else if (command.cmd === "state") {
      out(state());
    } else if (command.cmd === "wait") {
      out(await wait(command.count, command.timeoutMs ?? 20_000));
    } else if (command.cmd === "quit") {
      break;
    } else {
      out({ type: "error", message: `unknown command ${command.cmd}` });
    }
  } catch (error) {
    out({ type: "error", message: String(error?.stack ?? error) });
  }
}
shuttingDown = true;
// A clean shutdown flushes fs persistence; tests wait for `bye` with `clean: true` before reusing the dir.
const clean = await Promise.race([
  store.shutdownPromise().then(() => true, () => false),
  new Promise((resolve) => setTimeout(() => resolve(false), 8_000)),
]);
out({ type: "bye", clean });
process.exit(0);
