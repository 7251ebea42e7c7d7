/**
 * Sending a write at most once in effect when its answer can be lost.
 *
 * A write whose answer never arrives (timeout, closed connection) may or may not have taken
 * effect. Sending it again blind adds a membership twice if it did (an app that appends to the
 * list holds the value twice; the target's audit trail shows two grants). `sendOnce` reads back
 * instead: after a back-off — time for a write still in flight to land — it asks the target
 * whether the write took effect, and sends it again only if not.
 */
import { setTimeout as sleep } from 'node:timers/promises';

/** How the write ended: answered, or found applied after its answer was lost. */
export type Sent = 'written' | 'landed';

/** The change record's detail for a write found applied after its answer was lost. */
export const LANDED = 'the target applied the write; its answer was lost (read back, not sent again)';

export interface SendOnceOptions {
  /** Sends the write once (the transport must not resend it after a lost answer). */
  write: () => Promise<unknown>;
  /** True when `error` means the write was sent and no answer came back. */
  unanswered: (error: unknown) => boolean;
  /** Reads the target: has the write taken effect? */
  tookEffect: () => Promise<boolean>;
  /** Sends after the first. */
  retries: number;
  /** First back-off before reading back (doubles per attempt, half jitter). */
  baseDelayMs: number;
}

export async function sendOnce(o: SendOnceOptions): Promise<Sent> {
  for (let attempt = 0; ; attempt += 1) {
    try {
      await o.write();
      return 'written';
    } catch (err) {
      if (!o.unanswered(err) || attempt >= o.retries) throw err;
      const ms = o.baseDelayMs * 2 ** attempt;
      await sleep(ms / 2 + Math.random() * (ms / 2));
      if (await o.tookEffect()) return 'landed';
    }
  }
}
