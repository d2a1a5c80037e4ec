import { randomUUID } from 'node:crypto';
import pg from 'pg';

/** One NOTIFY as a LISTEN client saw it. */
export interface SeenNotification {
  channel: string;
  payload: string;
}

/** Channel of the markers that {@link NotificationCollector.sync} sends to itself. */
const BARRIER_CHANNEL = 'holdline_test_barrier';

/** How long a collector waits for a notification before failing the test. */
const NOTIFICATION_TIMEOUT_MS_DEFAULT = 5_000;

/**
 * A LISTEN connection of its own that records every notification on its channels, so a
 * test can assert what was (and was not) sent, independently of the code under test.
 */
export class NotificationCollector {
  /** Every notification seen so far on the listened channels, in arrival order. */
  readonly seen: SeenNotification[] = [];
  private readonly waiters = new Set<(n: SeenNotification) => void>();

  private constructor(private readonly client: pg.Client) {
    client.on('notification', (message) => {
      const notification = { channel: message.channel, payload: message.payload ?? '' };
      if (notification.channel !== BARRIER_CHANNEL) this.seen.push(notification);
      for (const waiter of [...this.waiters]) waiter(notification);
    });
  }

  /** Connects to `url` and listens on `channels`. */
  static async listen(url: string, channels: readonly string[]): Promise<NotificationCollector> {
    const client = new pg.Client({ connectionString: url, application_name: 'holdline-test' });
    await client.connect();
    for (const channel of [...channels, BARRIER_CHANNEL]) {
      await client.query(`LISTEN ${client.escapeIdentifier(channel)}`);
    }
    return new NotificationCollector(client);
  }

  /** Payloads seen on `channel`. */
  payloads(channel: string): string[] {
    return this.seen.filter((n) => n.channel === channel).map((n) => n.payload);
  }

  /**
   * Resolves with the first notification (already seen or arriving later) that matches;
   * rejects after `timeoutMs`.
   */
  next(
    match: (n: SeenNotification) => boolean,
    timeoutMs = NOTIFICATION_TIMEOUT_MS_DEFAULT,
  ): Promise<SeenNotification> {
    const earlier = this.seen.find(match);
    if (earlier !== undefined) return Promise.resolve(earlier);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(new Error(`no matching notification within ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter = (n: SeenNotification): void => {
        if (!match(n)) return;
        clearTimeout(timer);
        this.waiters.delete(waiter);
        resolve(n);
      };
      this.waiters.add(waiter);
    });
  }

  /**
   * Resolves once every notification committed before this call has arrived. PostgreSQL
   * delivers notifications of different transactions in commit order, so a marker NOTIFY
   * committed now arrives after all of them: "nothing was sent" becomes an awaited fact
   * instead of a sleep.
   */
  async sync(): Promise<void> {
    const marker = randomUUID();
    const arrived = this.next((n) => n.channel === BARRIER_CHANNEL && n.payload === marker);
    await this.client.query('SELECT pg_notify($1, $2)', [BARRIER_CHANNEL, marker]);
    await arrived;
  }

  async close(): Promise<void> {
    await this.client.end();
  }
}

/** Default limit of {@link pollUntil}. */
const POLL_TIMEOUT_MS_DEFAULT = 5_000;
const POLL_STEP_MS = 10;

/**
 * Checks `condition` every few milliseconds until it holds, and fails after `timeoutMs`:
 * for state that changes in the background (a registration row, a reconnect) and has no
 * event to await.
 */
export async function pollUntil(
  what: string,
  condition: () => boolean | Promise<boolean>,
  timeoutMs = POLL_TIMEOUT_MS_DEFAULT,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, POLL_STEP_MS));
  }
}
