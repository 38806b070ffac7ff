/**
 * Runs the real LiveStore client (tests/livestore_client/client.mjs: `@livestore/livestore` +
 * `@livestore/adapter-node` + `@livestore/sync-cf` 0.4.0) as a Deno subprocess and scripts it over stdin/stdout.
 *
 * The client's npm packages live in tests/livestore_client/node_modules, installed by Deno on first
 * use from the committed deno.lock (every Effect peer is pinned explicitly in package.json: see
 * shared/specs/livestore-sync.md A.7). No npm or Node is needed.
 *
 * @module
 */

import { ensurePackagesInstalled } from "../../web/deno_install.ts";

/** Directory of the client script and its package.json. */
export const CLIENT_DIR = new URL("../livestore_client/", import.meta.url);
const CLIENT_DIR_PATH = decodeURIComponent(CLIENT_DIR.pathname);

/** Installs the client's packages unless they match package.json and deno.lock. */
export function ensureClientInstalled(): Promise<void> {
  return ensurePackagesInstalled(CLIENT_DIR_PATH, { timeoutMs: 180_000 });
}

/** A line the client prints. */
export type ClientLine =
  | { type: "ready" }
  | { type: "added"; n: number }
  | { type: "state" | "timeout"; count: number; ids: string[] }
  | { type: "shutdown"; cause: string }
  | { type: "error"; message: string }
  | { type: "bye"; clean: boolean };

/** How a client is started. */
export interface ClientOptions {
  /** `ws://…/livestore` or `http://…/livestore`. */
  syncUrl: string;
  storeId: string;
  clientId: string;
  authToken?: string;
  transport?: "ws" | "http";
  /** Persist the client's data here (fs storage) instead of in memory. */
  storageDir?: string;
  /** The client's `onSyncError`: `ignore` (default, it acts offline) or `shutdown`. */
  onSyncError?: "ignore" | "shutdown";
}

/** A running client process. Dispose it to stop it. */
export class LivestoreClient implements AsyncDisposable {
  readonly #child: Deno.ChildProcess;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #lines: ClientLine[] = [];
  readonly #waiters: (() => void)[] = [];
  readonly #stdoutDone: Promise<void>;
  readonly #stderrDone: Promise<void>;
  #stderr = "";
  #exited = false;

  private constructor(child: Deno.ChildProcess) {
    this.#child = child;
    this.#writer = child.stdin.getWriter();
    this.#stdoutDone = this.#readStdout();
    this.#stderrDone = (async () => {
      for await (const text of child.stderr.pipeThrough(new TextDecoderStream())) {
        // Keep the tail only: the client logs retries at length.
        this.#stderr = (this.#stderr + text).slice(-20_000);
      }
    })();
    child.status.then(() => {
      this.#exited = true;
      this.#notify();
    });
  }

  /** Starts a client and waits until its store booted. */
  static async start(options: ClientOptions): Promise<LivestoreClient> {
    await ensureClientInstalled();
    const env: Record<string, string> = {
      SYNC_URL: options.syncUrl,
      STORE_ID: options.storeId,
      CLIENT_ID: options.clientId,
      AUTH_TOKEN: options.authToken ?? "",
      TRANSPORT: options.transport ?? "ws",
      STORAGE_DIR: options.storageDir ?? "",
      ON_SYNC_ERROR: options.onSyncError ?? "ignore",
      NO_COLOR: "1",
    };
    const child = new Deno.Command(Deno.execPath(), {
      // --no-config: the client is a plain npm project, not part of this repo's deno.json/lock.
      args: ["run", "-A", "--no-config", "--node-modules-dir=manual", "client.mjs"],
      cwd: CLIENT_DIR_PATH,
      env,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const client = new LivestoreClient(child);
    try {
      await client.#next((line) => line.type === "ready", 30_000, "boot");
    } catch (error) {
      await client.close();
      throw error;
    }
    return client;
  }

  async #readStdout(): Promise<void> {
    let buffer = "";
    for await (const text of this.#child.stdout.pipeThrough(new TextDecoderStream())) {
      buffer += text;
      let newline: number;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, newline).trim();
        buffer = buffer.slice(newline + 1);
        if (!line.startsWith("{")) {
          // The client's own log lines: kept with stderr for failure messages.
          if (line) this.#stderr = (this.#stderr + line + "\n").slice(-20_000);
          continue;
        }
        try {
          this.#lines.push(JSON.parse(line) as ClientLine);
        } catch {
          // Not one of ours.
        }
        this.#notify();
      }
    }
  }

  #notify(): void {
    for (const waiter of this.#waiters.splice(0)) waiter();
  }

  /** Lines printed so far (including `shutdown`). */
  get lines(): readonly ClientLine[] {
    return this.#lines;
  }

  /** The last part of the client's stderr (for failure messages). */
  get stderr(): string {
    return this.#stderr;
  }

  /** Waits for (and consumes up to) the first line matching `match`. */
  async #next(
    match: (line: ClientLine) => boolean,
    timeoutMs: number,
    what: string,
  ): Promise<ClientLine> {
    const deadline = Date.now() + timeoutMs;
    let seen = 0;
    for (;;) {
      for (; seen < this.#lines.length; seen++) {
        const line = this.#lines[seen]!;
        if (match(line)) {
          this.#lines.splice(0, seen + 1);
          return line;
        }
      }
      if (this.#exited) {
        throw new Error(`client exited while waiting for ${what}\n${this.#stderr.slice(-3000)}`);
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        const lines = this.#lines.slice(-20).map((line) => JSON.stringify(line)).join("\n");
        throw new Error(
          `timed out waiting for ${what}\nlast lines:\n${lines}\nstderr:\n${
            this.#stderr.slice(-3000)
          }`,
        );
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        timer = setTimeout(resolve, left);
        this.#waiters.push(resolve);
      });
      clearTimeout(timer);
    }
  }

  async #command(command: Record<string, unknown>): Promise<void> {
    await this.#writer.write(new TextEncoder().encode(JSON.stringify(command) + "\n"));
  }

  /** Commits `n` `v1.TodoCreated` events with ids `<prefix>-000000`…. */
  async add(n: number, prefix: string): Promise<void> {
    await this.#command({ cmd: "add", n, prefix });
    await this.#next((line) => line.type === "added", 30_000, "add");
  }

  /** The ids of every todo the client's store holds. */
  async ids(): Promise<string[]> {
    await this.#command({ cmd: "state" });
    const line = await this.#next((l) => l.type === "state", 10_000, "state");
    return (line as { ids: string[] }).ids;
  }

  /** Waits until the store holds at least `count` todos; returns their ids (throws on timeout). */
  async waitForCount(count: number, timeoutMs = 20_000): Promise<string[]> {
    await this.#command({ cmd: "wait", count, timeoutMs });
    const line = await this.#next(
      (l) => l.type === "state" || l.type === "timeout",
      timeoutMs + 10_000,
      `${count} todos`,
    ) as { type: string; count: number; ids: string[] };
    if (line.type === "timeout") {
      throw new Error(
        `client has ${line.count} todos, expected ${count}\n${this.#stderr.slice(-3000)}`,
      );
    }
    return line.ids;
  }

  /** Waits for the store to shut itself down (a `shutdown` line) and returns its cause. */
  async waitForShutdown(timeoutMs: number): Promise<string> {
    const line = await this.#next((l) => l.type === "shutdown", timeoutMs, "shutdown");
    return line.type === "shutdown" ? line.cause : "";
  }

  #closing: Promise<boolean> | undefined;

  /**
   * Asks the client to shut its store down and exit; kills it if it does not within 12 s. Resolves to
   * whether the store shut down cleanly (fs persistence flushed). Safe to call twice.
   */
  close(): Promise<boolean> {
    return this.#closing ??= (async () => {
      if (!this.#exited) await this.#command({ cmd: "quit" }).catch(() => {});
      await this.#writer.close().catch(() => {});
      let timer: ReturnType<typeof setTimeout> | undefined;
      const exited = await Promise.race([
        this.#child.status.then(() => true),
        new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), 12_000))),
      ]);
      clearTimeout(timer);
      if (!exited) {
        try {
          this.#child.kill("SIGKILL");
        } catch {
          // Already gone.
        }
      }
      await this.#child.status;
      await this.#stdoutDone;
      await this.#stderrDone;
      const bye = this.#lines.find((line) => line.type === "bye") as
        | { clean?: boolean }
        | undefined;
      return bye?.clean === true;
    })();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
