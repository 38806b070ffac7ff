/**
 * The app's shell: the home page (room picker, sign-in, file list) or a board, by hash route.
 *
 * @module
 */
import { useEffect, useState } from "react";
import { Board } from "./board.tsx";
import { FileList } from "./file_list.tsx";
import { FilePanel } from "./file_panel.tsx";
import { FileSidebar } from "./file_sidebar.tsx";
import { AdminPage } from "./admin_page.tsx";
import { PublishedPage } from "./snapshot_view.tsx";
import { RoomPicker } from "./room_picker.tsx";
import { type Session, useSession } from "./auth.ts";
import { useRoute } from "./routes.ts";
import { appLink, fileSocketUrl, roomSocketUrl } from "./server_urls.ts";
import { type UserData, useUserData } from "./user_data.ts";
import { useClientConfig } from "./client_config.ts";
import { useZeroData } from "./zero_data.ts";

/** The whole app. */
export function App() {
  const route = useRoute();
  const { session, signIn, signOut } = useSession();
  const config = useClientConfig();
  // Files sync through Zero when the server has a zero-cache, through the user-data channel
  // otherwise; connected on every page, so the list is current when the user comes back to it.
  const zeroUrl = config?.zero.cacheUrl ?? undefined;
  const channel = useUserData(config && !zeroUrl ? session : undefined);
  const zero = useZeroData(config && zeroUrl ? session : undefined, zeroUrl);
  const data = zeroUrl ? zero : channel;
  switch (route.page) {
    case "room":
      return (
        <RoomBoard
          key={`${route.readonly}:${route.roomId}`}
          roomId={route.roomId}
          readonly={route.readonly}
        />
      );
    case "file":
      if (!session) {
        // The link stays in the address bar: once signed in, the same page opens the file.
        return (
          <Home
            session={session}
            signIn={signIn}
            signOut={signOut}
            data={data}
            notice="This link opens a file. Sign in to open it: it opens as soon as you have."
          />
        );
      }
      return (
        <FileBoard
          key={route.fileId}
          fileId={route.fileId}
          session={session}
          data={data}
        />
      );
    case "admin":
      return <AdminPage session={session} />;
    case "published":
      return <PublishedPage key={route.slug} slug={route.slug} />;
    case "home":
      return <Home session={session} signIn={signIn} signOut={signOut} data={data} />;
  }
}

/**
 * A file's board. Its title is the file's name: from the user's own list, or (a guest's first
 * visit, before the list has it) from the file's metadata.
 */
function FileBoard(
  { fileId, session, data }: { fileId: string; session: Session; data: UserData },
) {
  const token = session.token;
  const file = data.files.find((row) => row.id === fileId);
  const listedName = file?.name;
  const [metaName, setMetaName] = useState<string>();
  useEffect(() => {
    if (listedName !== undefined) return;
    let cancelled = false;
    fetch(`/app/file/${encodeURIComponent(fileId)}/meta`, {
      headers: { authorization: `Bearer ${token}` },
    }).then((response) => response.ok ? response.json() : undefined)
      .then((meta?: { name: string }) => !cancelled && meta && setMetaName(meta.name))
      .catch(() => {});
    return () => {
      cancelled = true;
    };
  }, [fileId, token, listedName]);
  const name = listedName ?? metaName;
  return (
    <Board
      uri={fileSocketUrl(fileId, token)}
      uploads={{ kind: "file", fileId, token }}
      title={name === undefined ? "…" : name || "Untitled"}
      links={[{ label: "share", href: appLink(`/file/${encodeURIComponent(fileId)}`) }]}
      sidebar={<FileSidebar userId={session.userId} currentFileId={fileId} data={data} />}
      panel={
        <FilePanel
          fileId={fileId}
          token={token}
          file={file}
          mine={file?.ownerId === session.userId}
          data={data}
        />
      }
    />
  );
}

/**
 * A public room. Its read-only link carries the room's read-only id (from the server), never the
 * room's own id, so it cannot be turned into an edit link; a read-only page shows only that link.
 */
function RoomBoard({ roomId, readonly }: { roomId: string; readonly: boolean }) {
  const [readonlyId, setReadonlyId] = useState<string | undefined>(readonly ? roomId : undefined);
  useEffect(() => {
    if (readonly) return;
    let cancelled = false;
    readonlySlug(roomId).then((slug) => !cancelled && setReadonlyId(slug), () => {});
    return () => {
      cancelled = true;
    };
  }, [roomId, readonly]);
  const links = [
    ...(readonly ? [] : [{ label: "share", href: appLink(`/r/${encodeURIComponent(roomId)}`) }]),
    ...(readonlyId
      ? [{ label: "read-only", href: appLink(`/ro/${encodeURIComponent(readonlyId)}`) }]
      : []),
  ];
  return (
    <Board
      uri={roomSocketUrl(roomId, readonly)}
      uploads={readonly ? { kind: "none" } : { kind: "room", roomId }}
      title={readonly ? "room (read-only)" : `room ${roomId}`}
      links={links}
    />
  );
}

/** The room's read-only id, from `GET /readonly-slug/:roomId`. */
async function readonlySlug(roomId: string): Promise<string> {
  const response = await fetch(`/readonly-slug/${encodeURIComponent(roomId)}`);
  if (!response.ok) throw new Error(`readonly-slug: ${response.status}`);
  return ((await response.json()) as { slug: string }).slug;
}

interface HomeProps {
  session: Session | undefined;
  signIn(userId: string, name: string): Promise<void>;
  signOut(): void;
  data: UserData;
  /** Shown above everything (e.g. why a link brought the visitor here). */
  notice?: string;
}

function Home({ session, signIn, signOut, data, notice }: HomeProps) {
  return (
    <main className="home">
      <h1>deno-sync whiteboard</h1>
      {notice && <p className="notice" data-testid="notice">{notice}</p>}
      <RoomPicker />
      {session
        ? (
          <>
            <p>
              Signed in as <strong>{session.name}</strong> ({session.userId}){" "}
              <button type="button" onClick={signOut}>Sign out</button>
            </p>
            <FileList session={session} data={data} />
          </>
        )
        : <SignIn signIn={signIn} />}
    </main>
  );
}

/**
 * Signing in: "sign in as" with the development identity provider; with a real identity provider,
 * a link to its sign-in page; with neither, what an operator has to set up.
 */
function SignIn({ signIn }: { signIn: HomeProps["signIn"] }) {
  const config = useClientConfig();
  if (config && !config.auth.devIdentityProvider) {
    const url = config.auth.signInUrl;
    return (
      <section className="card" data-testid="sign-in">
        <h2>Your files</h2>
        {url
          ? (
            <p>
              <a
                href={`${url}${url.includes("?") ? "&" : "?"}redirect_url=${
                  encodeURIComponent(location.href)
                }`}
              >
                Sign in
              </a>{" "}
              to keep files of your own.
            </p>
          )
          : (
            <p>
              Signing in is not set up on this server yet. Its operator connects an identity
              provider (see "Sign-in" in the deployment guide, docs/deploy.md); public rooms work
              without it.
            </p>
          )}
      </section>
    );
  }
  return <DevSignIn signIn={signIn} />;
}

/** "Sign in as": the dev identity provider issues a token for any user id. */
function DevSignIn({ signIn }: { signIn: HomeProps["signIn"] }) {
  const [userId, setUserId] = useState("");
  const [error, setError] = useState<string>();
  return (
    <section className="card" data-testid="sign-in">
      <h2>Your files</h2>
      <p>Sign in with the development identity provider to keep files of your own.</p>
      <form
        onSubmit={(event) => {
          event.preventDefault();
          const id = userId.trim();
          if (id) signIn(id, id).catch((e: Error) => setError(e.message));
        }}
      >
        <input
          aria-label="User id"
          placeholder="user id, e.g. alice"
          value={userId}
          onChange={(event) => setUserId(event.target.value)}
        />
        <button type="submit">Sign in as</button>
      </form>
      {error && <p className="error">{error}</p>}
    </section>
  );
}
