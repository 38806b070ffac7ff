/**
 * A private Postgres cluster with `wal_level=logical`, for tests that run zero-cache (the shared
 * server is not configured for logical replication). It uses the machine's Postgres binaries
 * (`/usr/lib/postgresql/<version>/bin`, Debian's layout); as root the server runs as the
 * `postgres` user (through `runuser`, looked up on PATH). Where that is not possible,
 * {@link logicalPostgresAvailability} says why.
 *
 * @module
 */
import postgres from "postgres";
import type { Database } from "../../db/database.ts";
import { migrate, readMigrations } from "../../db/migrate.ts";
import { openPostgres } from "../../db/postgres.ts";
import { freePort } from "./ports.ts";

/** A running cluster. */
export interface LogicalPostgres extends AsyncDisposable {
  /** `postgres://postgres@127.0.0.1:<port>/postgres` */
  url: string;
  /** A URL for `database` on the cluster. */
  urlOf(database: string): string;
  /** Creates `database` with this server's migrations applied, and opens it (close it after). */
  createDatabase(database: string): Promise<Database>;
  stop(): Promise<void>;
}

interface Tools {
  bin: string;
  /** Prefix to run a command as the `postgres` user (empty when not root). */
  asPostgres: string[];
}

async function findTools(): Promise<Tools | string> {
  let versions: string[] = [];
  try {
    for await (const entry of Deno.readDir("/usr/lib/postgresql")) versions.push(entry.name);
  } catch {
    return "no Postgres binaries under /usr/lib/postgresql";
  }
  versions = versions.filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a));
  if (versions.length === 0) return "no Postgres version under /usr/lib/postgresql";
  const bin = `/usr/lib/postgresql/${versions[0]}/bin`;
  if (Deno.uid() !== 0) return { bin, asPostgres: [] };
  // Postgres refuses to run as root.
  for (const dir of (Deno.env.get("PATH") ?? "").split(":").filter(Boolean)) {
    try {
      await Deno.stat(`${dir}/runuser`);
      return { bin, asPostgres: [`${dir}/runuser`, "-u", "postgres", "--"] };
    } catch {
      // Not in this directory.
    }
  }
  return "running as root, and no runuser on PATH to start Postgres as the postgres user";
}

/** Whether a cluster can be started here (and if not, why). */
export async function logicalPostgresAvailability(): Promise<
  { available: true } | { available: false; reason: string }
> {
  const tools = await findTools();
  return typeof tools === "string" ? { available: false, reason: tools } : { available: true };
}

async function run(command: string[], what: string): Promise<void> {
  const output = await new Deno.Command(command[0]!, {
    args: command.slice(1),
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!output.success) {
    throw new Error(
      `${what} failed:\n${new TextDecoder().decode(output.stdout)}${
        new TextDecoder().decode(output.stderr)
      }`,
    );
  }
}

/** Creates and starts a throw-away cluster (trust auth, loopback only, logical WAL). */
export async function startLogicalPostgres(): Promise<LogicalPostgres> {
  const tools = await findTools();
  if (typeof tools === "string") throw new Error(`cannot start Postgres here: ${tools}`);
  const dir = await Deno.makeTempDir({ prefix: "logical_pg_" });
  if (tools.asPostgres.length > 0) {
    await run(["chown", "-R", "postgres", dir], "chown");
    await Deno.chmod(dir, 0o700);
  }
  const data = `${dir}/data`;
  await run(
    [
      ...tools.asPostgres,
      `${tools.bin}/initdb`,
      "-D",
      data,
      "-U",
      "postgres",
      "--auth=trust",
      "-E",
      "UTF8",
    ],
    "initdb",
  );
  const port = freePort();
  const settings = [
    `-p ${port}`,
    "-c listen_addresses=127.0.0.1",
    `-c unix_socket_directories=${dir}`,
    "-c wal_level=logical",
    "-c max_wal_senders=10",
    "-c max_replication_slots=10",
    // A test database: durability is not what is tested. (Commits stay synchronous: with async
    // commits the WAL reaches logical replication only on the WAL writer's 200 ms beat.)
    "-c fsync=off",
  ].join(" ");
  await run(
    [
      ...tools.asPostgres,
      `${tools.bin}/pg_ctl`,
      "-D",
      data,
      "-o",
      settings,
      "-l",
      `${dir}/log`,
      "-w",
      "start",
    ],
    "pg_ctl start",
  );
  const base = `postgres://postgres@127.0.0.1:${port}`;
  let stopped: Promise<void> | undefined;
  const stop = () =>
    stopped ??= (async () => {
      await run(
        [...tools.asPostgres, `${tools.bin}/pg_ctl`, "-D", data, "-m", "immediate", "-w", "stop"],
        "pg_ctl stop",
      ).catch(() => {});
      await Deno.remove(dir, { recursive: true });
    })();
  return {
    url: `${base}/postgres`,
    urlOf: (database) => `${base}/${database}`,
    async createDatabase(name) {
      const admin = postgres(`${base}/postgres`, { max: 1, onnotice: () => {} });
      try {
        await admin.unsafe(`CREATE DATABASE "${name}"`);
      } finally {
        await admin.end();
      }
      const database = openPostgres({ url: `${base}/${name}`, poolSize: 5 });
      await migrate(database, await readMigrations());
      return database;
    },
    stop,
    [Symbol.asyncDispose]: stop,
  };
}
