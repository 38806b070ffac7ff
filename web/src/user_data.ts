/**
 * A small client of the user-data channel (`/app/:userId/connect`, protocol 2; messages as in the
 * server's `sync/user/protocol.ts`): keeps the user's files from `initial_data` + `update`, sends
 * `mutate`, and reports `reject`s. Writes are not applied optimistically: the server echoes every
 * committed change as an `update`, which keeps this client trivially consistent.
 *
 * @module
 */
import { useEffect, useMemo, useRef, useState } from "react";
import { userDataSocketUrl } from "./server_urls.ts";
import type { Session } from "./auth.ts";

/** A `file` row as the server sends it (the columns this app uses). */
export interface FileRow {
  id: string;
  name: string;
  ownerId: string;
  shared: boolean;
  sharedLinkType: "view" | "edit";
  isDeleted: boolean;
  createdAt: number;
  updatedAt: number;
  published?: boolean;
  publishedSlug?: string;
  /** Pinned by this user (their `file_state.isPinned`), computed by the data layer. */
  isPinned?: boolean;
}

/** The columns of the user's `file_state` rows this app uses. */
interface FileStateRow {
  fileId: string;
  isPinned?: boolean | null;
}

type RowChange = {
  table: string;
  event: "insert" | "update" | "delete";
  row: Record<string, unknown>;
};
type ServerMessage =
  | { type: "initial_data"; initialData: { files: FileRow[]; fileStates: FileStateRow[] } }
  | { type: "update"; updates: RowChange[] }
  | { type: "commit"; mutationIds: string[] }
  | { type: "reject"; mutationId: string; errorCode: string }
  | { type: "pong" };

/** The channel's state and the mutations this app offers. */
export interface UserData {
  /** How the files sync: the user-data channel, or Zero. */
  transport: "channel" | "zero";
  status: "connecting" | "online" | "offline";
  /** Non-deleted files, newest first. */
  files: FileRow[];
  /** The user's own deleted files, which the server may still let them restore. */
  deletedFiles: FileRow[];
  /** The last rejected mutation's code, or a close reason. */
  error: string | undefined;
  createFile(name: string): string;
  /** A new file of the user's, a copy of `file` (`createSource: "f/<id>"`). */
  duplicateFile(file: FileRow): string;
  /** Takes a deleted file back (refused once its recovery window has passed). */
  restoreFile(fileId: string): void;
  renameFile(fileId: string, name: string): void;
  shareFile(fileId: string, linkType: "view" | "edit" | "off"): void;
  deleteFile(fileId: string): void;
  /** Pins or unpins a file in this user's list (their own file state). */
  pinFile(fileId: string, pinned: boolean): void;
}

/** Close reasons after which reconnecting cannot help. */
const FINAL_REASONS = new Set(["NOT_AUTHENTICATED", "FORBIDDEN", "CLIENT_TOO_OLD", "BAD_REQUEST"]);

/** Connects while `session` is set; reconnects with backoff when the socket drops. */
export function useUserData(session: Session | undefined): UserData {
  const [files, setFiles] = useState(new Map<string, FileRow>());
  const [pinned, setPinned] = useState(new Set<string>());
  const [status, setStatus] = useState<UserData["status"]>("connecting");
  const [error, setError] = useState<string>();
  const socketRef = useRef<WebSocket | undefined>(undefined);

  useEffect(() => {
    if (!session) return;
    let stopped = false;
    let attempt = 0;
    let retryTimer: ReturnType<typeof setTimeout> | undefined;
    const connect = () => {
      setStatus("connecting");
      const socket = new WebSocket(userDataSocketUrl(session.userId, session.token));
      socketRef.current = socket;
      socket.onmessage = (event) => {
        const message = JSON.parse(event.data) as ServerMessage;
        if (message.type === "initial_data") {
          attempt = 0;
          setStatus("online");
          setError(undefined);
          setFiles(new Map(message.initialData.files.map((file) => [file.id, file])));
          setPinned(
            new Set(
              message.initialData.fileStates.filter((state) => state.isPinned).map((state) =>
                state.fileId
              ),
            ),
          );
        } else if (message.type === "update") {
          setFiles((previous) => applyUpdates(previous, message.updates));
          setPinned((previous) => applyStateUpdates(previous, message.updates));
        } else if (message.type === "reject") {
          setError(`rejected: ${message.errorCode}`);
        }
      };
      socket.onclose = (event) => {
        if (socketRef.current === socket) socketRef.current = undefined;
        if (stopped) return;
        setStatus("offline");
        if (event.code === 4099 && FINAL_REASONS.has(event.reason)) {
          setError(event.reason);
          return;
        }
        attempt++;
        retryTimer = setTimeout(connect, Math.min(5_000, 250 * 2 ** attempt));
      };
    };
    connect();
    return () => {
      stopped = true;
      clearTimeout(retryTimer);
      socketRef.current?.close();
      socketRef.current = undefined;
      setFiles(new Map());
      setPinned(new Set());
    };
  }, [session]);

  return useMemo(() => {
    const mutate = (...updates: RowChange[]) => {
      const socket = socketRef.current;
      if (!socket || socket.readyState !== WebSocket.OPEN) {
        setError("offline: change not sent");
        return;
      }
      socket.send(JSON.stringify({
        type: "mutate",
        mutationId: crypto.randomUUID(),
        updates,
      }));
    };
    const now = () => Date.now();
    const create = (name: string, createSource?: string) => {
      const id = crypto.randomUUID();
      const ownerId = session?.userId ?? "";
      const row = {
        id,
        name,
        ownerId,
        publishedSlug: crypto.randomUUID(),
        createdAt: now(),
        updatedAt: now(),
        ...(createSource ? { createSource } : {}),
      };
      // With the owner's own file state, in one mutation: that is how tldraw's model lists a file.
      mutate(
        { table: "file", event: "insert", row },
        {
          table: "file_state",
          event: "insert",
          row: { userId: ownerId, fileId: id, isFileOwner: true },
        },
      );
      return id;
    };
    const all = [...files.values()].sort((a, b) => b.createdAt - a.createdAt)
      .map((file) => pinned.has(file.id) ? { ...file, isPinned: true } : file);
    return {
      transport: "channel",
      status,
      error,
      files: all.filter((file) => !file.isDeleted),
      deletedFiles: all.filter((file) => file.isDeleted && file.ownerId === session?.userId),
      createFile: (name) => create(name),
      duplicateFile: (file) => create(`${file.name || "Untitled"} (copy)`, `f/${file.id}`),
      restoreFile(fileId) {
        mutate({
          table: "file",
          event: "update",
          row: { id: fileId, isDeleted: false, updatedAt: now() },
        });
      },
      renameFile(fileId, name) {
        mutate({ table: "file", event: "update", row: { id: fileId, name, updatedAt: now() } });
      },
      shareFile(fileId, linkType) {
        const row = linkType === "off"
          ? { id: fileId, shared: false, updatedAt: now() }
          : { id: fileId, shared: true, sharedLinkType: linkType, updatedAt: now() };
        mutate({ table: "file", event: "update", row });
      },
      deleteFile(fileId) {
        // A soft delete, as tldraw's own app does: the server closes the file's room and purges later.
        mutate({
          table: "file",
          event: "update",
          row: { id: fileId, isDeleted: true, updatedAt: now() },
        });
      },
      pinFile(fileId, isPinned) {
        // An insert is an upsert on the key: a shared file the user has no state for yet gets one.
        mutate({
          table: "file_state",
          event: "insert",
          row: { userId: session?.userId ?? "", fileId, isPinned },
        });
      },
    };
  }, [files, pinned, status, error, session]);
}

function applyUpdates(previous: Map<string, FileRow>, updates: RowChange[]): Map<string, FileRow> {
  const next = new Map(previous);
  for (const { table, event, row } of updates) {
    if (table !== "file") continue;
    const id = row.id as string;
    if (event === "delete") next.delete(id);
    else next.set(id, { ...next.get(id), ...row } as FileRow);
  }
  return next;
}

/** `previous` with the `file_state` changes among `updates` applied (a copy if there are any). */
function applyStateUpdates(previous: Set<string>, updates: RowChange[]): Set<string> {
  const states = updates.filter((update) => update.table === "file_state");
  if (states.length === 0) return previous;
  const next = new Set(previous);
  for (const { event, row } of states) {
    const { fileId, isPinned } = row as unknown as FileStateRow;
    if (event !== "delete" && isPinned) next.add(fileId);
    // An update without the column leaves the pin as it was.
    else if (event === "delete" || isPinned === false || isPinned === null) next.delete(fileId);
  }
  return next;
}
