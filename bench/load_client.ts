/**
 * The load generator, run in its own process so its CPU never counts as the server's:
 * `deno run -A bench/load_client.ts '<LoadSpec JSON>'`.
 *
 * Prints JSON lines on stdout: `{"mark": name}` at the edges of each measured window — then waits for
 * one line on stdin, so the benchmark can read the server's CPU / memory at exactly that moment — and
 * finally `{"result": LoadResult}`.
 *
 * Load is open-loop, like real clients: each client pushes on its own schedule (random phase) whether
 * or not earlier pushes were answered, so a server that falls behind shows it as growing latency.
 *
 * @module
 */
import { FanoutTracker, PhaseSink } from "./fanout_tracker.ts";
import type {
  IdleSpec,
  JoinSpec,
  LoadResult,
  LoadSpec,
  PhaseResult,
  SaturationSpec,
  SeedSpec,
  SteadySpec,
} from "./load_spec.ts";
import { stepSustained } from "./load_spec.ts";
import { summarize } from "./latency_stats.ts";
import { CpuMeter } from "./proc_stats.ts";
import { type ClientContext, RawTldrawClient } from "./raw_tldraw_client.ts";
import { geoShape, shapeIndex, type WireRecord } from "./tldraw_records.ts";

/** How often the push scheduler runs (ms); pushes due in between go out together. */
const TICK_MS = 2;
/** Clients opening their sockets at the same time. */
const CONNECT_CONCURRENCY = 10;
/** The real client pings every 5 s; servers drop sessions idle for 20 s. */
const PING_MS = 5_000;

const errorCounts = new Map<string, number>();
const context: ClientContext = {
  tracker: new FanoutTracker(),
  presencePushers: new Map(),
  error: (note) => errorCounts.set(note, (errorCounts.get(note) ?? 0) + 1),
};
const stdinLines = readLines(Deno.stdin.readable);

/** Reports a mark and waits for the benchmark's go-ahead. */
async function mark(name: string): Promise<void> {
  console.log(JSON.stringify({ mark: name }));
  await stdinLines.next();
}

async function* readLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let buffer = "";
  for await (const text of stream.pipeThrough(new TextDecoderStream())) {
    buffer += text;
    for (let end = buffer.indexOf("\n"); end >= 0; end = buffer.indexOf("\n")) {
      yield buffer.slice(0, end);
      buffer = buffer.slice(end + 1);
    }
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Opens and joins `count` clients into `roomId`, numbered from `firstIndex`. */
async function joinRoom(
  url: string,
  roomId: string,
  firstIndex: number,
  count: number,
): Promise<RawTldrawClient[]> {
  const clients = Array.from(
    { length: count },
    (_, i) =>
      new RawTldrawClient(
        `${url}/r/${roomId}?sessionId=${crypto.randomUUID()}`,
        firstIndex + i,
        context,
      ),
  );
  await forEachLimited(clients, CONNECT_CONCURRENCY, async (client) => {
    await client.open();
    await client.join();
    client.peers = count - 1;
  });
  return clients;
}

async function forEachLimited<T>(
  items: T[],
  limit: number,
  run: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await run(items[next++]!);
  }));
}

interface PhaseOptions {
  mode: "doc" | "presence";
  rate: number;
  createEvery: number;
  warmupSeconds: number;
  seconds: number;
  drainSeconds: number;
  label: string;
}

/** Runs one load phase on connected clients and measures its window. */
async function runPhase(clients: RawTldrawClient[], options: PhaseOptions): Promise<PhaseResult> {
  const { mode, rate, createEvery } = options;
  const sink = new PhaseSink();
  let recording: PhaseSink | null = null;
  const start = performance.now();
  const phases = clients.map(() => Math.random());
  const sent = clients.map(() => 0);
  const ticker = setInterval(() => {
    const elapsed = (performance.now() - start) / 1000;
    for (let i = 0; i < clients.length; i++) {
      const due = Math.floor(elapsed * rate + phases[i]!);
      const client = clients[i]!;
      while (sent[i]! < due) {
        const n = ++sent[i]!;
        if (mode === "presence") client.pushPresence(recording);
        else client.pushDocument(createEvery > 0 && n % createEvery === 0, recording);
      }
    }
  }, TICK_MS);

  await sleep(options.warmupSeconds * 1000);
  await mark(`start:${options.label}`);
  recording = sink;
  for (const client of clients) client.sink = sink;
  const cpu = new CpuMeter("self");
  const windowStart = performance.now();
  await sleep(options.seconds * 1000);
  recording = null;
  clearInterval(ticker);
  const seconds = (performance.now() - windowStart) / 1000;
  const clientCpu = cpu.stop();
  await mark(`end:${options.label}`);
  const drainUntil = performance.now() + options.drainSeconds * 1000;
  while ((sink.pendingAcks > 0 || sink.pendingFanouts > 0) && performance.now() < drainUntil) {
    await sleep(10);
  }
  for (const client of clients) client.sink = null;
  return {
    rate,
    offeredPerSec: rate * clients.length,
    sentPerSec: sink.sent / seconds,
    seconds,
    ack: sink.ack.summary(),
    fanout: sink.fanout.summary(),
    deliveredPerSec: sink.deliveries / seconds,
    framesPerSec: sink.frames / seconds,
    rebases: sink.rebases,
    discards: sink.discards,
    lostAcks: sink.pendingAcks,
    lostFanouts: sink.pendingFanouts,
    clientCpuPercent: clientCpu.percent,
  };
}

async function setUpAll(clients: RawTldrawClient[], withShape: boolean): Promise<void> {
  for (const client of clients) client.setUp(withShape);
  await Promise.all(clients.map((client) => client.acked()));
}

function startPinging(clients: RawTldrawClient[]): () => void {
  const timer = setInterval(() => {
    for (const client of clients) client.ping();
  }, PING_MS);
  return () => clearInterval(timer);
}

async function runSteady(spec: SteadySpec): Promise<Pick<LoadResult, "phases">> {
  const clients: RawTldrawClient[] = [];
  for (let room = 0; room < spec.rooms; room++) {
    clients.push(
      ...await joinRoom(
        spec.url,
        `${spec.roomPrefix}-${room}`,
        room * spec.clientsPerRoom,
        spec.clientsPerRoom,
      ),
    );
  }
  const stopPinging = startPinging(clients);
  await setUpAll(clients, spec.mode === "doc");
  const phase = await runPhase(clients, { ...spec, label: "steady" });
  stopPinging();
  for (const client of clients) client.close();
  return { phases: [phase] };
}

async function runSaturation(spec: SaturationSpec): Promise<Pick<LoadResult, "phases">> {
  const clients = await joinRoom(spec.url, `${spec.roomPrefix}-0`, 0, spec.clientsPerRoom);
  const stopPinging = startPinging(clients);
  await setUpAll(clients, true);
  const phases: PhaseResult[] = [];
  const run = async (rate: number) => {
    const phase = await runPhase(clients, {
      mode: "doc",
      rate,
      createEvery: spec.createEvery,
      warmupSeconds: spec.warmupSeconds,
      seconds: spec.stepSeconds,
      drainSeconds: spec.drainSeconds,
      // The benchmark matches marks to phases by their index.
      label: `step${phases.length}`,
    });
    phases.push(phase);
    return stepSustained(phase, spec.limitMs);
  };
  let retried = false;
  let failedAt: number | undefined;
  for (let step = 0; step < spec.maxSteps; step++) {
    const rate = spec.startRate * spec.factor ** step;
    if (await run(rate)) continue;
    // On a shared machine one noisy step should not end the ramp: a failed step is run once more
    // (once per ramp) and only a second failure stops it.
    if (retried) {
      failedAt = step;
      break;
    }
    retried = true;
    step--;
  }
  if (failedAt !== undefined && failedAt > 0) {
    const sustained = spec.startRate * spec.factor ** (failedAt - 1);
    for (let i = 1; i <= spec.refineSteps; i++) {
      const rate = sustained * spec.factor ** (i / (spec.refineSteps + 1));
      if (!(await run(rate))) break;
    }
  }
  stopPinging();
  for (const client of clients) client.close();
  return { phases };
}

async function runSeed(spec: SeedSpec): Promise<Pick<LoadResult, "phases" | "seedSeconds">> {
  const started = performance.now();
  await forEachLimited(spec.roomIds, 2, async (roomId) => {
    const [client] = await joinRoom(spec.url, roomId, 0, 1);
    for (let first = 0; first < spec.shapes; first += spec.perPush) {
      const records: WireRecord[] = [];
      for (let k = first; k < Math.min(spec.shapes, first + spec.perPush); k++) {
        records.push(
          geoShape(`shape:seed${k}`, (k % 100) * 120, Math.floor(k / 100) * 120, shapeIndex(k)),
        );
      }
      client!.putRecords(records);
      await client!.acked();
    }
    client!.close();
  });
  return { phases: [], seedSeconds: (performance.now() - started) / 1000 };
}

async function runJoin(spec: JoinSpec): Promise<Omit<LoadResult, "errors" | "errorNotes">> {
  const clients: RawTldrawClient[] = [];
  const cold: number[] = [];
  let chars = 0;
  let records = 0;
  for (const [i, roomId] of spec.roomIds.entries()) {
    const client = new RawTldrawClient(`${spec.url}/r/${roomId}?sessionId=cold${i}`, i, context);
    await client.open();
    const timing = await client.join();
    cold.push(timing.ms);
    chars = timing.chars;
    records = timing.records;
    clients.push(client);
  }
  const stopPinging = startPinging(clients);
  await mark("joined");
  const warm: number[] = [];
  for (const [i, roomId] of spec.roomIds.entries()) {
    const client = new RawTldrawClient(`${spec.url}/r/${roomId}?sessionId=warm${i}`, i, context);
    await client.open();
    warm.push((await client.join()).ms);
    clients.push(client);
  }
  stopPinging();
  for (const client of clients) client.close();
  return {
    phases: [],
    coldJoin: summarize(cold),
    warmJoin: summarize(warm),
    joinReplyChars: chars,
    joinRecords: records,
  };
}

async function runIdle(spec: IdleSpec): Promise<Pick<LoadResult, "phases">> {
  const clients: RawTldrawClient[] = [];
  await forEachLimited(spec.roomIds, 8, async (roomId) => {
    const joined = await joinRoom(spec.url, roomId, 0, spec.clientsPerRoom);
    const records = Array.from(
      { length: spec.shapes },
      (_, k) => geoShape(`shape:idle${k}`, k * 120, 0, shapeIndex(k)),
    );
    joined[0]!.putRecords(records);
    await joined[0]!.acked();
    clients.push(...joined);
  });
  const stopPinging = startPinging(clients);
  await mark("idle");
  stopPinging();
  for (const client of clients) client.close();
  await sleep(spec.unloadSeconds * 1000);
  await mark("left");
  return { phases: [] };
}

async function run(spec: LoadSpec): Promise<LoadResult> {
  const outcome = spec.kind === "steady"
    ? await runSteady(spec)
    : spec.kind === "saturation"
    ? await runSaturation(spec)
    : spec.kind === "seed"
    ? await runSeed(spec)
    : spec.kind === "idle"
    ? await runIdle(spec)
    : await runJoin(spec);
  const errorNotes = [...errorCounts].map(([note, count]) => `${note} ×${count}`);
  const errors = [...errorCounts.values()].reduce((a, b) => a + b, 0);
  return { ...outcome, errors, errorNotes };
}

if (import.meta.main) {
  const spec = JSON.parse(Deno.args[0] ?? "{}") as LoadSpec;
  const result = await run(spec);
  // Closing handshakes are not part of the measurement; leave without waiting for them.
  await sleep(50);
  console.log(JSON.stringify({ result }));
  Deno.exit(0);
}
