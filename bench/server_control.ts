/**
 * The side door of a benchmark server process: a tiny HTTP listener on its own free port that can run
 * a full GC (the process is started with `--v8-flags=--expose-gc`) so memory readings compare like
 * with like (RSS rarely shrinks after a GC, so the V8 heap in use is reported too), and the line a
 * server process prints on stdout once it is ready.
 *
 * @module
 */

/** What a server process announces (one JSON line on stdout) once it accepts connections. */
export interface ServerAnnouncement {
  /** The port of the WebSocket routes (`/r/:roomId`). */
  port: number;
  /** The port of the control listener (`POST /gc`). */
  controlPort: number;
}

/** Starts the control listener (`POST /gc` answers `Deno.memoryUsage()` after the GC); returns its port. */
export async function serveControl(): Promise<number> {
  const gc = (globalThis as { gc?: () => void }).gc;
  const { promise, resolve } = Promise.withResolvers<number>();
  Deno.serve({
    port: 0,
    hostname: "127.0.0.1",
    onListen: ({ port }) => resolve(port),
  }, (request) => {
    if (new URL(request.url).pathname !== "/gc") return new Response("not found", { status: 404 });
    if (!gc) return new Response("start with --v8-flags=--expose-gc", { status: 501 });
    // Twice: the first pass can leave garbage that finalizers released for the second.
    gc();
    gc();
    return Response.json(Deno.memoryUsage());
  });
  return await promise;
}

/** Prints the announcement the benchmark waits for. */
export function announce(announcement: ServerAnnouncement): void {
  console.log(JSON.stringify({ ready: announcement }));
}
