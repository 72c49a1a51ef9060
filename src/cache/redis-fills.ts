/**
 * The single flight's notifications across instances: a lock holder publishes the value it filled
 * on the key's channel (an empty message: "compute it yourselves"), and every waiter of this
 * process subscribed to that channel takes the value from the message. One SUBSCRIBE per channel
 * however many waiters it has.
 */
import type { Redis } from 'ioredis';

/** One waiter on one channel. */
export interface FillWaiter {
  /** The SUBSCRIBE of the channel: a message published before it is active would be lost. */
  readonly subscribed: Promise<unknown>;
  /** The published value, or null (empty message, or `resolve(null)` by a timer, an abort, a lost connection). */
  readonly value: Promise<Uint8Array | null>;
  resolve(value: Uint8Array | null): void;
  /** Stops waiting; the UNSUBSCRIBE to track when it was the channel's last waiter. */
  leave(): Promise<unknown> | null;
}

export class FillNotifications {
  private readonly waiters = new Map<string, Set<(value: Uint8Array | null) => void>>();
  /** The SUBSCRIBE of each channel with waiters: every waiter (not only the first) awaits it before its peek. */
  private readonly subscriptions = new Map<string, Promise<unknown>>();

  /** `sub`: a connection of its own (a subscribed connection takes no other commands). */
  constructor(private readonly sub: Redis) {
    sub.on('messageBuffer', (channel: Buffer, message: Buffer) => this.onMessage(channel.toString(), message));
  }

  get ready(): boolean {
    return this.sub.status === 'ready';
  }

  listen(channel: string): FillWaiter {
    let resolveWait!: (v: Uint8Array | null) => void;
    const value = new Promise<Uint8Array | null>((r) => {
      resolveWait = r;
    });
    let found = this.waiters.get(channel);
    if (!found) {
      found = new Set();
      this.waiters.set(channel, found);
      this.subscriptions.set(channel, this.sub.subscribe(channel));
    }
    const set = found;
    const subscribed = this.subscriptions.get(channel)!;
    set.add(resolveWait);
    return {
      subscribed,
      value,
      resolve: resolveWait,
      leave: () => {
        set.delete(resolveWait);
        if (set.size === 0 && this.waiters.get(channel) === set) {
          this.waiters.delete(channel);
          this.subscriptions.delete(channel);
          if (this.sub.status === 'ready') return this.sub.unsubscribe(channel).catch(() => {});
        }
        return null;
      },
    };
  }

  /** No fill can arrive any more (a connection gone, the store closed): every waiter computes for itself. */
  releaseAll(): void {
    for (const set of this.waiters.values()) for (const w of [...set]) w(null);
  }

  private onMessage(channel: string, message: Buffer): void {
    const set = this.waiters.get(channel);
    if (!set) return;
    for (const w of [...set]) w(message.length === 0 ? null : message);
  }
}
