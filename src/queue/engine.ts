import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { linkAbortSignals } from '../abort-signals.ts';
import type { Listener } from '../db/listener.ts';
import { ack, ackBatch, ackBatchWithin, ackEach, leasedQueue, queueLikePatterns } from './ack.ts';
import { leaseLost } from './lease-lost.ts';
import { Coalescer } from './coalescer.ts';
import { decodeReceipt } from './receipts.ts';
import type { Receipt } from './receipts.ts';
import { listArchivedMessages } from './archive.ts';
import type { ListArchivedMessagesParams } from './archive.ts';
import { countMessages, listMessages } from './browse.ts';
import { deleteMessages, moveMessages, redriveMessages, retryMessages } from './bulk.ts';
import type { BulkOutcome, BulkSelectionParams } from './bulk.ts';
import type { CountMessagesParams, ListMessagesParams } from './browse.ts';
import type { AckedMessage } from './ack.ts';
import { DequeueMeter } from './dequeue-meter.ts';
import { HistoryMeter } from './history-meter.ts';
import { queueHistory } from './history.ts';
import type { QueueHistoryParams } from './history.ts';
import { QueueError, translated } from './errors.ts';
import type { Executor } from './executor.ts';
import { QueueMaintenance } from './maintenance.ts';
import { extendLease } from './extend-lease.ts';
import { nack } from './nack.ts';
import type { NackedMessage } from './nack.ts';
import {
  configureQueue,
  createQueue,
  deleteQueue,
  getQueue,
  listQueues,
  purgeQueue,
  setQueuePaused,
} from './queues.ts';
import { receive } from './receive.ts';
import {
  createSchedule,
  deleteSchedule,
  getSchedule,
  listSchedules,
  pauseSchedule,
  resumeSchedule,
} from './schedules.ts';
import type { ReceiveParams } from './receive.ts';
import { redrive } from './redrive.ts';
import { cancelReplay, getReplayJob, listReplayJobs, startRedrive, startReplay } from './replay.ts';
import type { RedriveJobParams, ReplayParams } from './replay.ts';
import { publish, send, sendBatch } from './send.ts';
import { traceReceive, traceSend, traceSendOne, traceSettle } from './tracing.ts';
import { DatabasePing } from './sql/index.ts';
import {
  allQueueStats,
  getMessage,
  queueStats,
  groupRateLimitNextToken,
  rateLimitNextToken,
  waitingCounts,
} from './stats.ts';
import { bindQueue, listBindings, unbindQueue } from './topics.ts';
import type {
  ArchivedMessagePage,
  Delivery,
  Message,
  Queue,
  QueueConfig,
  QueueHistoryPoint,
  QueueStats,
  ReplayJob,
  SendInput,
  Schedule,
  ScheduleInput,
  WaitingCounts,
} from './types.ts';
import {
  BATCH_MAX_LIMIT,
  WAIT_MAX_SECONDS,
  validateInteger,
  validateQueueName,
  validateSendInput,
} from './validation.ts';
import { Wakeups } from './wakeups.ts';
import type { WaitHandle } from './wakeups.ts';

/** How often an idle waiter looks again without a wake-up: the net under lost NOTIFYs and
 * the clock for delayed messages and backoffs coming due. */
export const POLL_INTERVAL_MS_DEFAULT = 1_000;

/**
 * Statements of one kind (single sends to one queue, single acks of one scope) in flight at
 * once before further calls wait to share the next: see Coalescer. Two keeps a lone
 * caller's latency at one round trip while a busy queue's calls still share statements.
 */
export const COALESCE_LANES_DEFAULT = 2;

/** Options for {@link QueueEngine}. */
export interface QueueEngineOptions {
  db: Executor;
  /** The process's LISTEN connection; without it, waiters rely on polling and local wake-ups. */
  listener?: Listener;
  logger: Logger;
  /** Default {@link POLL_INTERVAL_MS_DEFAULT}. */
  pollIntervalMs?: number;
  /** Default {@link COALESCE_LANES_DEFAULT}. */
  coalesceLanes?: number;
  /** Messages per chunk of a bulk action. Default 1000 (BULK_CHUNK_SIZE_DEFAULT, bulk.ts). */
  bulkChunkSize?: number;
  /**
   * Count sends, deliveries (with their latency), acks and nacks for the stats history
   * (history-meter.ts). Default true; false: this process adds nothing to it.
   */
  history?: boolean;
}

/** Parameters of a receive that may wait. */
export interface WaitingReceiveParams extends ReceiveParams {
  /** Long poll: wait up to this many seconds (0 to 20) for a message. Default 0. */
  waitSeconds?: number;
  /** Ends the wait early, returning what was received (nothing). */
  signal?: AbortSignal;
}

/**
 * What the engine reports, for metrics and logs. Only operations through the engine are
 * seen: sends from plain SQL are not.
 */
export interface QueueEngineEvents {
  sent: [queue: string, messages: number];
  delivered: [queue: string, deliveries: number];
  /** ageSeconds: from the message's created_at to its ack (end-to-end latency). */
  acked: [queue: string, ageSeconds: number];
  nacked: [queue: string, outcome: NackedMessage['outcome']];
  /** Seconds a receive with waitSeconds > 0 spent, and whether it got anything. */
  waited: [queue: string, seconds: number, received: boolean];
}

/**
 * Sends bound to one transaction: {@link QueueEngine.within} (the caller's), or the one
 * {@link QueueEngine.transaction} opens. Each validates as the engine's own send does and
 * fails with the same QueueErrors; messages commit with the transaction or not at all.
 */
export interface EngineTransaction {
  /** Enqueues one message in the transaction. */
  send(queue: string, message: SendInput): Promise<Message>;
  /** Enqueues 1 to 1000 messages into one queue in the transaction, in one statement. */
  sendBatch(queue: string, messages: readonly SendInput[]): Promise<Message[]>;
  /** Copies a message into every queue bound to a pattern matching `topic`, in the transaction. */
  publish(topic: string, message: SendInput): Promise<Message[]>;
}

/**
 * An authorization hook: given the queues an operation touched, throws to refuse it. The
 * operation then runs in a transaction of its own that the refusal rolls back, so a refused
 * call changes nothing. What it throws is what the caller gets.
 */
export type AuthorizeQueues = (queues: ReadonlySet<string>) => void;

/** Options of the engine's receipt operations (ack, ackBatch, nack, extendLease). */
export interface ReceiptOptions {
  /**
   * Refuses the call by the queue of each delivery whose lease is live (a receipt whose
   * lease was lost is LEASE_LOST before this is asked). The message row is read once: the
   * fenced statement itself says which queue it was in.
   */
  authorize?: AuthorizeQueues;
  /**
   * The queues `authorize` allows, as patterns in which `*` matches any run of characters
   * (a token's scope patterns). With them a single ack is kept to those queues inside its
   * one statement, instead of a transaction of its own around the hook; `authorize` is then
   * asked only for a delivery the statement left alone whose lease still holds. A batch ack
   * is one statement too, which acks all or none and names a queue outside them for
   * `authorize`. They must allow exactly what `authorize` allows.
   */
  queuePatterns?: readonly string[];
}

/** A single ack waiting to share a statement: its receipt and the queues it may ack in. */
interface PendingAck {
  /** The receipt as the caller gave it, and decoded. */
  text: string;
  receipt: Receipt;
  queuePatterns: string[] | null;
}

/** A single send waiting to share a statement with others to its queue. */
interface PendingSend {
  message: SendInput;
}

/**
 * The queue engine of one process: the operations of src/queue over a pool, plus the state
 * they share: wake-ups for long polls and subscriptions, the dequeue meter, and a closing
 * flag so that shutdown stops new leases. Operations that take `trx` run inside the
 * caller's transaction instead of the pool.
 * Lifecycle: start() once, stop() any number of times.
 */
export class QueueEngine extends EventEmitter<QueueEngineEvents> {
  /** The maintenance statements of the maintainer's services (src/reaper). */
  readonly maintenance: QueueMaintenance;
  private readonly db: Executor;
  private readonly wakeups: Wakeups;
  private readonly meter: DequeueMeter;
  /** Undefined when the history is off: each count is then one optional-chain test. */
  private readonly history: HistoryMeter | undefined;
  private readonly pollIntervalMs: number;
  private readonly bulkChunkSize: number | undefined;
  private readonly closing = new AbortController();
  private readonly acks: Coalescer<PendingAck, AckedMessage | undefined>;
  private readonly sends: Coalescer<PendingSend, Message>;
  /**
   * Flow limits of the queues that consumers of this process wait on, as last read when one
   * started waiting (at most once a poll interval per queue) or when this engine configured
   * the queue; unlimited queues are kept too, so that their reads are spaced as well. On a
   * capped queue (maxInFlight)
   * an ack here frees a slot, so it wakes one waiter at once (acks made through other
   * instances reach this process's waiters by the poll interval); on a rate-limited one a
   * short receive sets a timer for the bucket's next token, which wakes one waiter (with a
   * per-group rate limit, for the soonest group's next token).
   */
  private readonly limits = new Map<
    string,
    { capped: boolean; rateLimited: boolean; groupRateLimited: boolean; readAtMs: number }
  >();
  /** Next-token timers of the queues' buckets (see wakeAtNextToken). */
  private readonly refills = new RefillTimers();
  /** Next-token timers of the queues' group buckets (see wakeAtNextGroupToken). */
  private readonly groupRefills = new RefillTimers();

  constructor(options: QueueEngineOptions) {
    super();
    this.db = options.db;
    const lanes = options.coalesceLanes ?? COALESCE_LANES_DEFAULT;
    this.acks = new Coalescer({
      lanes,
      maxBatch: BATCH_MAX_LIMIT,
      conflictKey: (pending) => pending.receipt.messageId,
      run: async (_key, pending) => {
        // Alone and unscoped: holdline.ack, the cheapest statement, with its own LEASE_LOST.
        if (pending.length === 1 && pending[0]!.queuePatterns === null) {
          return Promise.allSettled([ack(this.db, { receipt: pending[0]!.text })]);
        }
        const acked = await ackEach(this.db, {
          receipts: pending.map((p) => p.receipt),
          queuePatterns: pending[0]!.queuePatterns,
        });
        return acked.map(fulfilled);
      },
    });
    this.sends = new Coalescer({
      lanes,
      maxBatch: BATCH_MAX_LIMIT,
      run: (queue, pending) => this.sendTogether(queue, pending),
    });
    this.maintenance = new QueueMaintenance(options.db);
    this.pollIntervalMs = options.pollIntervalMs ?? POLL_INTERVAL_MS_DEFAULT;
    this.bulkChunkSize = options.bulkChunkSize;
    this.wakeups = new Wakeups(options.listener, options.logger.child({ component: 'wakeups' }));
    this.meter = new DequeueMeter(options.db, undefined, (error) =>
      options.logger.warn({ err: error, component: 'dequeue-meter' }, 'dequeue counts not written'),
    );
    this.history =
      options.history === false
        ? undefined
        : new HistoryMeter(options.db, undefined, (error) =>
            options.logger.warn(
              { err: error, component: 'history-meter' },
              'history counts not written',
            ),
          );
  }

  start(): void {
    this.meter.start();
    this.history?.start();
  }

  /** Stops leasing: waits end, later receives return nothing. Safe to call twice. */
  async stop(): Promise<void> {
    this.closing.abort();
    this.refills.clear();
    this.groupRefills.clear();
    await this.wakeups.stop();
    await this.meter.stop();
    await this.history?.stop();
  }

  /**
   * Sends inside a caller's open transaction (a kysely Transaction, or any Executor) without
   * an engine: what the package's transactional `send(trx, …)` uses. No events and no local
   * wake-up: the commit's NOTIFY (only when some consumer idle-waits) wakes consumers
   * everywhere, this process's too.
   */
  static within(trx: Executor): EngineTransaction {
    return bindTransaction(trx, () => undefined);
  }

  /**
   * Sends inside a caller's open transaction (a kysely Transaction, or a Kysely over the
   * caller's pg client). Emits `sent` at once. This process's waiters are woken by the
   * commit's NOTIFY like everyone's, since the engine cannot see the caller's commit; use
   * {@link transaction} to let the engine commit and wake them directly.
   */
  within(trx: Executor): EngineTransaction {
    return bindTransaction(trx, (queue, messages) => {
      this.history?.sent(queue, messages);
      this.emit('sent', queue, messages);
    });
  }

  /**
   * Runs `work` in a transaction the engine opens on its pool: committed when `work`
   * resolves, rolled back when it throws (nothing sent then). After the commit, wakes this
   * process's waiters on every queue sent to and emits `sent`. A failed COMMIT is
   * UNAVAILABLE, as it is for the engine's own statements.
   */
  async transaction<T>(work: (tx: EngineTransaction) => Promise<T>): Promise<T> {
    const sent = new Map<string, number>();
    const result = await translated(() =>
      this.db
        .transaction()
        .execute((trx) =>
          work(
            bindTransaction(trx, (queue, messages) =>
              sent.set(queue, (sent.get(queue) ?? 0) + messages),
            ),
          ),
        ),
    );
    for (const [queue, messages] of sent) this.sent(queue, messages);
    return result;
  }

  /** Resolves when the database answers a trivial statement (readiness checks). */
  async ping(): Promise<void> {
    await translated(() => DatabasePing.run(this.db, []));
  }

  /** True once stop() was called. */
  get stopping(): boolean {
    return this.closing.signal.aborted;
  }

  createQueue(name: string, config?: Partial<QueueConfig>): Promise<Queue> {
    return createQueue(this.db, { name, config });
  }
  async configureQueue(name: string, config: Partial<QueueConfig>): Promise<Queue> {
    const queue = await configureQueue(this.db, { name, config });
    this.noteLimits(queue);
    // A raised or removed cap or limit may let waiting consumers lease now.
    if (
      config.maxInFlight !== undefined ||
      config.rateLimit !== undefined ||
      config.groupRateLimit !== undefined
    ) {
      this.wakeups.wake(name);
    }
    return queue;
  }
  deleteQueue(name: string): Promise<boolean> {
    this.limits.delete(name);
    this.refills.forget(name);
    this.groupRefills.forget(name);
    return deleteQueue(this.db, { name });
  }
  pauseQueue(name: string): Promise<Queue> {
    return setQueuePaused(this.db, { name, paused: true });
  }
  async resumeQueue(name: string): Promise<Queue> {
    const queue = await setQueuePaused(this.db, { name, paused: false });
    this.wakeups.wake(name);
    return queue;
  }
  purge(name: string): Promise<number> {
    return purgeQueue(this.db, { name });
  }
  getQueue(name: string): Promise<Queue | undefined> {
    return getQueue(this.db, { name });
  }
  listQueues(): Promise<Queue[]> {
    return listQueues(this.db);
  }
  queueStats(queue: string): Promise<QueueStats | undefined> {
    return queueStats(this.db, { queue });
  }
  allQueueStats(): Promise<QueueStats[]> {
    return allQueueStats(this.db);
  }
  /** A queue's unleased messages by the reason they wait (see stats.ts); costlier than queueStats. */
  waitingCounts(queue: string): Promise<WaitingCounts | undefined> {
    return waitingCounts(this.db, { queue });
  }
  getMessage(id: string): ReturnType<typeof getMessage> {
    return getMessage(this.db, { id });
  }
  /** One page of a queue's messages in send order, for inspection (see browse.ts). */
  listMessages(params: ListMessagesParams): Promise<Message[]> {
    return listMessages(this.db, params);
  }
  /** How many of a queue's messages match a state and filter, up to a bound (see browse.ts). */
  countMessages(params: CountMessagesParams): Promise<number> {
    return countMessages(this.db, params);
  }
  /**
   * Deletes every unleased message of a queue matching a state and filter, in chunks that
   * commit one by one (see bulk.ts); how many.
   */
  deleteMessages(params: BulkSelectionParams): Promise<number> {
    return this.bulk(deleteMessages(this.db, this.chunked(params)));
  }
  /** Moves every unleased matching message into queue `to`, in chunks (see bulk.ts); how many. */
  moveMessages(params: BulkSelectionParams & { to: string }): Promise<number> {
    return this.bulk(moveMessages(this.db, this.chunked(params)));
  }
  /** Makes every matching delayed or backing-off message deliverable now (see bulk.ts). */
  retryMessages(params: Omit<BulkSelectionParams, 'state'>): Promise<number> {
    return this.bulk(retryMessages(this.db, this.chunked(params)));
  }
  /**
   * Moves every matching dead letter of a dead-letter queue back to its origin (see bulk.ts);
   * `authorize` hears the origin queues first, and its refusal changes nothing.
   */
  redriveMessages(
    params: Omit<BulkSelectionParams, 'state'>,
    options: { authorize?: AuthorizeQueues } = {},
  ): Promise<number> {
    return this.bulk(redriveMessages(this.db, this.chunked(params), options.authorize));
  }
  /** A queue's stats history over a time range, in points of a step (see history.ts). */
  queueHistory(params: QueueHistoryParams): Promise<QueueHistoryPoint[]> {
    return queueHistory(this.db, params);
  }
  /**
   * Writes what this process counted for the stats history now, instead of at the next
   * flush (every 5 s). Resolves at once when the history is off.
   */
  async flushHistory(): Promise<void> {
    await this.history?.flush();
  }
  /** One page of a queue's archive in send order (see archive.ts). */
  listArchivedMessages(params: ListArchivedMessagesParams): Promise<ArchivedMessagePage> {
    return listArchivedMessages(this.db, params);
  }
  /** Starts a replay job (see replay.ts); the leader's replay runner does the work. */
  replay(params: ReplayParams): Promise<ReplayJob> {
    return startReplay(this.db, params);
  }
  /**
   * Starts a redrive job (see replay.ts): dead letters move back in batches run by the
   * leader, with a filter, a maximum and a rate. The `redrive` above stays one statement.
   */
  startRedrive(params: RedriveJobParams): Promise<ReplayJob> {
    return startRedrive(this.db, params);
  }
  /** One replay or redrive job; undefined when there is none with that id. */
  replayJob(id: string): Promise<ReplayJob | undefined> {
    return getReplayJob(this.db, { id });
  }
  /** The newest jobs of a queue (replays of its archive, redrives of its dead letters). */
  replayJobs(queue: string): Promise<ReplayJob[]> {
    return listReplayJobs(this.db, { queue });
  }
  /** Cancels a running replay job; undefined when there is no such job. */
  cancelReplay(id: string): Promise<ReplayJob | undefined> {
    return cancelReplay(this.db, { id });
  }
  /** Creates a cron schedule (see schedules.ts): the reaper's leader fires it from its next tick. */
  createSchedule(input: ScheduleInput): Promise<Schedule> {
    return createSchedule(this.db, { input });
  }
  /** Every schedule, or those sending into `queue`, by name. */
  listSchedules(queue?: string | null): Promise<Schedule[]> {
    return listSchedules(this.db, { queue });
  }
  getSchedule(name: string): Promise<Schedule | undefined> {
    return getSchedule(this.db, { name });
  }
  pauseSchedule(name: string): Promise<Schedule> {
    return pauseSchedule(this.db, { name });
  }
  /** Resumes from the first tick after now; ticks of the pause are not caught up. */
  resumeSchedule(name: string): Promise<Schedule> {
    return resumeSchedule(this.db, { name });
  }
  deleteSchedule(name: string): Promise<boolean> {
    return deleteSchedule(this.db, { name });
  }
  bindQueue(queue: string, pattern: string): Promise<void> {
    return bindQueue(this.db, { queue, pattern });
  }
  unbindQueue(queue: string, pattern: string): Promise<boolean> {
    return unbindQueue(this.db, { queue, pattern });
  }
  listBindings(queue: string): Promise<string[]> {
    return listBindings(this.db, { queue });
  }

  /**
   * Enqueues one message (see send.ts) and wakes this process's waiters on the queue. Traced
   * as `send <queue>`, whose context the message carries in its headers (tracing.ts).
   */
  send(queue: string, message: SendInput): Promise<Message> {
    return traceSendOne(
      'send',
      queue,
      message,
      async (traced) => {
        let sent: Message;
        if (traced?.dedupKey != null) {
          // A dedup key's answer may be another, live message: sent on its own.
          sent = await send(this.db, { queue, message: traced });
        } else {
          // Bad input fails here, alone, before it could share a statement with anyone.
          validateQueueName(queue);
          validateSendInput(traced);
          sent = await this.sends.submit(queue, { message: traced });
        }
        this.sent(queue, 1);
        return sent;
      },
      (sent) => sent.id,
    );
  }

  /** Enqueues 1 to 1000 messages atomically (see sendBatch in send.ts), then wakes. */
  sendBatch(queue: string, messages: readonly SendInput[]): Promise<Message[]> {
    return traceSend(
      { name: 'send', destination: queue, batch: true },
      messages,
      async (traced) => {
        const sent = await sendBatch(this.db, { queue, messages: traced });
        this.sent(queue, sent.length);
        return sent;
      },
    );
  }

  /**
   * Copies a message into every queue bound to a pattern matching `topic` (see send.ts),
   * then wakes those queues' waiters here. With `authorize`, the copies are made in a
   * transaction and the hook is asked with the queues they landed in: which queues a topic
   * reaches is only certain inside that transaction (a binding may be added at any moment),
   * and a refusal rolls it back, publishing nothing.
   */
  async publish(
    topic: string,
    message: SendInput,
    options: { authorize?: AuthorizeQueues } = {},
  ): Promise<Message[]> {
    const { authorize } = options;
    if (authorize === undefined) {
      return traceSendOne('publish', topic, message, async (traced) => {
        const sent = await publish(this.db, { topic, message: traced });
        for (const m of sent) this.sent(m.queue, 1);
        return sent;
      });
    }
    // The transaction's publish is traced itself.
    return this.transaction(async (tx) => {
      const made = await tx.publish(topic, message);
      authorize(new Set(made.map((m) => m.queue)));
      return made;
    });
  }

  /**
   * Leases up to `max` messages (see receive.ts). With waitSeconds > 0 and nothing
   * deliverable, waits for a wake-up (a commit that makes a message ready) or for the poll
   * interval, and tries again until something arrives or the time is up. After stop(),
   * returns nothing. A receive that delivers is traced as `receive <queue>` (tracing.ts).
   */
  receive(params: WaitingReceiveParams): Promise<Delivery[]> {
    return traceReceive(params.queue, () => this.receiveWaiting(params));
  }

  private async receiveWaiting(params: WaitingReceiveParams): Promise<Delivery[]> {
    const waitSeconds = validateInteger(
      params.waitSeconds ?? 0,
      'waitSeconds',
      0,
      WAIT_MAX_SECONDS,
    );
    if (this.stopping) return [];
    const first = await this.receiveNow(params);
    if (first.length > 0 || waitSeconds === 0) return first;

    const started = Date.now();
    const deadline = started + waitSeconds * 1000;
    const handle = await this.startWaiting(params.queue);
    const linked =
      params.signal === undefined
        ? undefined
        : linkAbortSignals([params.signal, this.closing.signal]);
    const signal = linked?.signal ?? this.closing.signal;
    let deliveries: Delivery[] = [];
    try {
      for (;;) {
        // A caller that gave up while the registration ran (an HTTP client gone, a worker
        // stopping) must not be handed a lease it will never see.
        if (signal.aborted) return deliveries;
        // Registered first, then checked: a commit after this check will wake the handle.
        deliveries = await this.receiveNow(params);
        if (deliveries.length > 0) return deliveries;
        const left = deadline - Date.now();
        if (left <= 0 || signal.aborted) return deliveries;
        await handle.next(Math.min(left, this.pollIntervalMs), signal);
        if (signal.aborted) return deliveries;
      }
    } finally {
      linked?.dispose();
      handle.release();
      this.emit('waited', params.queue, (Date.now() - started) / 1000, deliveries.length > 0);
    }
  }

  /**
   * Starts waiting on a queue for callers that loop themselves (subscriptions, workers):
   * call receive after this resolves, then handle.next() when it finds nothing.
   */
  async startWaiting(queue: string): Promise<WaitHandle> {
    const known = this.limits.get(queue);
    if (known !== undefined && Date.now() - known.readAtMs < this.pollIntervalMs) {
      return this.wakeups.startWaiting(queue);
    }
    const [handle] = await Promise.all([
      this.wakeups.startWaiting(queue),
      // Only a consumer that found nothing gets here, and a queue is read at most once a poll
      // interval: an empty long poll repeated by many consumers costs one read, not one each.
      getQueue(this.db, { name: queue }).then(
        (found) => {
          if (found !== undefined) this.noteLimits(found);
        },
        // The waiter still works without it, by polling.
        () => undefined,
      ),
    ]);
    return handle;
  }

  /** The poll interval waiters should pass to WaitHandle.next(). */
  get pollInterval(): number {
    return this.pollIntervalMs;
  }

  /**
   * Acks one delivery (see ack.ts); LEASE_LOST when its lease was lost. Acks that arrive
   * while others are in flight share one statement (see Coalescer), each answered for its
   * own receipt. Traced as `ack <queue>` (tracing.ts).
   */
  ack(receipt: string, options: ReceiptOptions = {}): Promise<AckedMessage> {
    return traceSettle(
      'ack',
      [receipt],
      false,
      () => this.ackOne(receipt, options),
      (acked) => ({ queues: [acked.queue] }),
    );
  }
  /** Acks many deliveries; returns those whose lease was still valid. */
  ackBatch(receipts: readonly string[], options: ReceiptOptions = {}): Promise<AckedMessage[]> {
    return traceSettle(
      'ack',
      receipts,
      true,
      () => this.ackMany(receipts, options),
      (acked) => ({ queues: acked.map((a) => a.queue) }),
    );
  }
  /**
   * Nacks one delivery (see nack.ts): retried with backoff, or dead-lettered. Traced as
   * `nack <queue>` with the outcome (tracing.ts).
   */
  nack(
    receipt: string,
    options: { delaySeconds?: number | null; error?: string | null } & ReceiptOptions = {},
  ): Promise<NackedMessage> {
    return traceSettle(
      'nack',
      [receipt],
      false,
      () => this.nackOne(receipt, options),
      (nacked) => ({ queues: [nacked.queue], nackOutcome: nacked.outcome }),
    );
  }

  private async ackOne(receipt: string, options: ReceiptOptions): Promise<AckedMessage> {
    const { authorize, queuePatterns } = options;
    let acked: AckedMessage | undefined;
    if (authorize !== undefined && queuePatterns === undefined) {
      acked = await this.settle(
        options,
        (db) => ack(db, { receipt }),
        (a) => [a.queue],
      );
    } else {
      const decoded = decodeReceipt(receipt);
      const patterns = queuePatterns === undefined ? null : queueLikePatterns(queuePatterns);
      // Scope patterns hold no newline: joined, they name the scope.
      const key = patterns === null ? '' : patterns.join('\n');
      acked = await this.acks.submit(key, {
        text: receipt,
        receipt: decoded,
        queuePatterns: patterns,
      });
      if (acked === undefined) {
        // Left alone: outside the caller's queues if its lease still holds, else lost.
        const queue = patterns === null ? undefined : await leasedQueue(this.db, decoded);
        if (queue !== undefined) authorize?.(new Set([queue]));
        throw await leaseLost(this.db, decoded.messageId);
      }
    }
    this.emit('acked', acked.queue, acked.ageSeconds);
    this.history?.acked(acked.queue);
    this.slotFreed(acked.queue);
    return acked;
  }
  /**
   * Acks many deliveries; returns those whose lease was still valid. With `queuePatterns`, in
   * one statement that acks all or none (see ackBatchWithin); else, with `authorize`, in a
   * transaction around the hook.
   */
  private async ackMany(
    receipts: readonly string[],
    options: ReceiptOptions,
  ): Promise<AckedMessage[]> {
    const acked = await this.ackBatchAuthorized(receipts, options);
    for (const a of acked) {
      this.emit('acked', a.queue, a.ageSeconds);
      this.slotFreed(a.queue);
    }
    this.history?.ackedEach(acked);
    return acked;
  }
  private async ackBatchAuthorized(
    receipts: readonly string[],
    options: ReceiptOptions,
  ): Promise<AckedMessage[]> {
    const { authorize, queuePatterns } = options;
    if (authorize !== undefined && queuePatterns !== undefined) {
      const result = await ackBatchWithin(this.db, {
        receipts,
        queuePatterns: queueLikePatterns(queuePatterns),
      });
      if ('acked' in result) return result.acked;
      // The hook refuses the queue the statement found outside the patterns; should it not
      // (patterns and hook disagree), the transaction below lets the hook judge every queue.
      authorize(new Set([result.outside]));
    }
    return this.settle(
      { authorize },
      (db) => ackBatch(db, { receipts }),
      (all) => all.map((a) => a.queue),
    );
  }
  private async nackOne(
    receipt: string,
    options: { delaySeconds?: number | null; error?: string | null } & ReceiptOptions,
  ): Promise<NackedMessage> {
    const { authorize, ...params } = options;
    const nacked = await this.settle(
      { authorize },
      (db) => nack(db, { receipt, ...params }),
      (n) => [n.queue],
    );
    this.emit('nacked', nacked.queue, nacked.outcome);
    this.history?.nacked(nacked.queue, nacked.outcome === 'dead_lettered');
    // holdline.nack NOTIFYs waiting consumers everywhere; without a listener, only this wakes.
    this.slotFreed(nacked.queue);
    return nacked;
  }
  /** Sets a lease to end `seconds` from now (see extend-lease.ts); LEASE_LOST when lost. */
  extendLease(receipt: string, seconds: number, options: ReceiptOptions = {}): Promise<Delivery> {
    return this.settle(
      options,
      (db) => extendLease(db, { receipt, seconds }),
      (d) => [d.message.queue],
    );
  }
  async redrive(queue: string, max?: number | null): Promise<number> {
    const moved = await redrive(this.db, { queue, max });
    if (moved > 0) this.wakeups.wake(queue);
    return moved;
  }

  private async receiveNow(params: ReceiveParams): Promise<Delivery[]> {
    if (this.stopping) throw new QueueError('UNAVAILABLE', 'the service is shutting down');
    const deliveries = await receive(this.db, params);
    if (deliveries.length < (params.max ?? 1)) {
      const limits = this.limits.get(params.queue);
      if (limits?.rateLimited === true) void this.wakeAtNextToken(params.queue);
      if (limits?.groupRateLimited === true) void this.wakeAtNextGroupToken(params.queue);
    }
    if (deliveries.length > 0) {
      this.meter.record(params.queue, deliveries.length);
      this.history?.delivered(params.queue, deliveries);
      this.emit('delivered', params.queue, deliveries.length);
    }
    return deliveries;
  }

  /**
   * Runs a receipt operation: on the pool when there is nothing to authorize (the hot path:
   * one statement); else in a transaction where the hook sees the queues the fenced
   * statement touched and its refusal rolls the change back.
   */
  private settle<T>(
    options: ReceiptOptions,
    run: (db: Executor) => Promise<T>,
    queuesOf: (result: T) => Iterable<string>,
  ): Promise<T> {
    const { authorize } = options;
    if (authorize === undefined) return run(this.db);
    return translated(() =>
      this.db.transaction().execute(async (trx) => {
        const result = await run(trx);
        authorize(new Set(queuesOf(result)));
        return result;
      }),
    );
  }

  /**
   * Runs single sends to one queue that arrived together: one alone as send (send_at, the
   * cheapest statement), several as one sendBatch. When a shared statement fails (the queue
   * is gone, a payload is over the queue's limit), each send runs again on its own, so that
   * every caller gets its own outcome and no caller's message fails for another's.
   */
  private async sendTogether(
    queue: string,
    pending: readonly PendingSend[],
  ): Promise<PromiseSettledResult<Message>[]> {
    const sendAlone = (p: PendingSend): Promise<Message> =>
      send(this.db, { queue, message: p.message });
    if (pending.length > 1) {
      try {
        const sent = await sendBatch(this.db, { queue, messages: pending.map((p) => p.message) });
        return sent.map(fulfilled);
      } catch {
        // Each on its own below.
      }
    }
    return Promise.allSettled(pending.map(sendAlone));
  }

  /** A bulk action's parameters with this engine's chunk size. */
  private chunked<P extends { chunkSize?: number }>(params: P): P {
    return this.bulkChunkSize === undefined ? params : { ...params, chunkSize: this.bulkChunkSize };
  }

  /** Waits for a bulk action, wakes this process's waiters where it made messages ready. */
  private async bulk(action: Promise<BulkOutcome>): Promise<number> {
    const { changed, readyIn } = await action;
    for (const queue of readyIn) this.wakeups.wake(queue);
    return changed;
  }

  /** Remembers a queue's flow limits, for {@link slotFreed} and {@link wakeAtNextToken}. */
  private noteLimits(queue: Queue): void {
    this.limits.set(queue.name, {
      capped: queue.config.maxInFlight !== null,
      rateLimited: queue.config.rateLimit !== null,
      groupRateLimited: queue.config.groupRateLimit !== null,
      readAtMs: Date.now(),
    });
  }

  /** A lease of `queue` ended here: on a capped queue, one waiter here may take the slot. */
  private slotFreed(queue: string): void {
    if (this.limits.get(queue)?.capped === true) this.wakeups.wakeOne(queue);
  }

  /**
   * After a receive of a rate-limited queue got less than it asked for: wakes one waiter
   * here when the bucket's next token is due (a timer, not a poll), unless a timer is set.
   * One timer per bucket charge: a receive cut short by an empty queue, not by the bucket,
   * finds the same charge again and sets no second timer, so an idle queue is not polled.
   */
  private async wakeAtNextToken(queue: string): Promise<void> {
    if (this.refills.pending(queue) || this.stopping) return;
    const next = await rateLimitNextToken(this.db, { queue }).catch(() => undefined);
    if (next === undefined || this.refills.lastCharge(queue) === next.chargedAt) return;
    this.setRefillTimer(this.refills, queue, next);
  }

  /**
   * As {@link wakeAtNextToken}, for a per-group rate limit: a timer for the soonest group
   * whose last charge left it less than a whole token, other than the charge the last timer
   * was for, so that a group whose token has come is not timed again and the next group is.
   */
  private async wakeAtNextGroupToken(queue: string): Promise<void> {
    if (this.groupRefills.pending(queue) || this.stopping) return;
    const next = await groupRateLimitNextToken(this.db, {
      queue,
      exceptCharge: this.groupRefills.lastCharge(queue) ?? null,
    }).catch(() => undefined);
    if (next === undefined) return;
    this.setRefillTimer(this.groupRefills, queue, next);
  }

  /** Sets `queue`'s timer in `timers` to wake one waiter here after `next.delayMs`. */
  private setRefillTimer(
    timers: RefillTimers,
    queue: string,
    next: { delayMs: number; chargedAt: string },
  ): void {
    if (timers.pending(queue) || this.stopping) return;
    timers.set(queue, next.chargedAt, next.delayMs, () => this.wakeups.wakeOne(queue));
  }

  /** After a committed send: wake this process's waiters on the queue, and tell listeners. */
  private sent(queue: string, messages: number): void {
    this.wakeups.wake(queue);
    this.history?.sent(queue, messages);
    this.emit('sent', queue, messages);
  }
}

/**
 * Pending next-token timers, one at most per queue, and the bucket charge each queue's last
 * timer was set for: a receive cut short by an empty queue, not by the bucket, finds the same
 * charge again and sets no second timer, so an idle queue is not polled.
 */
class RefillTimers {
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly charges = new Map<string, string>();

  pending(queue: string): boolean {
    return this.timers.has(queue);
  }

  lastCharge(queue: string): string | undefined {
    return this.charges.get(queue);
  }

  set(queue: string, charge: string, delayMs: number, fire: () => void): void {
    this.charges.set(queue, charge);
    const timer = setTimeout(() => {
      this.timers.delete(queue);
      fire();
    }, delayMs);
    timer.unref();
    this.timers.set(queue, timer);
  }

  forget(queue: string): void {
    clearTimeout(this.timers.get(queue));
    this.timers.delete(queue);
    this.charges.delete(queue);
  }

  clear(): void {
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
  }
}

/** A value as a fulfilled PromiseSettledResult. */
function fulfilled<T>(value: T): PromiseFulfilledResult<T> {
  return { status: 'fulfilled', value };
}

/**
 * An {@link EngineTransaction} over `trx`; `onSent` hears of each send that succeeded. Each
 * send is traced as the engine's own are (tracing.ts).
 */
function bindTransaction(
  trx: Executor,
  onSent: (queue: string, messages: number) => void,
): EngineTransaction {
  return {
    send: (queue, message) =>
      traceSendOne(
        'send',
        queue,
        message,
        async (traced) => {
          const sent = await send(trx, { queue, message: traced });
          onSent(queue, 1);
          return sent;
        },
        (sent) => sent.id,
      ),
    sendBatch: (queue, messages) =>
      traceSend({ name: 'send', destination: queue, batch: true }, messages, async (traced) => {
        const sent = await sendBatch(trx, { queue, messages: traced });
        onSent(queue, sent.length);
        return sent;
      }),
    publish: (topic, message) =>
      traceSendOne('publish', topic, message, async (traced) => {
        const sent = await publish(trx, { topic, message: traced });
        for (const m of sent) onSent(m.queue, 1);
        return sent;
      }),
  };
}
