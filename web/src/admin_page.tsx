/**
 * The operator page (`/admin` → `#/admin`): this isolate's health, its rooms with their clients and
 * clocks (closing a session is one click), and push rate and latency over the last minutes, charted
 * from the cumulative `/admin/stats` polled every two seconds. Credentials: the admin token (kept
 * for this tab only) or a signed-in admin user's token.
 *
 * @module
 */
import { useEffect, useState } from "react";
import type { Session } from "./auth.ts";

const POLL_MS = 2_000;
/** Five minutes of samples. */
const KEEP_SAMPLES = 150;
const TOKEN_KEY = "deno-sync.admin-token";

interface Health {
  isolate: string;
  bus: string;
  kv: { ok: boolean; error?: string };
  db: { ok: boolean; error?: string };
  openSockets: number;
  roomsLoaded: number;
}

interface Stats {
  at: number;
  sessions: number;
  pushes: { count: number; sum: number; bounds: number[]; buckets: number[] };
}

interface RoomRow {
  roomId: string;
  clock: number;
  sessions: { sessionId: string; state: string; isReadonly: boolean }[];
}

/** One point of the charts: over the poll interval that ended at `at`. */
interface Sample {
  at: number;
  pushesPerSecond: number;
  /** Mean and 90th percentile of push → result (ms), or null without pushes. */
  meanMs: number | null;
  p90Ms: number | null;
}

type Load =
  | { kind: "signed_out" }
  | { kind: "refused"; status: number }
  | { kind: "ok"; health: Health; rooms: RoomRow[] };

/** The page. */
export function AdminPage({ session }: { session: Session | undefined }) {
  const [token, setToken] = useState(() => sessionStorage.getItem(TOKEN_KEY) ?? session?.token);
  const [load, setLoad] = useState<Load>({ kind: "signed_out" });
  const [samples, setSamples] = useState<Sample[]>([]);

  useEffect(() => {
    if (!token) return setLoad({ kind: "signed_out" });
    let stopped = false;
    let last: Stats | undefined;
    const headers = { authorization: `Bearer ${token}` };
    const poll = async () => {
      const [health, rooms, stats] = await Promise.all(
        ["/admin/health", "/admin/rooms", "/admin/stats"].map((path) => fetch(path, { headers })),
      );
      if (stopped) return;
      const refused = [health!, rooms!, stats!].find((response) => !response.ok);
      if (refused) return setLoad({ kind: "refused", status: refused.status });
      const now = await stats!.json() as Stats;
      setLoad({
        kind: "ok",
        health: await health!.json(),
        rooms: (await rooms!.json()).rooms,
      });
      if (last) {
        const sample = sampleBetween(last, now);
        setSamples((previous) => [...previous, sample].slice(-KEEP_SAMPLES));
      }
      last = now;
    };
    void poll().catch(() => {});
    const timer = setInterval(() => void poll().catch(() => {}), POLL_MS);
    return () => {
      stopped = true;
      clearInterval(timer);
    };
  }, [token]);

  const closeSession = async (roomId: string, sessionId: string) => {
    await fetch(`/admin/rooms/${encodeURIComponent(roomId)}/close`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ sessionId }),
    });
  };

  return (
    <main className="admin" data-testid="admin-page" data-state={load.kind}>
      <h1>
        <a href="#/">←</a> Operator
      </h1>
      {load.kind !== "ok" && (
        <TokenForm
          refused={load.kind === "refused" ? load.status : undefined}
          onToken={(value) => {
            sessionStorage.setItem(TOKEN_KEY, value);
            setToken(value);
          }}
        />
      )}
      {load.kind === "ok" && (
        <>
          <section className="card">
            <h2>Isolate {load.health.isolate}</h2>
            <p>
              KV <Status ok={load.health.kv.ok} error={load.health.kv.error} /> · database{" "}
              <Status ok={load.health.db.ok} error={load.health.db.error} /> · bus {load.health.bus}
              {" "}
              · {load.health.openSockets} open sockets · {load.health.roomsLoaded} rooms loaded
            </p>
          </section>
          <section className="card charts">
            <Chart
              title="pushes / s"
              samples={samples}
              series={[{ value: (s) => s.pushesPerSecond, color: "#2563eb" }]}
            />
            <Chart
              title="push → result, ms (mean, p90)"
              samples={samples}
              series={[
                { value: (s) => s.meanMs, color: "#16a34a" },
                { value: (s) => s.p90Ms, color: "#dc2626" },
              ]}
            />
          </section>
          <section className="card">
            <h2>Rooms on this isolate ({load.rooms.length})</h2>
            <table data-testid="admin-rooms">
              <thead>
                <tr>
                  <th>room</th>
                  <th>clock</th>
                  <th>sessions</th>
                </tr>
              </thead>
              <tbody>
                {load.rooms.map((room) => (
                  <tr key={room.roomId} data-testid="admin-room" data-room-id={room.roomId}>
                    <td>{room.roomId}</td>
                    <td>{room.clock}</td>
                    <td>
                      {room.sessions.map((session) => (
                        <div key={session.sessionId} data-testid="admin-session">
                          <code>{session.sessionId}</code> {session.state}
                          {session.isReadonly ? " (read-only)" : ""}{" "}
                          <button
                            type="button"
                            onClick={() =>
                              void closeSession(room.roomId, session.sessionId)}
                          >
                            Close
                          </button>
                        </div>
                      ))}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </section>
        </>
      )}
    </main>
  );
}

function TokenForm(
  { refused, onToken }: { refused: number | undefined; onToken: (token: string) => void },
) {
  const [value, setValue] = useState("");
  return (
    <form
      className="card"
      onSubmit={(event) => {
        event.preventDefault();
        if (value.trim()) onToken(value.trim());
      }}
    >
      {refused !== undefined && (
        <p className="error">Refused ({refused}): an admin token or an admin user is needed.</p>
      )}
      <input
        aria-label="Admin token"
        type="password"
        placeholder="ADMIN_TOKEN"
        value={value}
        onChange={(event) => setValue(event.target.value)}
      />
      <button type="submit">Open</button>
    </form>
  );
}

function Status({ ok, error }: { ok: boolean; error: string | undefined }) {
  return ok
    ? <span className="status-online">ok</span>
    : <span className="error" title={error}>failing</span>;
}

/** Rate and latency over one poll interval, from two cumulative readings. */
function sampleBetween(before: Stats, after: Stats): Sample {
  const count = after.pushes.count - before.pushes.count;
  const seconds = Math.max(0.001, (after.at - before.at) / 1000);
  if (count <= 0) return { at: after.at, pushesPerSecond: 0, meanMs: null, p90Ms: null };
  const meanMs = (after.pushes.sum - before.pushes.sum) / count * 1000;
  // The first bucket holding 90 % of the interval's pushes (cumulative buckets, `le` bounds).
  const target = count * 0.9;
  const index = after.pushes.buckets.findIndex((value, i) =>
    value - (before.pushes.buckets[i] ?? 0) >= target
  );
  const bound = index === -1 ? null : after.pushes.bounds[index]!;
  return {
    at: after.at,
    pushesPerSecond: count / seconds,
    meanMs,
    p90Ms: bound === null ? null : bound * 1000,
  };
}

/** A line chart in SVG (no chart library: the page stays light). */
function Chart(
  { title, samples, series }: {
    title: string;
    samples: Sample[];
    series: { value: (sample: Sample) => number | null; color: string }[];
  },
) {
  const width = 360;
  const height = 120;
  const values = samples.flatMap((sample) => series.map((s) => s.value(sample) ?? 0));
  const max = Math.max(1, ...values);
  // The newest sample at the right edge; five minutes across.
  const x = (i: number) => width - (samples.length - 1 - i) * (width / (KEEP_SAMPLES - 1));
  const y = (value: number) => height - (value / max) * (height - 4) - 2;
  return (
    <figure className="chart">
      <figcaption>
        {title} <span className="muted">(max {max.toFixed(max < 10 ? 1 : 0)})</span>
      </figcaption>
      <svg width={width} height={height} viewBox={`0 0 ${width} ${height}`} role="img">
        <rect x={0} y={0} width={width} height={height} fill="#f8fafc" stroke="#ddd" />
        {series.map((s, n) => (
          <polyline
            key={n}
            fill="none"
            stroke={s.color}
            strokeWidth={1.5}
            points={samples.map((sample, i) => `${x(i)},${y(s.value(sample) ?? 0)}`).join(" ")}
          />
        ))}
      </svg>
    </figure>
  );
}
