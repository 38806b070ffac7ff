/**
 * The REAL tldraw sync client (`TLSyncClient` + `ClientWebSocketAdapter` from @tldraw/sync-core
 * 5.4.2, over a tldraw `Store` with the default schema) connected to a test server, with helpers to
 * edit and inspect its store.
 *
 * @module
 */
import "./browser_shims.ts";
import "./tldraw_settle.ts";
import { atom, computed } from "@tldraw/state";
import { Store } from "@tldraw/store";
import * as syncCore from "@tldraw/sync-core";
import { TLSyncClient } from "@tldraw/sync-core";
import { createTLSchema, InstancePresenceRecordType, type TLRecord } from "@tldraw/tlschema";
import { animationFramesSettled, withWindow } from "./browser_shims.ts";
import { until } from "./fake_socket.ts";

/** The client's WebSocket adapter (exported at runtime; its type is stripped from the .d.ts). */
export interface ClientWebSocketAdapter {
  readonly _ws: WebSocket | null;
  close(): void;
}
const { ClientWebSocketAdapter } = syncCore as unknown as {
  ClientWebSocketAdapter: new (getUri: () => string) => ClientWebSocketAdapter;
};

/** A tldraw store (what the editor would hold). */
export type TestStore = Store<TLRecord>;

/** One real client. */
export interface TestClient extends AsyncDisposable {
  store: TestStore;
  client: TLSyncClient<TLRecord, TestStore>;
  socket: ClientWebSocketAdapter;
  /** Sync errors reported by the client (`onSyncError`). */
  errors: string[];
  /** `isReadonly` from the last connect. */
  readonly: () => boolean | undefined;
  /** The presence signal the client pushes. */
  setCursor(x: number, y: number): void;
  /** Waits for the first successful connect. */
  loaded: Promise<void>;
  close(): Promise<void>;
}

/**
 * Connects a real client to `url` (e.g. `ws://…/r/room`); `sessionId` is appended like `useSync`
 * does. After each connect it calls `ensureStoreIsUsable()` as `useSync` does. `url` may be a
 * function: it is asked again on every reconnect (a client that lands on another isolate).
 */
export function connectClient(
  url: string | (() => string),
  options: { sessionId?: string } = {},
): TestClient {
  const sessionId = options.sessionId ?? crypto.randomUUID();
  const store = new Store({
    schema: createTLSchema(),
    props: {} as never,
  }) as unknown as TestStore;
  const presence = atom<TLRecord | null>(
    "presence",
    InstancePresenceRecordType.create({
      id: InstancePresenceRecordType.createId(store.id),
      currentPageId: "page:page" as never,
      userId: `user:${sessionId}` as never,
      userName: sessionId,
      cursor: { x: 0, y: 0, type: "default", rotation: 0 },
    }),
  );
  // As `useSync`: "full" presence (30 fps, cursors pushed) once someone else is in the room.
  const presenceMode = computed<"solo" | "full">("presenceMode", () => {
    if (presence.get() === null) return "solo";
    const others = store.query.records("instance_presence").get();
    return others.length > 0 ? "full" : "solo";
  });
  const socket = withWindow(() =>
    new ClientWebSocketAdapter(() => {
      const base = typeof url === "string" ? url : url();
      return `${base}${base.includes("?") ? "&" : "?"}sessionId=${
        encodeURIComponent(sessionId)
      }&storeId=${store.id}`;
    })
  );
  const errors: string[] = [];
  let isReadonly: boolean | undefined;
  let resolveLoaded: () => void;
  const loaded = new Promise<void>((resolve) => (resolveLoaded = resolve));
  const client = withWindow(() =>
    new TLSyncClient<TLRecord, TestStore>({
      store,
      socket: socket as never,
      presence,
      presenceMode,
      onLoad: () => resolveLoaded(),
      onSyncError: (reason) => errors.push(reason),
      onAfterConnect: (_self, details) => {
        isReadonly = details.isReadonly;
        // `useSync` does this after every connect (an internal Store method, hence the cast).
        if (!details.isReadonly) {
          (store as unknown as { ensureStoreIsUsable(): void }).ensureStoreIsUsable();
        }
      },
    })
  );
  let closed: Promise<void> | undefined;
  const close = () =>
    closed ??= (async () => {
      client.close();
      // The adapter's close() leaves the socket's onclose handler in place, and that handler would
      // schedule a reconnect timer (harmless in a browser tab, a leak for Deno's sanitizer).
      const ws = socket._ws;
      if (ws) ws.onclose = null;
      socket.close();
      if (ws && ws.readyState !== WebSocket.CLOSED) {
        await until(() => ws.readyState === WebSocket.CLOSED, 5_000).catch(() => {});
      }
      await animationFramesSettled();
    })();
  return {
    store,
    client,
    socket,
    errors,
    readonly: () => isReadonly,
    setCursor: (x, y) => {
      const current = presence.get();
      if (current && current.typeName === "instance_presence") {
        presence.set({ ...current, cursor: { ...current.cursor!, x, y } });
      }
    },
    loaded,
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** Document-scoped records of a store, sorted by id (for comparing two clients). */
export function documentRecords(store: TestStore): TLRecord[] {
  return store.allRecords()
    .filter((r) => store.scopedTypes.document.has(r.typeName))
    .sort((a, b) => a.id.localeCompare(b.id));
}

/** Presence records in a store. */
export function presenceRecords(store: TestStore): TLRecord[] {
  return store.allRecords().filter((r) => r.typeName === "instance_presence");
}
