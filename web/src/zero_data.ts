/**
 * The user's files over Zero, when the server has a zero-cache (`GET /app/config` says where): the
 * same {@link UserData} the page gets from the user-data channel otherwise. The Zero client is a
 * bundle of its own (the server's sync/zero/browser_client.ts), loaded only in this mode.
 *
 * @module
 */
import { useEffect, useMemo, useState } from "react";
import type { Session } from "./auth.ts";
import type { FileRow, UserData } from "./user_data.ts";

// Replaced at build time with the Zero client bundle's address (web/build.ts).
declare const ZERO_CLIENT_URL: string;

/** What sync/zero/browser_client.ts gives the page (kept in step with it by hand). */
interface ZeroFilesState {
  status: UserData["status"];
  files: FileRow[];
  error: string | undefined;
}
interface ZeroFileClient {
  subscribe(listener: (state: ZeroFilesState) => void): () => void;
  create(name: string, createSource?: string): string;
  rename(fileId: string, name: string): void;
  share(fileId: string, linkType: "view" | "edit" | "off"): void;
  delete(fileId: string): void;
  pin(fileId: string, pinned: boolean): void;
  close(): Promise<void>;
}
interface ZeroClientModule {
  connectZeroFiles(session: {
    cacheUrl: string;
    userId: string;
    name: string;
    token: string;
  }): ZeroFileClient;
}

/** Connects while `session` and `cacheUrl` are set. */
export function useZeroData(session: Session | undefined, cacheUrl: string | undefined): UserData {
  const [client, setClient] = useState<ZeroFileClient>();
  const [state, setState] = useState<ZeroFilesState>({
    status: "connecting",
    files: [],
    error: undefined,
  });
  useEffect(() => {
    if (!session || !cacheUrl) return;
    let stopped = false;
    let connected: ZeroFileClient | undefined;
    let unsubscribe: (() => void) | undefined;
    (import(ZERO_CLIENT_URL) as Promise<ZeroClientModule>).then((module) => {
      if (stopped) return;
      connected = module.connectZeroFiles({
        cacheUrl,
        userId: session.userId,
        name: session.name,
        token: session.token,
      });
      unsubscribe = connected.subscribe(setState);
      setClient(connected);
    }, (error: Error) => setState((s) => ({ ...s, status: "offline", error: error.message })));
    return () => {
      stopped = true;
      unsubscribe?.();
      void connected?.close();
      setClient(undefined);
    };
  }, [session, cacheUrl]);

  return useMemo((): UserData => {
    const offline = () => setState((s) => ({ ...s, error: "offline: change not sent" }));
    return {
      transport: "zero",
      status: state.status,
      error: state.error,
      files: state.files.filter((file) => !file.isDeleted),
      // The `files` query syncs no deleted files; they are restored over HTTP.
      deletedFiles: [],
      createFile: (name) => client?.create(name) ?? (offline(), ""),
      duplicateFile: (file) =>
        client?.create(`${file.name || "Untitled"} (copy)`, `f/${file.id}`) ?? (offline(), ""),
      renameFile: (fileId, name) => client ? client.rename(fileId, name) : offline(),
      shareFile: (fileId, linkType) => client ? client.share(fileId, linkType) : offline(),
      deleteFile: (fileId) => client ? client.delete(fileId) : offline(),
      pinFile: (fileId, pinned) => client ? client.pin(fileId, pinned) : offline(),
      restoreFile: (fileId) => {
        fetch(`/app/file/${encodeURIComponent(fileId)}/restore`, {
          method: "POST",
          headers: { authorization: `Bearer ${session?.token}` },
        }).then((response) => response.body?.cancel());
      },
    };
  }, [client, state, session]);
}
