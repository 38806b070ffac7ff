/**
 * The file sidebar beside a file's board, as on tldraw.com: the user's files and the files shared
 * with them, most recently edited first (pinned ones above), the open one marked; a new file,
 * rename in place, pin, duplicate, and delete with an undo while the file can still be restored. Everything goes through
 * the user's data (the user-data channel, or Zero).
 *
 * @module
 */
import { useEffect, useState } from "react";
import { navigate } from "./routes.ts";
import type { FileRow, UserData } from "./user_data.ts";

/** How long the undo of a delete is offered (the server keeps the file far longer). */
const UNDO_MS = 10_000;

/** Props of {@link FileSidebar}. */
export interface FileSidebarProps {
  userId: string;
  currentFileId: string;
  data: UserData;
}

/** The sidebar. */
export function FileSidebar({ userId, currentFileId, data }: FileSidebarProps) {
  const [deleted, setDeleted] = useState<FileRow>();
  useEffect(() => {
    if (!deleted) return;
    const timer = setTimeout(() => setDeleted(undefined), UNDO_MS);
    return () => clearTimeout(timer);
  }, [deleted]);
  const byLastEdit = (files: FileRow[]) => [...files].sort((a, b) => b.updatedAt - a.updatedAt);
  const pinned = byLastEdit(data.files.filter((file) => file.isPinned));
  const unpinned = data.files.filter((file) => !file.isPinned);
  const mine = byLastEdit(unpinned.filter((file) => file.ownerId === userId));
  const shared = byLastEdit(unpinned.filter((file) => file.ownerId !== userId));
  const item = (file: FileRow) => (
    <SidebarItem
      key={file.id}
      file={file}
      current={file.id === currentFileId}
      mine={file.ownerId === userId}
      data={data}
      onDelete={() => {
        data.deleteFile(file.id);
        setDeleted(file);
      }}
    />
  );
  return (
    <nav className="file-sidebar" data-testid="file-sidebar">
      <button
        type="button"
        onClick={() => navigate({ page: "file", fileId: data.createFile("Untitled") })}
      >
        + New file
      </button>
      {pinned.length > 0 && (
        <>
          <h3>Pinned</h3>
          <ul data-testid="sidebar-pinned">{pinned.map(item)}</ul>
        </>
      )}
      <h3>My files</h3>
      <ul data-testid="sidebar-mine">{mine.map(item)}</ul>
      {shared.length > 0 && (
        <>
          <h3>Shared with me</h3>
          <ul data-testid="sidebar-shared">{shared.map(item)}</ul>
        </>
      )}
      {deleted && (
        <div className="undo" role="status" data-testid="undo-delete">
          Deleted "{deleted.name || "Untitled"}"{" "}
          <button
            type="button"
            onClick={() => {
              data.restoreFile(deleted.id);
              setDeleted(undefined);
            }}
          >
            Undo
          </button>
        </div>
      )}
    </nav>
  );
}

function SidebarItem(
  { file, current, mine, data, onDelete }: {
    file: FileRow;
    current: boolean;
    mine: boolean;
    data: UserData;
    onDelete: () => void;
  },
) {
  const [editing, setEditing] = useState(false);
  const [name, setName] = useState(file.name);
  const finish = (save: boolean) => {
    setEditing(false);
    if (save && name.trim() && name.trim() !== file.name) data.renameFile(file.id, name.trim());
  };
  return (
    <li
      className={current ? "current" : undefined}
      data-testid="sidebar-file"
      data-file-id={file.id}
    >
      {editing
        ? (
          <input
            aria-label="File name"
            autoFocus
            value={name}
            onChange={(event) => setName(event.target.value)}
            onBlur={() => finish(true)}
            onKeyDown={(event) => {
              if (event.key === "Enter") finish(true);
              if (event.key === "Escape") finish(false);
            }}
          />
        )
        : (
          <button
            type="button"
            className="link"
            onClick={() => navigate({ page: "file", fileId: file.id })}
            onDoubleClick={() => {
              if (!mine) return;
              setName(file.name);
              setEditing(true);
            }}
            title={`edited ${new Date(file.updatedAt).toLocaleString()}`}
          >
            {file.name || "Untitled"}
          </button>
        )}
      <time className="muted" dateTime={new Date(file.updatedAt).toISOString()}>
        {editedAgo(file.updatedAt)}
      </time>
      <span className="item-actions">
        {mine && (
          <button
            type="button"
            aria-label="Rename"
            onClick={() => {
              setName(file.name);
              setEditing(true);
            }}
          >
            ✎
          </button>
        )}
        <button
          type="button"
          aria-label={file.isPinned ? "Unpin" : "Pin"}
          aria-pressed={file.isPinned === true}
          onClick={() => data.pinFile(file.id, !file.isPinned)}
        >
          {file.isPinned ? "unpin" : "pin"}
        </button>
        <button type="button" aria-label="Duplicate" onClick={() => data.duplicateFile(file)}>
          copy
        </button>
        {mine && !current && (
          <button type="button" aria-label="Delete" onClick={onDelete}>
            ✕
          </button>
        )}
      </span>
    </li>
  );
}

/** "just now", "5 min ago", "3 h ago", or the date: when the file was last edited. */
function editedAgo(at: number): string {
  const seconds = (Date.now() - at) / 1000;
  if (seconds < 60) return "just now";
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)} h ago`;
  return new Date(at).toLocaleDateString();
}
