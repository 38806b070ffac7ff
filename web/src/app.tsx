/**
 * The app's shell: the home page (room picker, sign-in, file list) or a board, by hash route.
 *
 * @module
 */
import { useEffect, useState } from "react";
import { Board } from "./board.tsx";
import { FileList } from "./file_list.tsx";
import { RoomPicker } from "./room_picker.tsx";
import { type Session, useSession } from "./auth.ts";
import { useRoute } from "./routes.ts";
import { appLink, fileSocketUrl, roomSocketUrl } from "./server_urls.ts";
import { type UserData, useUserData } from "./user_data.ts";

/** The whole app. */
export function App() {
  const route = useRoute();
  const { session, signIn, signOut } = useSession();
  // Connected on every page, so the file list is current when the user comes back to it.
  const data = useUserData(session);
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
      if (!session) return <Home session={session} signIn={signIn} signOut={signOut} data={data} />;
      return (
        <Board
          key={route.fileId}
          uri={fileSocketUrl(route.fileId, session.token)}
          title={data.files.find((file) => file.id === route.fileId)?.name ?? "file"}
          links={[{ label: "share", href: appLink(`/file/${encodeURIComponent(route.fileId)}`) }]}
        />
      );
    case "home":
      return <Home session={session} signIn={signIn} signOut={signOut} data={data} />;
  }
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
}

function Home({ session, signIn, signOut, data }: HomeProps) {
  return (
    <main className="home">
      <h1>deno-sync whiteboard</h1>
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

/** "Sign in as": the dev identity provider issues a token for any user id. */
function SignIn({ signIn }: { signIn: HomeProps["signIn"] }) {
  const [userId, setUserId] = useState("");
  const [error, setError] = useState<string>();
  return (
    <section className="card">
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
