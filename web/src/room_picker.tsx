/**
 * The home page's public-room part: create a random room or join one by id.
 *
 * @module
 */
import { useState } from "react";
import { navigate } from "./routes.ts";

/** A random, URL-safe room id that is hard to guess (public rooms are open to anyone with the id). */
export function randomRoomId(): string {
  return crypto.randomUUID().replaceAll("-", "").slice(0, 16);
}

/** Create / join form. */
export function RoomPicker() {
  const [roomId, setRoomId] = useState("");
  return (
    <section className="card">
      <h2>Public rooms</h2>
      <p>Anyone with a room's link can draw in it; the read-only link only lets people watch.</p>
      <button
        type="button"
        data-testid="create-room"
        onClick={() => navigate({ page: "room", roomId: randomRoomId(), readonly: false })}
      >
        New room
      </button>
      <form
        onSubmit={(event) => {
          event.preventDefault();
          const id = roomId.trim();
          if (id) navigate({ page: "room", roomId: id, readonly: false });
        }}
      >
        <input
          aria-label="Room id"
          placeholder="room id"
          value={roomId}
          onChange={(event) => setRoomId(event.target.value)}
        />
        <button type="submit">Join</button>
      </form>
    </section>
  );
}
