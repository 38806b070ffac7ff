/**
 * The signed-in user's files over the user-data channel: create, open, rename, share, delete.
 *
 * @module
 */
import { useState } from "react";
import type { Session } from "./auth.ts";
import { navigate } from "./routes.ts";
import { appLink } from "./server_urls.ts";
import type { FileRow, UserData } from "./user_data.ts";

/** Props of {@link FileList}. */
export interface FileListProps {
  session: Session;
  data: UserData;
}

/** The file list with its actions. */
export function FileList({ session, data }: FileListProps) {
  const [name, setName] = useState("");
  return (
    <section className="card" data-testid="file-list" data-status={data.status}>
      <h2>Your files ({data.status}{data.transport === "zero" ? ", through Zero" : ""})</h2>
      {data.error && <p className="error">{data.error}</p>}
      <form
        onSubmit={(event) => {
          event.preventDefault();
          data.createFile(name.trim() || "Untitled");
          setName("");
        }}
      >
        <input
          aria-label="New file name"
          placeholder="new file name"
          value={name}
          onChange={(event) => setName(event.target.value)}
        />
        <button type="submit">Create file</button>
      </form>
      <FileSection
        title="My files"
        testId="my-files"
        files={byLastEdit(data.files.filter((file) => file.ownerId === session.userId))}
        mine
        data={data}
      />
      {data.files.length === 0 && data.status === "online" && <p>No files yet.</p>}
      <FileSection
        title="Shared with me"
        testId="shared-files"
        files={byLastEdit(data.files.filter((file) => file.ownerId !== session.userId))}
        mine={false}
        data={data}
      />
      {data.deletedFiles.length > 0 && (
        <details data-testid="deleted-files">
          <summary>Recently deleted ({data.deletedFiles.length})</summary>
          <ul>
            {data.deletedFiles.map((file) => (
              <li key={file.id} data-testid="deleted-file" data-file-id={file.id}>
                {file.name || "Untitled"}
                <span className="actions">
                  <button
                    type="button"
                    onClick={() =>
                      data.restoreFile(file.id)}
                  >
                    Restore
                  </button>
                </span>
              </li>
            ))}
          </ul>
        </details>
      )}
    </section>
  );
}

/** Most recently edited first. */
function byLastEdit(files: FileRow[]): FileRow[] {
  return [...files].sort((a, b) => b.updatedAt - a.updatedAt);
}

function FileSection(
  { title, testId, files, mine, data }: {
    title: string;
    testId: string;
    files: FileRow[];
    mine: boolean;
    data: UserData;
  },
) {
  if (files.length === 0) return null;
  return (
    <>
      <h3>{title}</h3>
      <ul data-testid={testId}>
        {files.map((file) => <FileItem key={file.id} file={file} mine={mine} data={data} />)}
      </ul>
    </>
  );
}

/** "5 min ago", "yesterday", or a date. */
function editedAgo(at: number): string {
  const seconds = Math.max(0, (Date.now() - at) / 1000);
  if (seconds < 60) return "just now";
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)} h ago`;
  return new Date(at).toLocaleDateString();
}

function FileItem({ file, mine, data }: { file: FileRow; mine: boolean; data: UserData }) {
  const sharing = file.shared ? file.sharedLinkType : "off";
  return (
    <li data-testid="file-item" data-file-id={file.id}>
      <button
        type="button"
        className="link"
        onClick={() => navigate({ page: "file", fileId: file.id })}
      >
        {file.name || "Untitled"}
      </button>
      <span className="muted" title={new Date(file.updatedAt).toLocaleString()}>
        edited {editedAgo(file.updatedAt)}
      </span>
      {mine
        ? (
          <span className="actions">
            <button
              type="button"
              onClick={() => {
                const name = prompt("Rename file", file.name);
                if (name !== null && name.trim()) data.renameFile(file.id, name.trim());
              }}
            >
              Rename
            </button>
            <select
              aria-label="Sharing"
              value={sharing}
              onChange={(event) =>
                data.shareFile(file.id, event.target.value as "view" | "edit" | "off")}
            >
              <option value="off">private</option>
              <option value="view">anyone with the link can view</option>
              <option value="edit">anyone with the link can edit</option>
            </select>
            {file.shared && <code>{appLink(`/file/${file.id}`)}</code>}
            <button type="button" onClick={() => data.duplicateFile(file)}>Duplicate</button>
            <button
              type="button"
              onClick={() => {
                if (confirm(`Delete "${file.name}"? You can restore it for a while.`)) {
                  data.deleteFile(file.id);
                }
              }}
            >
              Delete
            </button>
          </span>
        )
        : (
          <span className="actions">
            shared with you ({file.sharedLinkType})
            <button type="button" onClick={() => data.duplicateFile(file)}>Duplicate</button>
          </span>
        )}
    </li>
  );
}
