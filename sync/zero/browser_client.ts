/**
 * The web app's file list over Zero (used when the server has `ZERO_CACHE_URL`): a Zero client on
 * the shared schema, mutators and queries, behind the small interface the page needs. Bundled for
 * the browser on its own (web/build.ts, `deno bundle`), and loaded only when Zero is configured.
 *
 * @module
 */
import { Zero } from "@rocicorp/zero";
import { mutators } from "./mutators.ts";
import { queries } from "./queries.ts";
import { schema } from "./schema.ts";

/** A file as the page shows it. */
export interface ZeroFile {
  id: string;
  name: string;
  ownerId: string;
  shared: boolean;
  sharedLinkType: "view" | "edit";
  isDeleted: boolean;
  createdAt: number;
  updatedAt: number;
  /** Pinned by this user (their `file_state.isPinned`). */
  isPinned?: boolean;
}

/** What the page hears: the files, and whether the client is connected. */
export interface ZeroFilesState {
  status: "connecting" | "online" | "offline";
  files: ZeroFile[];
  /** The last refused change's reason (the server's rule code). */
  error: string | undefined;
}

/** The page's handle on Zero. */
export interface ZeroFileClient {
  /** Calls `listener` with every new state; returns the unsubscribe function. */
  subscribe(listener: (state: ZeroFilesState) => void): () => void;
  create(name: string, createSource?: string): string;
  rename(fileId: string, name: string): void;
  share(fileId: string, linkType: "view" | "edit" | "off"): void;
  delete(fileId: string): void;
  /** Pins or unpins a file in this user's list (their own file state). */
  pin(fileId: string, pinned: boolean): void;
  close(): Promise<void>;
}

/** Who connects. */
export interface ZeroSession {
  cacheUrl: string;
  userId: string;
  name: string;
  token: string;
}

/** A file id as Zero's mutators take them: 32 URL-safe characters. */
function newFileId(): string {
  return crypto.randomUUID().replaceAll("-", "");
}

/** Connects a Zero client for the signed-in user. */
export function connectZeroFiles(session: ZeroSession): ZeroFileClient {
  const userID = session.userId;
  const zero = new Zero({
    cacheURL: session.cacheUrl,
    userID,
    auth: session.token,
    schema,
    mutators,
    context: { userID },
  });
  let state: ZeroFilesState = { status: "connecting", files: [], error: undefined };
  const listeners = new Set<(state: ZeroFilesState) => void>();
  const publish = (next: Partial<ZeroFilesState>) => {
    state = { ...state, ...next };
    for (const listener of listeners) listener(state);
  };

  let fileRows: readonly ZeroFile[] = [];
  /** The user's file states: `isPinned` by file id (a key present means the row exists). */
  let states = new Map<string, boolean>();
  const publishFiles = () => {
    const files = fileRows.map((row) => ({ ...row, isPinned: states.get(row.id) === true }))
      .sort((a, b) => b.createdAt - a.createdAt);
    publish({ files, status: "online" });
  };
  const view = zero.materialize(queries.files());
  view.addListener((rows) => {
    fileRows = rows as readonly ZeroFile[];
    publishFiles();
  });
  const stateView = zero.materialize(queries.fileStates());
  stateView.addListener((rows) => {
    const read = rows as readonly { fileId: string; isPinned: boolean | null }[];
    states = new Map(read.map((row) => [row.fileId, row.isPinned === true]));
    publishFiles();
  });
  const unwatch = zero.connection.state.subscribe((connection: { name: string }) => {
    publish({ status: connection.name === "connected" ? "online" : "offline" });
  });

  /** Runs a mutation; a refusal from the server becomes the state's error. */
  const mutate = (request: unknown) => {
    // deno-lint-ignore no-explicit-any
    const result = (zero as any).mutate(request);
    (result.server as Promise<{ type: string; error?: { message: string } }>).then((outcome) => {
      if (outcome.type === "error") publish({ error: `rejected: ${outcome.error?.message}` });
      else publish({ error: undefined });
    });
  };

  // The user's row first (files refer to it): created if this is their first visit. Every other
  // mutation is sent after it: a file created at once by a first-time user would otherwise reach
  // the server before its owner's row and be refused.
  const userReady: Promise<void> = zero.run(queries.user(), { type: "complete" }).then((user) => {
    if (!user) {
      mutate(mutators.user.insert({ id: userID, name: session.name, email: "" }));
    }
  }, () => {});
  const mutateAfterUser = (request: unknown) => void userReady.then(() => mutate(request));

  return {
    subscribe(listener) {
      listeners.add(listener);
      listener(state);
      return () => listeners.delete(listener);
    },
    create(name, createSource) {
      const id = newFileId();
      const now = Date.now();
      mutateAfterUser(mutators.file.insertWithFileState({
        file: {
          id,
          name,
          ownerId: userID,
          publishedSlug: newFileId(),
          createdAt: now,
          updatedAt: now,
          ...(createSource ? { createSource } : {}),
        },
        fileState: { userId: userID, fileId: id, isFileOwner: true, firstVisitAt: now },
      }));
      return id;
    },
    rename(fileId, name) {
      mutateAfterUser(mutators.file.update({ id: fileId, name, updatedAt: Date.now() }));
    },
    share(fileId, linkType) {
      mutateAfterUser(mutators.file.update(
        linkType === "off"
          ? { id: fileId, shared: false, updatedAt: Date.now() }
          : { id: fileId, shared: true, sharedLinkType: linkType, updatedAt: Date.now() },
      ));
    },
    delete(fileId) {
      mutateAfterUser(mutators.file.deleteOrForget({ id: fileId }));
    },
    pin(fileId, isPinned) {
      const row = { userId: userID, fileId, isPinned };
      // The server's insert is an upsert; the client's is not, so an existing row is updated.
      mutateAfterUser(
        states.has(fileId) ? mutators.file_state.update(row) : mutators.file_state.insert(row),
      );
    },
    async close() {
      unwatch();
      view.destroy();
      stateView.destroy();
      await zero.close();
    },
  };
}
