/**
 * Delivery latency of numbered messages, producer and consumer in this process on one clock
 * (nowMs): when each send returned (its commit), when a handler first got it, and the send
 * time the payload carries (see paced-producer.ts).
 */
import { nowMs, waitUntil } from './clock.ts';
import { summariseLatencies } from './stats.ts';
import type { LatencySummary } from './stats.ts';

/** Latencies of a set of messages. */
export interface DeliveryLatencySummary {
  /** Messages in the set that a handler got. */
  handled: number;
  /**
   * From the producer's send returning (COMMIT done) to the handler being called. Slightly
   * negative when the consumer got the message before the producer's await resumed.
   */
  commitToHandlerMs: LatencySummary;
  /** From the send's start (the time in the payload) to the handler: adds the commit. */
  sendToHandlerMs: LatencySummary;
}

/** Records commits and first deliveries of messages 0 … capacity − 1. */
export class DeliveryLatencies {
  private readonly committedAt: Float64Array;
  private readonly sentAt: Float64Array;
  private readonly handledAt: Float64Array;
  private handledCount = 0;
  private duplicateCount = 0;
  private foreignCount = 0;

  constructor(readonly capacity: number) {
    this.committedAt = new Float64Array(capacity).fill(Number.NaN);
    this.sentAt = new Float64Array(capacity).fill(Number.NaN);
    this.handledAt = new Float64Array(capacity).fill(Number.NaN);
  }

  /** Messages handled at least once. */
  get handled(): number {
    return this.handledCount;
  }

  /** Deliveries of a message already handled (at-least-once redeliveries). */
  get duplicates(): number {
    return this.duplicateCount;
  }

  /** Deliveries whose payload was not a timed message of this run. */
  get foreign(): number {
    return this.foreignCount;
  }

  /** The producer's send of message `n` returned at `atMs`. */
  committed(n: number, atMs: number): void {
    this.committedAt[n] = atMs;
  }

  /** A handler was called with `payload`; only the first delivery of a message counts. */
  handledPayload(payload: unknown, atMs: number = nowMs()): void {
    const { n, sentAtMs } = (payload ?? {}) as { n?: unknown; sentAtMs?: unknown };
    if (
      typeof n !== 'number' ||
      typeof sentAtMs !== 'number' ||
      !Number.isInteger(n) ||
      n < 0 ||
      n >= this.capacity
    ) {
      this.foreignCount++;
      return;
    }
    if (!Number.isNaN(this.handledAt[n]!)) {
      this.duplicateCount++;
      return;
    }
    this.handledAt[n] = atMs;
    this.sentAt[n] = sentAtMs;
    this.handledCount++;
  }

  /**
   * Waits until `count` messages were handled: with messages numbered from 0 and sent in
   * order, every message below `count` once nothing beyond it has been sent.
   */
  waitForHandled(count: number, timeoutMs: number, signal: AbortSignal): Promise<void> {
    return waitUntil(
      `${count} messages handled`,
      () => Promise.resolve(this.handledCount >= count || signal.aborted),
      timeoutMs,
      5,
    );
  }

  /** Latencies of messages first … end − 1 (the handled ones). */
  summariseMessages(first: number, end: number): DeliveryLatencySummary {
    const selected: number[] = [];
    for (let n = first; n < end; n++) if (!Number.isNaN(this.handledAt[n]!)) selected.push(n);
    return this.summarise(selected);
  }

  /** Latencies of the messages first handled in [fromMs, toMs). */
  summariseHandledBetween(fromMs: number, toMs: number): DeliveryLatencySummary {
    const selected: number[] = [];
    for (let n = 0; n < this.capacity; n++) {
      const at = this.handledAt[n]!;
      if (at >= fromMs && at < toMs) selected.push(n);
    }
    return this.summarise(selected);
  }

  private summarise(messages: readonly number[]): DeliveryLatencySummary {
    const fromCommit = new Float64Array(messages.length);
    const fromSend = new Float64Array(messages.length);
    let committed = 0;
    messages.forEach((n, i) => {
      fromSend[i] = this.handledAt[n]! - this.sentAt[n]!;
      // A message handled in the instant before its send's promise settled has no commit
      // time yet when a window closes; it counts from its send only.
      const commit = this.committedAt[n]!;
      if (!Number.isNaN(commit)) fromCommit[committed++] = this.handledAt[n]! - commit;
    });
    return {
      handled: messages.length,
      commitToHandlerMs: summariseLatencies(fromCommit.subarray(0, committed)),
      sendToHandlerMs: summariseLatencies(fromSend),
    };
  }
}
