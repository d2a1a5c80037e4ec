import type { Executor } from './executor.ts';
import { LATENCY_BUCKETS, latencyBucket } from './latency-histogram.ts';
import { PeriodicFlush } from './periodic-flush.ts';
import { QueueHistoryAddMany } from './sql/index.ts';
import type { Delivery, QueueHistoryCounts } from './types.ts';

/** How often a meter adds what it counted to the stats history. */
export const HISTORY_FLUSH_INTERVAL_MS_DEFAULT = 5_000;

const MINUTE_MS = 60_000;

/** What one queue did in one minute, as counted by one process. */
interface Tally extends QueueHistoryCounts {
  queue: string;
  /** The minute's start, epoch milliseconds (UTC, on the database's clock). */
  minuteMs: number;
  /** Deliveries per latency bucket (latency-histogram.ts); undefined until one is counted. */
  latency: number[] | undefined;
}

/**
 * Counts what this process's engine does, per queue and minute, in memory, and adds it to the
 * stats history (holdline.queue_history, through sql/queue-history.ts) every few seconds in
 * one statement: the counterpart of DequeueMeter for the charts. Counting in SQL on the hot
 * path would make every send, receive and ack of a queue update one row (a hot row, and a
 * write in every producer's transaction); this costs a Map lookup per operation and one
 * upsert per flush for all queues. Several processes' counts add up in the same rows, and
 * their latency histograms bucket by bucket, so percentiles come from the sums.
 *
 * Minutes and latencies are read on this process's clock corrected by its offset from the
 * database's, measured at every flush (to within half a round trip): a message's runAt comes
 * from the database. Counts of a crashed process since its last flush are lost.
 * Lifecycle: start() once, stop() any number of times (it flushes).
 */
export class HistoryMeter extends PeriodicFlush {
  /** The minute counted into now (epoch ms), and its tallies by queue: the one-lookup path. */
  private minuteMs = -1;
  private current = new Map<string, Tally>();
  /** Tallies of earlier minutes not yet written, by minute and queue. */
  private earlier = new Map<string, Tally>();
  /** Database clock minus this process's clock, in ms, as of the last flush. */
  private clockOffsetMs = 0;

  constructor(
    private readonly db: Executor,
    intervalMs = HISTORY_FLUSH_INTERVAL_MS_DEFAULT,
    private readonly onError: (error: unknown) => void = () => undefined,
  ) {
    super(intervalMs);
  }

  /** Counts `messages` sent to `queue`. */
  sent(queue: string, messages: number): void {
    this.tally(queue).sent += messages;
  }

  /**
   * Counts deliveries just leased from `queue`, each with its latency: from the message's
   * runAt (when it became deliverable: its send, its delay's end, or its retry's) to now.
   */
  delivered(queue: string, deliveries: readonly Delivery[]): void {
    const now = Date.now() + this.clockOffsetMs;
    const tally = this.tally(queue, now);
    tally.delivered += deliveries.length;
    const latency = (tally.latency ??= new Array<number>(LATENCY_BUCKETS).fill(0));
    for (const delivery of deliveries) {
      latency[latencyBucket((now - delivery.message.runAt.getTime()) / 1000)]! += 1;
    }
  }

  /** Counts `messages` acked in `queue`. */
  acked(queue: string, messages = 1): void {
    this.tally(queue).acked += messages;
  }

  /** Counts a batch of acks, one per item, by its queue: one lookup per run of one queue. */
  ackedEach(acked: readonly { queue: string }[]): void {
    let tally: Tally | undefined;
    for (const { queue } of acked) {
      if (tally?.queue !== queue) tally = this.tally(queue);
      tally.acked += 1;
    }
  }

  /** Counts one nack in `queue`, and whether it moved the message to the dead-letter queue. */
  nacked(queue: string, deadLettered: boolean): void {
    const tally = this.tally(queue);
    tally.nacked += 1;
    if (deadLettered) tally.deadLettered += 1;
  }

  /** Counts leases of `queue` the reaper took back, and whether they were dead-lettered. */
  leasesExpired(queue: string, messages: number, deadLettered: boolean): void {
    const tally = this.tally(queue);
    tally.leaseExpired += messages;
    if (deadLettered) tally.deadLettered += messages;
  }

  /**
   * The tally of `queue` for the minute holding `now`. On the hot path (every send, delivery
   * batch and ack): one clock read and one lookup by queue name while the minute lasts.
   */
  private tally(queue: string, now = Date.now() + this.clockOffsetMs): Tally {
    const minuteMs = now - (now % MINUTE_MS);
    if (minuteMs !== this.minuteMs) {
      for (const tally of this.current.values()) this.keep(tally);
      this.current = new Map();
      this.minuteMs = minuteMs;
    }
    let tally = this.current.get(queue);
    if (tally === undefined) {
      tally = emptyTally(queue, minuteMs);
      this.current.set(queue, tally);
    }
    return tally;
  }

  /** Failures go to onError and the counts are kept for the next write. */
  protected override async write(): Promise<void> {
    if (this.current.size === 0 && this.earlier.size === 0) return;
    const tallies = [...this.earlier.values(), ...this.current.values()];
    this.earlier = new Map();
    this.current = new Map();
    try {
      const askedAt = Date.now();
      const { rows } = await QueueHistoryAddMany.run(this.db, [
        tallies.map((t) => t.queue),
        tallies.map((t) => t.minuteMs / 1000),
        tallies.map((t) => t.sent),
        tallies.map((t) => t.delivered),
        tallies.map((t) => t.acked),
        tallies.map((t) => t.nacked),
        tallies.map((t) => t.deadLettered),
        tallies.map((t) => t.leaseExpired),
        tallies.map((t) => (t.latency === undefined ? null : `{${t.latency.join(',')}}`)),
      ]);
      const answeredAt = Date.now();
      const databaseNow = rows[0]?.now_ms;
      if (databaseNow !== undefined) {
        this.clockOffsetMs = Math.round(databaseNow - (askedAt + answeredAt) / 2);
      }
    } catch (error) {
      // Kept for the next write, added to whatever was counted meanwhile.
      for (const t of tallies) {
        if (t.minuteMs === this.minuteMs) addTally(this.tally(t.queue, t.minuteMs), t);
        else this.keep(t);
      }
      this.onError(error);
    }
  }

  /** Adds a tally of an earlier minute to those waiting for the next write. */
  private keep(t: Tally): void {
    const key = `${t.minuteMs}\n${t.queue}`;
    const kept = this.earlier.get(key);
    if (kept === undefined) this.earlier.set(key, t);
    else addTally(kept, t);
  }
}

function emptyTally(queue: string, minuteMs: number): Tally {
  return {
    queue,
    minuteMs,
    sent: 0,
    delivered: 0,
    acked: 0,
    nacked: 0,
    deadLettered: 0,
    leaseExpired: 0,
    latency: undefined,
  };
}

/** Adds `t`'s counts and latency histogram to `into`. */
function addTally(into: Tally, t: Tally): void {
  into.sent += t.sent;
  into.delivered += t.delivered;
  into.acked += t.acked;
  into.nacked += t.nacked;
  into.deadLettered += t.deadLettered;
  into.leaseExpired += t.leaseExpired;
  if (t.latency !== undefined) {
    const latency = (into.latency ??= new Array<number>(LATENCY_BUCKETS).fill(0));
    t.latency.forEach((n, bucket) => (latency[bucket]! += n));
  }
}
