/**
 * LiveStore's HTTP transport: each `POST` carries one Effect RPC `Request` (`SyncHttpRpc.Ping|Pull|Push`)
 * and is answered with a JSON array of server frames (`Chunk`s, then the `Exit`). The client simulates
 * live pulls by polling, so pulls here always end.
 *
 * @module
 */
import { exitFrame, type LivestoreEngine } from "./engine.ts";
import type { HookContext } from "./hooks.ts";
import {
  describeZodError,
  frames,
  PingPayloadSchema,
  RequestFrameSchema,
  RPC_TAGS,
  type ServerFrame,
  syncErrors,
} from "./wire.ts";

/**
 * Answers the frames in `body` (one Request object, or an array of them) with the JSON text of the
 * response array.
 */
export async function handleHttpRpc(
  engine: LivestoreEngine,
  context: HookContext,
  body: unknown,
): Promise<string> {
  const requests = Array.isArray(body) ? body : [body];
  // Frames as JSON text: pull chunks arrive pre-encoded and are spliced in as they are.
  const parts: string[] = [];
  const out = { push: (frame: ServerFrame) => parts.push(JSON.stringify(frame)) };
  for (const raw of requests) {
    const parsed = RequestFrameSchema.safeParse(raw);
    if (!parsed.success) {
      out.push(frames.defect(`malformed request: ${describeZodError(parsed.error)}`));
      continue;
    }
    const { id, tag, payload } = parsed.data;
    switch (tag) {
      case RPC_TAGS.httpPing: {
        const ping = PingPayloadSchema.safeParse(payload);
        if (!ping.success) out.push(frames.die(id, describeZodError(ping.error)));
        else if (ping.data.storeId !== context.storeId) {
          out.push(frames.failure(id, syncErrors.unknown("storeId does not match the request")));
        } else out.push(frames.success(id, { _tag: "SyncMessage.Pong" }));
        break;
      }
      case RPC_TAGS.httpPull: {
        const prefix = `{"_tag":"Chunk","requestId":${JSON.stringify(id)},"values":[`;
        const result = await engine.pull(context, payload, {
          send: (json) => parts.push(`${prefix}${json}]}`),
          ready: () => Promise.resolve(),
          closed: false,
        }, { allowLive: false });
        if ("outcome" in result) out.push(exitFrame(id, result.outcome));
        else result.live.close();
        break;
      }
      case RPC_TAGS.httpPush:
        await engine.push(context, payload, (outcome) => out.push(exitFrame(id, outcome)));
        break;
      default:
        out.push(frames.die(id, `Unknown request tag: ${tag}`));
    }
  }
  return `[${parts.join(",")}]`;
}
