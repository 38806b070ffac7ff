/**
 * The tldraw editor connected to one room of this server through `useSync`. Its fonts, icons and
 * translations come from this server (bundled from `@tldraw/assets`), not from tldraw's CDN, so the
 * editor works offline.
 *
 * @module
 */
import { useSync } from "@tldraw/sync";
import { getAssetUrlsByImport } from "@tldraw/assets/imports";
import { type Editor, type TLAssetStore, Tldraw } from "tldraw";

const assetUrls = getAssetUrlsByImport();

// Replaced at build time (`TLDRAW_LICENSE_KEY`); tldraw needs a key on hosts other than localhost.
declare const TLDRAW_LICENSE_KEY: string;

/**
 * Images and videos dropped on the board are stored inline as data URLs: enough for a demo page, and
 * it keeps the page independent of the server's upload configuration.
 */
const inlineAssets: TLAssetStore = {
  upload: async (_asset, file) => ({ src: await readAsDataUrl(file) }),
  resolve: (asset) => asset.props.src,
};

function readAsDataUrl(file: File): Promise<string> {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result as string);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

/** Props of {@link Board}. */
export interface BoardProps {
  /** The room's WebSocket address (`/r/…`, `/ro/…` or `/app/file/…?token=…`). */
  uri: string;
  /** Shown in the status line. */
  title: string;
  /** Share links shown in the status line. */
  links?: { label: string; href: string }[];
}

/** The editor on one room, with a status line (`data-sync-status` is what the browser test waits on). */
export function Board({ uri, title, links = [] }: BoardProps) {
  const store = useSync({ uri, assets: inlineAssets });
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
          <div className="board-canvas">
            <Tldraw
              store={store}
              assetUrls={assetUrls}
              licenseKey={TLDRAW_LICENSE_KEY || undefined}
              onMount={exposeEditor}
            />
          </div>
        )}
    </div>
  );
}

/** `window.editor`: handy in the console, and how the browser test draws and inspects shapes. */
function exposeEditor(editor: Editor): () => void {
  const global = globalThis as { editor?: Editor };
  global.editor = editor;
  return () => {
    if (global.editor === editor) delete global.editor;
  };
}
