/**
 * A document copy shown read-only, without a connection: a published file (`#/p/<slug>`) and the
 * preview of a history version.
 *
 * @module
 */
import { useEffect, useState } from "react";
import { type Editor, Tldraw, type TLRecord, type TLStoreSnapshot } from "tldraw";
import { getAssetUrlsByImport } from "@tldraw/assets/imports";

const assetUrls = getAssetUrlsByImport();
declare const TLDRAW_LICENSE_KEY: string;

/** A document copy as the server sends it (published files, history versions). */
export interface DocumentCopy {
  schema: TLStoreSnapshot["schema"];
  records: TLRecord[];
}

/** The copy in a read-only editor, zoomed to fit. */
export function SnapshotView({ copy }: { copy: DocumentCopy }) {
  const snapshot: TLStoreSnapshot = {
    schema: copy.schema,
    store: Object.fromEntries(copy.records.map((record) => [record.id, record])),
  };
  return (
    <Tldraw
      snapshot={snapshot}
      assetUrls={assetUrls}
      licenseKey={TLDRAW_LICENSE_KEY || undefined}
      hideUi
      onMount={(editor: Editor) => {
        editor.updateInstanceState({ isReadonly: true });
        editor.zoomToFit();
      }}
    />
  );
}

/** A published file's page: its copy, read-only, with a link to make one's own copy. */
export function PublishedPage({ slug }: { slug: string }) {
  const [state, setState] = useState<
    { kind: "loading" } | { kind: "ready"; copy: DocumentCopy } | { kind: "missing" }
  >({ kind: "loading" });
  useEffect(() => {
    let cancelled = false;
    fetch(`/app/published/${encodeURIComponent(slug)}`)
      .then((response) => response.ok ? response.json() : undefined)
      .then((copy?: DocumentCopy) => {
        if (!cancelled) setState(copy ? { kind: "ready", copy } : { kind: "missing" });
      })
      .catch(() => !cancelled && setState({ kind: "missing" }));
    return () => {
      cancelled = true;
    };
  }, [slug]);
  return (
    <div className="board" data-testid="published-page" data-state={state.kind}>
      <div className="board-status">
        <a href="#/">← home</a>
        <span>published</span>
      </div>
      {state.kind === "missing" && <div className="board-error">Nothing is published here.</div>}
      {state.kind === "ready" && (
        <div className="board-canvas">
          <SnapshotView copy={state.copy} />
        </div>
      )}
    </div>
  );
}
