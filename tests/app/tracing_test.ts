/**
 * OpenTelemetry through Deno's built-in exporter: a server process run with `OTEL_DENO=true` sends
 * its spans (OTLP over HTTP, JSON here) to a collector, with the room spans this server adds.
 */
import assert from "node:assert/strict";
import { openTestDatabase, TEST_DATABASE_URL } from "../helpers/db.ts";
import { connectRaw, geoShape } from "../helpers/raw_socket.ts";
import { startServerProcess } from "../helpers/server_process.ts";

interface OtlpSpan {
  name: string;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes?: { key: string; value: Record<string, unknown> }[];
}

/** An OTLP/HTTP JSON collector on a free port, keeping every span it receives. */
function startCollector() {
  const spans: OtlpSpan[] = [];
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, async (req) => {
    const body = await req.json().catch(() => ({}));
    if (new URL(req.url).pathname === "/v1/traces") {
      for (const resource of body.resourceSpans ?? []) {
        for (const scope of resource.scopeSpans ?? []) spans.push(...(scope.spans ?? []));
      }
    }
    return Response.json({});
  });
  return { url: `http://127.0.0.1:${server.addr.port}`, spans, close: () => server.shutdown() };
}

function attribute(span: OtlpSpan, key: string): unknown {
  const value = span.attributes?.find((a) => a.key === key)?.value;
  return value && Object.values(value)[0];
}

Deno.test("tracing: with OTEL_DENO=true the room load and the group commit are spans", async () => {
  const collector = startCollector();
  const dataDir = await Deno.makeTempDir({ prefix: "otel-" });
  // With DATABASE_URL set the process gets a database of its own (it would inherit the variable).
  await using database = TEST_DATABASE_URL
    ? await openTestDatabase({ migrated: false })
    : undefined;
  try {
    const server = await startServerProcess({
      DATA_DIR: dataDir,
      ...(database ? { DATABASE_URL: database.url! } : {}),
      BUS: "none",
      OTEL_DENO: "true",
      OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
      OTEL_EXPORTER_OTLP_ENDPOINT: collector.url,
      OTEL_DENO_CONSOLE: "ignore",
    });
    try {
      const { socket } = await connectRaw(`ws://127.0.0.1:${server.port}/r/traced-room`);
      socket.send({
        type: "push",
        clientClock: 1,
        diff: { "shape:t": ["put", geoShape("shape:t")] },
      });
      const result = await socket.waitForEvent((e) => e.type === "push_result");
      await socket.close();
      // A graceful stop flushes the exporter.
      await server.stop();
      const load = collector.spans.find((s) => s.name === "tldraw.room.load");
      assert.ok(load, `no room load span in ${collector.spans.map((s) => s.name)}`);
      assert.equal(attribute(load, "sync.room_id"), "traced-room");
      const commit = collector.spans.find((s) =>
        s.name === "tldraw.commit" && attribute(s, "sync.room_id") === "traced-room"
      );
      assert.ok(commit, "no commit span");
      assert.equal(attribute(commit, "tldraw.commit.result"), "ok");
      assert.equal(Number(attribute(commit, "tldraw.steps")), 1);
      assert.equal(Number(attribute(commit, "tldraw.clock")), result.serverClock);
      assert.ok(BigInt(commit.endTimeUnixNano) >= BigInt(commit.startTimeUnixNano));
      // Deno's own span of the upgrade request is there too.
      assert.ok(collector.spans.some((s) => s.name.startsWith("GET")), "no HTTP span");
    } finally {
      await server.stop();
    }
  } finally {
    await collector.close();
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }
});
