import type { Logger } from 'pino';
import { linkAbortSignals } from '../abort-signals.ts';
import { LIST_MESSAGES_FIRST_MAX, QueueError } from '../queue/index.ts';
import type { Delivery, QueueEngine, WaitHandle } from '../queue/index.ts';
import { pause } from './abortable-iterator.ts';
import type { DeliveryTracker } from './delivery-tracker.ts';

/** Largest `prefetch` a deliveries subscription may ask for (as receive's max). */
export const PREFETCH_MAX = 1000;

/** The error text a released delivery gets (visible as the message's lastError). */
export const DISCONNECTED_ERROR = 'subscriber disconnected';

/** Options of {@link streamDeliveries}. */
export interface DeliveryStreamOptions {
  engine: QueueEngine;
  tracker: DeliveryTracker;
  logger: Logger;
  queue: string;
  /** Most unacknowledged deliveries at a time, 1 to {@link PREFETCH_MAX}. */
  prefetch: number;
  /** Lease length per delivery; null: the queue's visibilityTimeout. */
  visibilityTimeoutSeconds: number | null;
}

/** What a subscription remembers of a delivery it handed out and that is not settled yet. */
interface Outstanding {
  messageId: string;
  /** attempts at our delivery: a later lease of the message (someone else's) has more. */
  attempts: number;
}

/**
 * The deliveries of one subscription, with RabbitMQ basic.qos semantics: never more than
 * `prefetch` unsettled deliveries outstanding. It leases up to (prefetch − outstanding)
 * messages, yields them one at a time (the transport's pull paces it), and leases more only
 * as earlier deliveries settle. It learns of settlement two ways:
 * - at once, from the tracker, for acks, nacks and lost leases seen by this instance;
 * - every poll interval, by looking its outstanding messages up, for acks made on another
 *   instance and for leases that were reaped (a lost lease frees the slot too).
 * When idle (slots free, queue empty) it waits on the engine's wake-ups with the poll
 * interval as a safety net, never busy-polling; when full it holds no wait registration,
 * so senders to the queue do not pay for a NOTIFY on its behalf.
 *
 * When `signal` aborts (the subscriber went away) every outstanding delivery is nacked with
 * delay 0 and error {@link DISCONNECTED_ERROR}, so other consumers get it at once instead
 * of after the lease. That nack counts as a failed attempt, and a message on its last
 * attempt is dead-lettered: the same count a receive whose lease expired gets, and how SQS
 * (ApproximateReceiveCount) and RabbitMQ (x-delivery-count on quorum queues) count
 * redeliveries to consumers that vanished.
 */
export async function* streamDeliveries(
  options: DeliveryStreamOptions,
  signal: AbortSignal,
): AsyncGenerator<Delivery, void, undefined> {
  const { engine, queue, prefetch, logger } = options;
  const pollMs = engine.pollInterval;
  const outstanding = new Map<string, Outstanding>();

  // A settlement (or a subscriber leaving) must end the current wait, and one that arrives
  // while no wait is open must not be lost: `nudged` remembers it until the next wait.
  let nudged: boolean;
  let waking: AbortController | undefined;
  const nudge = (): void => {
    nudged = true;
    waking?.abort();
  };
  // Only a full stream waits for a slot to free. One with slots free is waiting for messages,
  // which a settlement does not bring: waking it would cost an empty receive per ack.
  const stopTracking = options.tracker.onSettled((receipt) => {
    const wasFull = outstanding.size >= prefetch;
    if (outstanding.delete(receipt) && wasFull) nudge();
  });

  let handle: WaitHandle | undefined;
  let lastCheck = Date.now();
  try {
    while (!signal.aborted && !engine.stopping) {
      try {
        nudged = false;
        const free = prefetch - outstanding.size;
        if (free > 0) {
          const deliveries = await engine.receive({
            queue,
            max: free,
            visibilityTimeoutSeconds: options.visibilityTimeoutSeconds,
          });
          // Recorded before anything is yielded, so a disconnect between yields still
          // releases the ones not handed out yet.
          for (const d of deliveries) {
            outstanding.set(d.receipt, { messageId: d.message.id, attempts: d.message.attempts });
          }
          if (deliveries.length > 0) {
            for (const delivery of deliveries) {
              if (signal.aborted) break;
              yield delivery;
            }
            // A short batch means the queue had no more deliverable messages a moment ago.
            // While registered, a commit since then has woken the handle (a wake-up is
            // remembered), so wait on it instead of running an empty receive after every
            // delivery of a stream fed one message at a time.
            if (deliveries.length === free || handle === undefined) continue;
          } else if (handle === undefined) {
            // Registered first, then looked again: a commit after that look wakes the handle.
            handle = await engine.startWaiting(queue);
            continue;
          }
        } else if (handle !== undefined) {
          // Full: this consumer is busy, not idle, so senders need not notify for it.
          handle.release();
          handle = undefined;
        }

        const untilCheck = outstanding.size > 0 ? lastCheck + pollMs - Date.now() : pollMs;
        if (!nudged && untilCheck > 0) {
          waking = new AbortController();
          const wait = linkAbortSignals([signal, waking.signal]);
          try {
            if (handle !== undefined) await handle.next(untilCheck, wait.signal);
            else await pause(untilCheck, wait.signal);
          } finally {
            wait.dispose();
          }
          waking = undefined;
        }
        if (outstanding.size > 0 && Date.now() - lastCheck >= pollMs) {
          lastCheck = Date.now();
          await dropSettled(engine, queue, outstanding);
        }
      } catch (error) {
        waking = undefined;
        if (engine.stopping || signal.aborted) break;
        // A database hiccup must not end every subscription: wait a poll interval, go on.
        if (error instanceof QueueError && error.code === 'UNAVAILABLE') {
          logger.warn({ err: error.cause ?? error, queue }, 'deliveries: database unavailable');
          await pause(pollMs, signal);
          continue;
        }
        throw error;
      }
    }
  } finally {
    stopTracking();
    handle?.release();
    await release(engine, logger, queue, outstanding);
  }
}

/**
 * Forgets outstanding deliveries that are settled elsewhere: the message is gone (acked,
 * purged), in another queue (dead-lettered), no longer leased (nacked, reaped), or leased
 * again with more attempts (someone else's delivery now). One statement per page of the
 * queue's leased messages from our oldest outstanding one on, usually a single page.
 */
async function dropSettled(
  engine: QueueEngine,
  queue: string,
  outstanding: Map<string, Outstanding>,
): Promise<void> {
  const ours = [...outstanding.entries()].sort((a, b) =>
    compareIds(a[1].messageId, b[1].messageId),
  );
  const first = ours[0];
  const last = ours[ours.length - 1];
  if (first === undefined || last === undefined) return;
  const leased = new Map<string, number>();
  let after = (BigInt(first[1].messageId) - 1n).toString();
  for (;;) {
    const page = await engine.listMessages({
      queue,
      state: 'LEASED',
      after: after === '0' ? null : after,
      first: LIST_MESSAGES_FIRST_MAX,
    });
    for (const m of page) leased.set(m.id, m.attempts);
    const end = page[page.length - 1];
    if (end === undefined || page.length < LIST_MESSAGES_FIRST_MAX) break;
    if (compareIds(end.id, last[1].messageId) >= 0) break;
    after = end.id;
  }
  for (const [receipt, delivery] of ours) {
    if (leased.get(delivery.messageId) !== delivery.attempts) outstanding.delete(receipt);
  }
}

/** Nacks what the subscriber still held, so it is deliverable again at once. */
async function release(
  engine: QueueEngine,
  logger: Logger,
  queue: string,
  outstanding: Map<string, Outstanding>,
): Promise<void> {
  const receipts = [...outstanding.keys()];
  outstanding.clear();
  const results = await Promise.allSettled(
    receipts.map((receipt) => engine.nack(receipt, { delaySeconds: 0, error: DISCONNECTED_ERROR })),
  );
  for (const result of results) {
    // LEASE_LOST: it was settled meanwhile (acked elsewhere, or reaped); nothing to give back.
    if (
      result.status === 'rejected' &&
      !(result.reason instanceof QueueError && result.reason.code === 'LEASE_LOST')
    ) {
      logger.warn({ err: result.reason, queue }, 'deliveries: release on disconnect failed');
    }
  }
}

/** Orders decimal bigint ids numerically. */
function compareIds(a: string, b: string): number {
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
}
