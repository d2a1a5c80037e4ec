import type { Logger } from 'pino';
import type { Listener } from '../db/listener.ts';
import { SQLSTATE, sqlState } from '../db/pg-errors.ts';
import { QUEUE_LOCK_NAMESPACE } from './executor.ts';
import {
  QueueLockWithTimeout,
  WaitingConsumerDelete,
  WaitingConsumerDeleteByListener,
  WaitingConsumerInsert,
} from './sql/index.ts';

/** The NOTIFY channel; the payload is the queue name. Must match holdline.wake() in SQL. */
export const WAKEUP_CHANNEL = 'holdline_ready';

/** Longest a registering consumer waits for senders that may have missed its row. */
const SENDERS_IN_FLIGHT_WAIT_MS = 100;

/**
 * How long a queue's registration outlives its last waiter. A worker's long polls and a
 * stream's waits end and begin again within a millisecond or two while messages flow; without
 * this, each pause between them would delete the row and the next wait insert it again (and
 * wait for senders in flight): three statements per message on a queue fed one at a time.
 * Senders keep notifying for this long after the consumer got busy, a bounded cost.
 */
const REGISTRATION_GRACE_MS = 50;

/**
 * Wake-ups closer together than this make a queue hot: messages are arriving faster than
 * one a HOT_WAKE_GAP_MS (500/s and more).
 */
const HOT_WAKE_GAP_MS = 2;
/**
 * How long a waiter of a hot queue lets its wake-up linger before it looks, so that one
 * receive leases the several messages that commit meanwhile instead of one each: fewer
 * lease transactions per message when it matters, 1 ms more latency only at rates where
 * that is a fraction of the commit itself. A queue's first wake-up after a quiet spell never
 * lingers.
 */
const HOT_WAKE_LINGER_MS = 1;

/** Timings of {@link Wakeups}; the defaults are the constants above. */
export interface WakeupTimings {
  registrationGraceMs?: number;
  hotWakeGapMs?: number;
  hotWakeLingerMs?: number;
}

interface QueueInterest {
  /** Open WaitHandles for the queue in this process. */
  holders: Set<WaitHandle>;
  /** Whether a waiting-consumer row for this queue and our listener pid exists. */
  registered: boolean;
  /** Registration changes for the queue run one after another on the listener connection. */
  sync: Promise<void>;
  /** Pending removal of the registration after the last holder left (REGISTRATION_GRACE_MS). */
  graceTimer: NodeJS.Timeout | undefined;
  /** performance.now() of the queue's last wake-up, to tell a hot queue. */
  lastWakeMs: number;
}

/**
 * Wakes this process's idle consumers when a message may have become deliverable: on a
 * NOTIFY from another transaction's commit, after this process's own commits, and after
 * the LISTEN connection reconnects (anything may have been missed). While a queue has idle
 * consumers here, a waiting-consumer row (keyed by the listener's backend pid)
 * asks senders to NOTIFY; when the last one stops waiting the row goes, and sends to that
 * queue stop paying for NOTIFY. Without a listener, only local wake-ups and polling remain.
 */
export class Wakeups {
  private readonly interests = new Map<string, QueueInterest>();
  private registeredPid: number | undefined;
  private readonly registrationGraceMs: number;
  private readonly hotWakeGapMs: number;
  private readonly hotWakeLingerMs: number;

  constructor(
    private readonly listener: Listener | undefined,
    private readonly logger: Logger,
    timings: WakeupTimings = {},
  ) {
    this.registrationGraceMs = timings.registrationGraceMs ?? REGISTRATION_GRACE_MS;
    this.hotWakeGapMs = timings.hotWakeGapMs ?? HOT_WAKE_GAP_MS;
    this.hotWakeLingerMs = timings.hotWakeLingerMs ?? HOT_WAKE_LINGER_MS;
    listener?.on('notification', (queue) => this.wake(queue));
    listener?.on('connected', (pid) => this.reconnected(pid));
  }

  /**
   * Starts waiting on a queue. Resolves once senders on other connections will notify (the
   * registration is committed), so a consumer that checks the queue after this and finds it
   * empty cannot miss a later commit's wake-up. A failed registration is logged and the
   * handle still works, by local wake-ups and polling.
   */
  async startWaiting(queue: string): Promise<WaitHandle> {
    const interest = this.interest(queue);
    clearTimeout(interest.graceTimer);
    interest.graceTimer = undefined;
    const handle = new WaitHandle(() => this.release(queue, handle));
    interest.holders.add(handle);
    await this.sync(queue, interest);
    return handle;
  }

  /**
   * Wakes every handle waiting on `queue` in this process; on a hot queue (wake-ups less than
   * the hot gap apart) they linger first (HOT_WAKE_GAP_MS, HOT_WAKE_LINGER_MS).
   */
  wake(queue: string): void {
    const interest = this.interests.get(queue);
    if (interest === undefined) return;
    const now = performance.now();
    const lingerMs = now - interest.lastWakeMs < this.hotWakeGapMs ? this.hotWakeLingerMs : 0;
    interest.lastWakeMs = now;
    for (const handle of interest.holders) handle.wake(lingerMs);
  }

  /**
   * Wakes one handle waiting on `queue` in this process, if any: for a single freed slot of
   * a capped queue, which one consumer can take (waking all would send them all to the
   * database for one lease). A handle in its wait is preferred; else a busy one remembers
   * the wake-up for its next wait, so it is never lost.
   */
  wakeOne(queue: string): void {
    const interest = this.interests.get(queue);
    if (interest === undefined) return;
    let chosen: WaitHandle | undefined;
    for (const handle of interest.holders) {
      chosen ??= handle;
      if (handle.waiting) {
        chosen = handle;
        break;
      }
    }
    chosen?.wake();
  }

  /** Removes this process's registrations; call before the listener stops. */
  async stop(): Promise<void> {
    const pid = this.listener?.pid;
    const pending: Promise<void>[] = [];
    for (const interest of this.interests.values()) {
      clearTimeout(interest.graceTimer);
      for (const handle of interest.holders) handle.wake();
      pending.push(interest.sync);
    }
    this.interests.clear();
    // A registration still in flight must not land after the DELETE below.
    await Promise.all(pending);
    if (pid === undefined || this.listener === undefined) return;
    await WaitingConsumerDeleteByListener.runOn(this.listener, [pid]).catch((error: unknown) =>
      this.logger.warn({ err: error }, 'waiting consumers not removed'),
    );
  }

  private interest(queue: string): QueueInterest {
    let interest = this.interests.get(queue);
    if (interest === undefined) {
      interest = {
        holders: new Set(),
        registered: false,
        sync: Promise.resolve(),
        graceTimer: undefined,
        lastWakeMs: -Infinity,
      };
      this.interests.set(queue, interest);
    }
    return interest;
  }

  private release(queue: string, handle: WaitHandle): void {
    const interest = this.interests.get(queue);
    if (interest === undefined || !interest.holders.delete(handle)) return;
    if (interest.holders.size > 0 || interest.graceTimer !== undefined) return;
    interest.graceTimer = setTimeout(() => {
      interest.graceTimer = undefined;
      if (interest.holders.size === 0) void this.sync(queue, interest);
    }, this.registrationGraceMs);
    interest.graceTimer.unref();
  }

  /** Brings the queue's row in line with whether anyone here waits on it. */
  private sync(queue: string, interest: QueueInterest): Promise<void> {
    interest.sync = interest.sync.then(async () => {
      const listener = this.listener;
      const pid = listener?.pid;
      const wanted = interest.holders.size > 0;
      if (listener === undefined || pid === undefined || wanted === interest.registered) {
        if (!wanted && !interest.registered) this.forget(queue, interest);
        return;
      }
      try {
        if (wanted) {
          await WaitingConsumerInsert.runOn(listener, [queue, pid]);
          await this.awaitSendersInFlight(listener, queue);
        } else {
          await WaitingConsumerDelete.runOn(listener, [queue, pid]);
        }
        interest.registered = wanted;
        this.registeredPid = pid;
        if (!wanted) this.forget(queue, interest);
      } catch (error) {
        // Disconnected, most likely: the 'connected' handler registers again.
        this.logger.warn({ err: error, queue }, 'waiting consumer registration failed');
      }
    });
    return interest.sync;
  }

  /**
   * Waits until every transaction that checked for waiting consumers of `queue` before our
   * row was committed has ended (see holdline.wake): they hold the queue lock shared until
   * commit, so taking it exclusively waits for them. Bounded by a lock timeout so a long
   * caller transaction that sent a message cannot stall the consumer (or, queued behind
   * this request, other senders): then the poll interval covers that one message.
   */
  private async awaitSendersInFlight(listener: Listener, queue: string): Promise<void> {
    try {
      await QueueLockWithTimeout.runOn(listener, [
        `${SENDERS_IN_FLIGHT_WAIT_MS}ms`,
        QUEUE_LOCK_NAMESPACE,
        queue,
      ]);
    } catch (error) {
      if (sqlState(error) !== SQLSTATE.lockNotAvailable) throw error;
      this.logger.debug({ queue }, 'senders still in flight; polling covers them');
    }
  }

  private forget(queue: string, interest: QueueInterest): void {
    if (
      interest.holders.size === 0 &&
      !interest.registered &&
      interest.graceTimer === undefined &&
      this.interests.get(queue) === interest
    ) {
      this.interests.delete(queue);
    }
  }

  /** After a (re)connect: the old pid's rows are stale; register again and re-check all. */
  private reconnected(pid: number): void {
    const stalePid = this.registeredPid;
    if (stalePid !== undefined && stalePid !== pid && this.listener !== undefined) {
      WaitingConsumerDeleteByListener.runOn(this.listener, [stalePid]).catch((error: unknown) =>
        this.logger.warn({ err: error }, 'stale waiting consumers not removed'),
      );
    }
    for (const [queue, interest] of this.interests) {
      interest.registered = false;
      void this.sync(queue, interest).then(() => this.wake(queue));
    }
  }
}

/**
 * One consumer's interest in a queue. A wake-up that arrives while the consumer is busy
 * (between its empty receive and its next wait) is remembered, so it is never lost.
 */
export class WaitHandle {
  private woken = false;
  /** The linger of the wake-up remembered or being waited out. */
  private lingerMs = 0;
  private resolveWait: ((woken: boolean) => void) | undefined;
  private lingerTimer: NodeJS.Timeout | undefined;

  constructor(private readonly onRelease: () => void) {}

  /**
   * Waits until woken, `timeoutMs` passes or `signal` aborts; true when woken. A wake-up
   * since the last call returns at once, or after its linger (a hot queue's).
   */
  next(timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
    if (signal?.aborted === true) return Promise.resolve(false);
    if (this.woken && this.lingerMs === 0) {
      this.woken = false;
      return Promise.resolve(true);
    }
    return new Promise<boolean>((resolve) => {
      const finish = (woken: boolean): void => {
        clearTimeout(timer);
        clearTimeout(this.lingerTimer);
        this.lingerTimer = undefined;
        signal?.removeEventListener('abort', onAbort);
        this.resolveWait = undefined;
        this.woken = false;
        this.lingerMs = 0;
        resolve(woken);
      };
      const onAbort = (): void => finish(false);
      const timer = setTimeout(() => finish(false), Math.max(0, timeoutMs));
      signal?.addEventListener('abort', onAbort, { once: true });
      this.resolveWait = finish;
      if (this.woken) this.linger();
    });
  }

  /** True while a next() call is pending. */
  get waiting(): boolean {
    return this.resolveWait !== undefined;
  }

  /** Ends the interest; pending next() calls resolve false. */
  release(): void {
    this.resolveWait?.(false);
    this.onRelease();
  }

  /** @internal called by Wakeups; `lingerMs` > 0 delays the waiter's return by that much. */
  wake(lingerMs = 0): void {
    if (!this.woken) this.lingerMs = lingerMs;
    else this.lingerMs = Math.min(this.lingerMs, lingerMs);
    this.woken = true;
    if (this.resolveWait !== undefined) this.linger();
  }

  /** Resolves the pending wait as woken, now or after the wake-up's linger. */
  private linger(): void {
    if (this.lingerMs === 0) {
      this.resolveWait?.(true);
      return;
    }
    this.lingerTimer ??= setTimeout(() => this.resolveWait?.(true), this.lingerMs);
  }
}
