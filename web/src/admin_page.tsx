/**
 * The operator page (`/admin` → `#/admin`): this isolate's health; every isolate with its load
 * and its rooms with their clients and clocks (from the isolates' reports in KV; closing a session
 * is one click and reaches any isolate); and push rate and latency over the last minutes, charted
 * from the cumulative `/admin/stats` polled every two seconds. Credentials: the admin token (kept
 * for this tab only) or a signed-in admin user's token.
 *
 * @module
 */
import { useEffect, useState } from "react";
import type { Session } from "./auth.ts";
import {
  Chart,
  KEEP_SAMPLES,
  type PushTotals,
  type Sample,
  sampleBetween,
} from "./admin_charts.tsx";

const POLL_MS = 2_000;
const TOKEN_KEY = "deno-sync.admin-token";

interface Health {
  isolate: string;
  bus: string;
  kv: { ok: boolean; error?: string };
  db: { ok: boolean; error?: string };
  openSockets: number;
  roomsLoaded: number;
}

interface RoomRow {
  roomId: string;
  clock: number;
  sessions: { sessionId: string; state: string; isReadonly: boolean }[];
}

/** An isolate's report (the server's sync/isolate_reports.ts). */
interface IsolateReport extends PushTotals {
  isolate: string;
  openSockets: number;
  roomsLoaded: number;
  sessions: number;
  rooms: RoomRow[];
}

/** An isolate as listed: its report and its load over its last report interval. */
interface IsolateRow {
  report: IsolateReport;
  recent: Sample | undefined;
}

type Load =
  | { kind: "signed_out" }
  | { kind: "refused"; status: number }
  | { kind: "ok"; health: Health; isolates: IsolateRow[] };

/** The page. */
export function AdminPage({ session }: { session: Session | undefined }) {
  const [token, setToken] = useState(() => sessionStorage.getItem(TOKEN_KEY) ?? session?.token);
  const [load, setLoad] = useState<Load>({ kind: "signed_out" });
  const [samples, setSamples] = useState<Sample[]>([]);

  useEffect(() => {
    if (!token) return setLoad({ kind: "signed_out" });
    let stopped = false;
    let last: PushTotals | undefined;
    /** Each isolate's previous report and the sample since it. */
    const previous = new Map<string, IsolateRow>();
    const headers = { authorization: `Bearer ${token}` };
    const poll = async () => {
      const [health, isolates, stats] = await Promise.all(
        ["/admin/health", "/admin/isolates", "/admin/stats"].map((path) =>
          fetch(path, { headers })
        ),
      );
      if (stopped) return;
      const refused = [health!, isolates!, stats!].find((response) => !response.ok);
      if (refused) return setLoad({ kind: "refused", status: refused.status });
      const now = await stats!.json() as PushTotals;
      const reports = (await isolates!.json()).isolates as IsolateReport[];
      const rows = reports.map((report): IsolateRow => {
        const before = previous.get(report.isolate);
        const recent = before && before.report.at < report.at
          ? sampleBetween(before.report, report)
          : before?.recent;
        return { report, recent };
      });
      previous.clear();
      for (const row of rows) previous.set(row.report.isolate, row);
      setLoad({ kind: "ok", health: await health!.json(), isolates: rows });
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
              title="pushes / s, this isolate"
              samples={samples}
              series={[{ value: (s) => s.pushesPerSecond, color: "#2563eb" }]}
            />
            <Chart
              title="push → result, ms (mean, p90), this isolate"
              samples={samples}
              series={[
                { value: (s) => s.meanMs, color: "#16a34a" },
                { value: (s) => s.p90Ms, color: "#dc2626" },
              ]}
            />
          </section>
          <IsolatesTable isolates={load.isolates} />
          <RoomsTable isolates={load.isolates} onClose={closeSession} />
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

function IsolatesTable({ isolates }: { isolates: IsolateRow[] }) {
  return (
    <section className="card">
      <h2>Isolates ({isolates.length})</h2>
      <table data-testid="admin-isolates">
        <thead>
          <tr>
            <th>isolate</th>
            <th>report</th>
            <th>sockets</th>
            <th>rooms</th>
            <th>sessions</th>
            <th>pushes / s</th>
            <th>push → result p90</th>
          </tr>
        </thead>
        <tbody>
          {isolates.map(({ report, recent }) => (
            <tr key={report.isolate} data-testid="admin-isolate">
              <td>
                <code>{report.isolate.slice(0, 8)}</code>
              </td>
              <td>{Math.max(0, Math.round((Date.now() - report.at) / 1000))} s ago</td>
              <td>{report.openSockets}</td>
              <td>{report.roomsLoaded}</td>
              <td>{report.sessions}</td>
              <td>{recent ? recent.pushesPerSecond.toFixed(1) : "…"}</td>
              <td>{recent?.p90Ms != null ? `≤ ${recent.p90Ms} ms` : "…"}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

function RoomsTable(
  { isolates, onClose }: {
    isolates: IsolateRow[];
    onClose: (roomId: string, sessionId: string) => Promise<void>;
  },
) {
  // One row per room per isolate: the clients of one room may be spread over several isolates.
  const rows = isolates.flatMap(({ report }) =>
    report.rooms.map((room) => ({ isolate: report.isolate, room }))
  );
  return (
    <section className="card">
      <h2>Rooms ({rows.length})</h2>
      <table data-testid="admin-rooms">
        <thead>
          <tr>
            <th>room</th>
            <th>isolate</th>
            <th>clock</th>
            <th>sessions</th>
          </tr>
        </thead>
        <tbody>
          {rows.map(({ isolate, room }) => (
            <tr
              key={`${isolate}/${room.roomId}`}
              data-testid="admin-room"
              data-room-id={room.roomId}
            >
              <td>{room.roomId}</td>
              <td>
                <code>{isolate.slice(0, 8)}</code>
              </td>
              <td>{room.clock}</td>
              <td>
                {room.sessions.map((session) => (
                  <div key={session.sessionId} data-testid="admin-session">
                    <code>{session.sessionId}</code> {session.state}
                    {session.isReadonly ? " (read-only)" : ""}{" "}
                    <button
                      type="button"
                      onClick={() =>
                        void onClose(room.roomId, session.sessionId)}
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
  );
}
