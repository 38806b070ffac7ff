/**
 * The tldraw editor connected to one room of this server through `useSync`. Its fonts, icons and
 * translations come from this server (bundled from `@tldraw/assets`), not from tldraw's CDN, so the
 * editor works offline.
 *
 * @module
 */
import { useSync } from "@tldraw/sync";
import { getAssetUrlsByImport } from "@tldraw/assets/imports";
import { type ReactNode, useMemo } from "react";
import { type Editor, Tldraw } from "tldraw";
import { registerUnfurl, serverAssetStore, type UploadTarget } from "./assets.ts";

const assetUrls = getAssetUrlsByImport();

// Replaced at build time (`TLDRAW_LICENSE_KEY`); tldraw needs a key on hosts other than localhost.
declare const TLDRAW_LICENSE_KEY: string;

/** Props of {@link Board}. */
export interface BoardProps {
  /** The room's WebSocket address (`/r/…`, `/ro/…` or `/app/file/…?token=…`). */
  uri: string;
  /** Shown in the status line. */
  title: string;
  /** Share links shown in the status line. */
  links?: { label: string; href: string }[];
  /** Where dropped images and videos are uploaded. */
  uploads: UploadTarget;
  /** Shown beside the editor (a file's sharing, publishing and history). */
  panel?: ReactNode;
  /** Shown left of the editor (the user's files). */
  sidebar?: ReactNode;
}

/** The editor on one room, with a status line (`data-sync-status` is what the browser test waits on). */
export function Board({ uri, title, links = [], uploads, panel, sidebar }: BoardProps) {
  // One store per target (`uploads` is a new object on each render; its value is what counts).
  const uploadKey = JSON.stringify(uploads);
  const assets = useMemo(() => serverAssetStore(JSON.parse(uploadKey)), [uploadKey]);
  const store = useSync({ uri, assets });
  const status = store.status === "synced-remote" ? store.connectionStatus : store.status;
  return (
    <div className="board">
      <div className="board-status" data-testid="sync-status" data-sync-status={status}>
        <a href="#/">← rooms</a>
        <span>{title}</span>
        {links.map((link) => (
          <a key={link.label} href={link.href} data-testid={`link-${link.label}`}>{link.label}</a>
        ))}
        <span className={`status status-${status}`}>{status}</span>
      </div>
      {store.status === "error"
        ? <div className="board-error">Could not connect: {store.error.message}</div>
        : (
          <div className="board-body">
            {sidebar}
            <div className="board-canvas">
              <Tldraw
                store={store}
                assetUrls={assetUrls}
                licenseKey={TLDRAW_LICENSE_KEY || undefined}
                onMount={onMount}
              />
            </div>
            {panel}
          </div>
        )}
    </div>
  );
}

/** Pasted links become bookmarks described by the server; `window.editor` is exposed. */
function onMount(editor: Editor): () => void {
  registerUnfurl(editor);
  return exposeEditor(editor);
}

/** `window.editor`: handy in the console, and how the browser test draws and inspects shapes. */
function exposeEditor(editor: Editor): () => void {
  const global = globalThis as { editor?: Editor };
  global.editor = editor;
  return () => {
    if (global.editor === editor) delete global.editor;
  };
}
