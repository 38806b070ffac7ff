/**
 * Attribution of deliveries to pushes, for push → all-peers latency. Every push carries its pusher's
 * sequence number inside the record it changes; a peer that sees sequence `s` of a pusher has, by
 * per-session ordering, also received every earlier push of that pusher (a server may merge patches,
 * so intermediate values need not arrive one by one). A push's fan-out completes when its last peer
 * has seen it.
 *
 * @module
 */
import { LatencySample } from "./latency_stats.ts";

/** Where one phase's measurements go; pushes sent outside a phase (warm-up, setup) have none. */
export class PhaseSink {
  readonly ack = new LatencySample();
  readonly fanout = new LatencySample();
  deliveries = 0;
  frames = 0;
  sent = 0;
  pendingAcks = 0;
  pendingFanouts = 0;
  rebases = 0;
  discards = 0;
}

interface PendingPush {
  sentAt: number;
  remaining: number;
  sink: PhaseSink | null;
}

/** Tracks fan-out of every pusher's pushes to its room's other clients. */
export class FanoutTracker {
  readonly #pending = new Map<number, Map<number, PendingPush>>();
  readonly #lastSeen = new Map<number, Map<number, number>>();

  /** Pusher `pusher` sent its push `seq` at `now`, to be seen by `peers` other clients. */
  sent(pusher: number, seq: number, peers: number, sink: PhaseSink | null, now: number): void {
    if (peers <= 0) return;
    let pending = this.#pending.get(pusher);
    if (!pending) this.#pending.set(pusher, pending = new Map());
    pending.set(seq, { sentAt: now, remaining: peers, sink });
    if (sink) sink.pendingFanouts++;
  }

  /** Client `receiver` has seen pusher `pusher`'s state at sequence `seq`. */
  seen(receiver: number, pusher: number, seq: number, now: number): void {
    let seenBy = this.#lastSeen.get(pusher);
    if (!seenBy) this.#lastSeen.set(pusher, seenBy = new Map());
    const last = seenBy.get(receiver) ?? 0;
    if (seq <= last) return;
    seenBy.set(receiver, seq);
    const pending = this.#pending.get(pusher);
    if (!pending) return;
    for (let s = last + 1; s <= seq; s++) {
      const push = pending.get(s);
      if (!push) continue;
      push.remaining--;
      if (push.sink) push.sink.deliveries++;
      if (push.remaining === 0) {
        pending.delete(s);
        if (push.sink) {
          push.sink.fanout.add(now - push.sentAt);
          push.sink.pendingFanouts--;
        }
      }
    }
  }
}
