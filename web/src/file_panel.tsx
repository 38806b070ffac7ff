/**
 * The side panel of a file's board: sharing (private, view or edit link, copied in one click, and
 * a read-only link that opens the file read-only even while it is shared for editing),
 * publishing (a read-only copy under its own link) and the version history with a preview and
 * restore. Sharing goes through the user-data channel (or Zero); publishing and history through
 * the file routes. The owner sees all of it; a guest sees the link.
 *
 * @module
 */
import { useCallback, useEffect, useState } from "react";
import { appLink } from "./server_urls.ts";
import { type DocumentCopy, SnapshotView } from "./snapshot_view.tsx";
import type { FileRow, UserData } from "./user_data.ts";

/** Props of {@link FilePanel}. */
export interface FilePanelProps {
  fileId: string;
  token: string;
  /** The file's row from the user's list (undefined until it arrives). */
  file: FileRow | undefined;
  mine: boolean;
  data: UserData;
}

/** A version as listed by `GET /app/file/:id/history`. */
interface VersionInfo {
  id: string;
  clock: number;
  createdAt: number;
  reason: string;
}

/** The panel. */
export function FilePanel({ fileId, token, file, mine, data }: FilePanelProps) {
  const link = appLink(`/file/${encodeURIComponent(fileId)}`);
  return (
    <aside className="file-panel" data-testid="file-panel">
      <section>
        <h3>Share</h3>
        {mine && file && (
          <select
            aria-label="Link access"
            value={file.shared ? file.sharedLinkType : "off"}
            onChange={(event) =>
              data.shareFile(fileId, event.target.value as "view" | "edit" | "off")}
          >
            <option value="off">private: only you</option>
            <option value="view">anyone with the link can view</option>
            <option value="edit">anyone with the link can edit</option>
          </select>
        )}
        {(!mine || file?.shared) && <CopyLink label="Copy link" href={link} testId="file-link" />}
        {mine && file?.shared && <ReadonlyLink fileId={fileId} token={token} />}
      </section>
      {mine && <PublishSection fileId={fileId} token={token} file={file} />}
      {mine && <HistorySection fileId={fileId} token={token} />}
    </aside>
  );
}

function CopyLink({ label, href, testId }: { label: string; href: string; testId: string }) {
  const [copied, setCopied] = useState(false);
  return (
    <div className="copy-link">
      <code data-testid={testId}>{href}</code>
      <button
        type="button"
        onClick={() =>
          navigator.clipboard.writeText(href).then(() => setCopied(true), () => setCopied(false))}
      >
        {copied ? "Copied" : label}
      </button>
    </div>
  );
}

/** The file's read-only link (`/#/ro/<read-only id>`), asked of the server once. */
function ReadonlyLink({ fileId, token }: { fileId: string; token: string }) {
  const [readonlyId, setReadonlyId] = useState<string>();
  useEffect(() => {
    let stopped = false;
    fetch(`/app/file/${encodeURIComponent(fileId)}/readonly-link`, {
      headers: { authorization: `Bearer ${token}` },
    }).then((response) => response.ok ? response.json() : undefined)
      .then((body?: { readonlyId: string }) => {
        if (!stopped && body) setReadonlyId(body.readonlyId);
      }, () => {});
    return () => {
      stopped = true;
    };
  }, [fileId, token]);
  if (!readonlyId) return null;
  return (
    <CopyLink
      label="Copy read-only link"
      href={appLink(`/ro/${encodeURIComponent(readonlyId)}`)}
      testId="file-readonly-link"
    />
  );
}

function PublishSection(
  { fileId, token, file }: { fileId: string; token: string; file: FileRow | undefined },
) {
  const [slug, setSlug] = useState<string | undefined>();
  const [published, setPublished] = useState<boolean | undefined>();
  const [error, setError] = useState<string>();
  const isPublished = published ?? file?.published ?? false;
  const publishedSlug = slug ?? file?.publishedSlug;
  const send = async (method: "POST" | "DELETE") => {
    setError(undefined);
    const response = await fetch(`/app/file/${encodeURIComponent(fileId)}/publish`, {
      method,
      headers: { authorization: `Bearer ${token}` },
    });
    const body = await response.json().catch(() => undefined);
    if (!response.ok) return setError(body?.error?.message ?? response.statusText);
    setPublished(body.published);
    if (body.slug) setSlug(body.slug);
  };
  return (
    <section>
      <h3>Publish</h3>
      <p>A read-only copy under its own link; publish again to update it.</p>
      <button type="button" onClick={() => send("POST")}>
        {isPublished ? "Update published copy" : "Publish"}
      </button>
      {isPublished && <button type="button" onClick={() => send("DELETE")}>Unpublish</button>}
      {isPublished && publishedSlug && (
        <CopyLink
          label="Copy published link"
          href={appLink(`/p/${encodeURIComponent(publishedSlug)}`)}
          testId="published-link"
        />
      )}
      {error && <p className="error">{error}</p>}
    </section>
  );
}

function HistorySection({ fileId, token }: { fileId: string; token: string }) {
  const [versions, setVersions] = useState<VersionInfo[]>();
  const [preview, setPreview] = useState<{ id: string; copy: DocumentCopy }>();
  const [error, setError] = useState<string>();
  const base = `/app/file/${encodeURIComponent(fileId)}/history`;
  const headers = { authorization: `Bearer ${token}` };
  const load = useCallback(async () => {
    const response = await fetch(base, { headers: { authorization: `Bearer ${token}` } });
    const body = await response.json().catch(() => undefined);
    if (!response.ok) return setError(body?.error?.message ?? response.statusText);
    setVersions(body.versions);
  }, [base, token]);
  useEffect(() => {
    void load();
  }, [load]);
  const show = async (id: string) => {
    const response = await fetch(`${base}/${id}`, { headers });
    if (response.ok) setPreview({ id, copy: (await response.json()).snapshot });
  };
  const restore = async (id: string) => {
    const response = await fetch(`${base}/${id}/restore`, { method: "POST", headers });
    if (!response.ok) return setError(`restore failed (${response.status})`);
    setPreview(undefined);
    await load();
  };
  return (
    <section data-testid="history">
      <h3>
        History <button type="button" onClick={() => void load()}>Refresh</button>
      </h3>
      {error && <p className="error">{error}</p>}
      {versions?.length === 0 && <p>No versions yet: one is kept every few seconds of editing.</p>}
      <ol className="versions">
        {versions?.map((version) => (
          <li
            key={version.id}
            data-testid="history-version"
            data-version-id={version.id}
            data-created-at={version.createdAt}
          >
            <button
              type="button"
              className="link"
              onClick={() => void show(version.id)}
            >
              {new Date(version.createdAt).toLocaleString()}
            </button>{" "}
            <span className="muted">{version.reason}</span>
            {preview?.id === version.id && (
              <>
                <div className="version-preview" data-testid="version-preview">
                  <SnapshotView copy={preview.copy} />
                </div>
                <button
                  type="button"
                  onClick={() => void restore(version.id)}
                >
                  Restore this version
                </button>
              </>
            )}
          </li>
        ))}
      </ol>
    </section>
  );
}
