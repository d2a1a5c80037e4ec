/**
 * The data types of the public contract (DESIGN.md's GraphQL types, as TypeScript), shared by
 * the engine (src/queue) and the HTTP client (src/client) so the two cannot drift apart.
 * Types only: it imports nothing and compiles to an empty module, so the HTTP client that
 * uses it loads no engine.
 */

/** Where a message stands: READY to deliver, DELAYED until runAt, or LEASED to a consumer. */
export type MessageState = 'READY' | 'DELAYED' | 'LEASED';

/** A queue's settings. Durations are in seconds. */
export interface QueueConfig {
  /** Lease length when receive does not name one. */
  visibilityTimeoutSeconds: number;
  /** Deliveries before a failure dead-letters the message. */
  maxAttempts: number;
  /** Where exhausted messages go; null: nowhere, they are retried with backoff forever. */
  deadLetterQueue: string | null;
  /** First retry delay; each later one doubles, with jitter. */
  backoffInitialSeconds: number;
  /** Cap on the retry delay. */
  backoffMaxSeconds: number;
  /** Unleased messages older than this are deleted by the reaper. */
  retentionSeconds: number;
  /** Largest payload accepted, as JSON text in bytes. */
  maxPayloadBytes: number;
  /**
   * How long acked messages stay in the queue's archive, for archivedMessages and replay;
   * 0 (the default): acked messages are deleted, nothing is archived.
   */
  archiveSeconds: number;
  /**
   * Most messages of the queue leased at once, across every consumer and instance (1 to
   * 100,000); null: no cap.
   */
  maxInFlight: number | null;
  /**
   * Most deliveries of the queue per period, across every consumer and instance: a token
   * bucket of `count` tokens refilled at count / perSeconds per second; null: no limit.
   */
  rateLimit: RateLimit | null;
  /**
   * Most messages of one message group leased at once (1 to 10,000): the group's first N
   * messages in send order may be in flight together. Null: one at a time, in send order.
   */
  groupMaxInFlight: number | null;
  /**
   * Most deliveries per period of each message group (groupKey), each group drawing from a
   * token bucket of its own; messages without a group key are not held by it (the queue's
   * rateLimit still applies to every message). Null: no limit per group.
   */
  groupRateLimit: RateLimit | null;
}

/** A rate limit: at most `count` deliveries per `perSeconds` seconds, bursts up to `count`. */
export interface RateLimit {
  /** 1 to 1,000,000. */
  count: number;
  /** 0.001 to 86,400. */
  perSeconds: number;
}

/**
 * Why an unleased message is not being delivered, judged in this order (the first that holds):
 * BACKING_OFF (not yet due after a failed delivery), DELAYED (not yet due, never delivered),
 * QUEUE_PAUSED, GROUP_HEAD_IN_FLIGHT (an earlier message of its group is still in the queue),
 * CONCURRENCY_CAP (the queue's maxInFlight leases are all held), RATE_LIMITED (the queue's
 * rate limit, or its group's groupRateLimit, has no token left), else READY.
 */
export type WaitingReason =
  | 'READY'
  | 'DELAYED'
  | 'BACKING_OFF'
  | 'GROUP_HEAD_IN_FLIGHT'
  | 'QUEUE_PAUSED'
  | 'CONCURRENCY_CAP'
  | 'RATE_LIMITED';

/** A queue's unleased messages counted by {@link WaitingReason}, beside its leases. */
export interface WaitingCounts {
  queue: string;
  ready: number;
  delayed: number;
  backingOff: number;
  groupHeadInFlight: number;
  queuePaused: number;
  concurrencyCap: number;
  rateLimited: number;
  leased: number;
  /** The queue's concurrency cap; null: none. */
  maxInFlight: number | null;
}

/**
 * What a schedule does with ticks missed while nothing ran (more than 10 s late): NONE skips
 * them, LATEST fires the latest one, ALL fires them all (at most catchUpMax, the latest).
 */
export type CatchUp = 'NONE' | 'LATEST' | 'ALL';

/** The message a schedule sends on each tick. */
export interface ScheduledMessage {
  payload: unknown;
  headers: Record<string, unknown> | null;
  priority: number;
  groupKey: string | null;
}

/** A cron schedule: one message into `queue` per tick of `cron` in `timezone`. */
export interface Schedule {
  name: string;
  cron: string;
  /** IANA time zone the cron expression is read in. */
  timezone: string;
  queue: string;
  message: ScheduledMessage;
  catchUp: CatchUp;
  /** Most missed ticks fired at once under catchUp ALL. */
  catchUpMax: number;
  /** True while it fires nothing (pauseSchedule). */
  paused: boolean;
  /** The next tick to fire. */
  nextTickAt: Date;
  /** The last tick fired; null before the first. */
  lastTickAt: Date | null;
  /** The message the last tick sent. */
  lastMessageId: string | null;
  createdAt: Date;
}

/** What createSchedule takes. */
export interface ScheduleInput {
  /** 1 to 128 letters, digits, `_ . -`. */
  name: string;
  /** Five fields (minute first) or six (second first), as croner reads them. */
  cron: string;
  /** Default "UTC". */
  timezone?: string;
  queue: string;
  /** payload, headers, priority, groupKey; not delaySeconds, runAt or dedupKey. */
  message: SendInput;
  /** Default LATEST. */
  catchUp?: CatchUp;
  /** 1 to 1000. Default 100. */
  catchUpMax?: number;
}

/** A named queue and its settings. */
export interface Queue {
  name: string;
  /** True while deliveries are stopped; sends are still accepted. */
  paused: boolean;
  config: QueueConfig;
  createdAt: Date;
}

/** Counts of a queue's messages by state; oldestReadyAgeSeconds is null with none ready. */
export interface QueueStats {
  queue: string;
  ready: number;
  delayed: number;
  leased: number;
  total: number;
  oldestReadyAgeSeconds: number | null;
}

/** A message as the contract's `Message` type describes it. */
export interface ContractMessage<Payload = unknown> {
  /** bigint as a decimal string. */
  id: string;
  queue: string;
  payload: Payload;
  headers: Record<string, unknown> | null;
  priority: number;
  /** Deliveries so far. */
  attempts: number;
  state: MessageState;
  runAt: Date;
  createdAt: Date;
  lastError: string | null;
  originQueue: string | null;
}

/** One message to send. */
export interface SendInput {
  payload: unknown;
  /** Not deliverable for this many seconds (0 to one year). Exclusive with runAt. */
  delaySeconds?: number | null;
  /** Not deliverable before this time. Exclusive with delaySeconds. */
  runAt?: Date | null;
  /** Higher first. Default 0. */
  priority?: number | null;
  /** A live message of the queue with this key is returned instead of a new one. */
  dedupKey?: string | null;
  /** Messages of a group are delivered one at a time, in send order. */
  groupKey?: string | null;
  headers?: Record<string, unknown> | null;
}

/**
 * JSON containment filters (PostgreSQL's `@>`) on an archived message: it matches when its
 * payload contains `payload` and its headers contain `headers`. Each is a JSON object; a
 * filter left out matches everything.
 */
export interface ArchiveFilter {
  payload?: Record<string, unknown> | null;
  headers?: Record<string, unknown> | null;
}

/**
 * Which live messages of a queue a browse, a count or a bulk action selects: every part given
 * must hold. `payload` and `headers` match by JSON containment (PostgreSQL's `@>`) and must
 * be JSON objects; the keys match exactly; `createdAfter` is inclusive, `createdBefore`
 * exclusive.
 */
export interface MessageFilter {
  payload?: Record<string, unknown> | null;
  headers?: Record<string, unknown> | null;
  groupKey?: string | null;
  dedupKey?: string | null;
  createdAfter?: Date | null;
  createdBefore?: Date | null;
}

/** What the stats history counts of a queue over a span (see QueueHistoryPoint). */
export interface QueueHistoryCounts {
  sent: number;
  delivered: number;
  acked: number;
  nacked: number;
  /** Moved to the dead-letter queue, by a nack or an expired lease. */
  deadLettered: number;
  /** Leases the reaper took back after they expired. */
  leaseExpired: number;
}

/**
 * One point of a queue's stats history: a bucket of `step` seconds starting at `at`. Counts
 * are what the service instances' engines did in it; depth and oldest ready age the leader's
 * last sample in it (null: none); latencies from runAt to lease, from the summed histogram.
 */
export interface QueueHistoryPoint extends QueueHistoryCounts {
  at: Date;
  depth: number | null;
  oldestReadyAgeSeconds: number | null;
  deliveryLatencyP50Seconds: number | null;
  deliveryLatencyP95Seconds: number | null;
  deliveryLatencyP99Seconds: number | null;
}

/** A message a consumer acked in a queue whose archive was on (archiveSeconds > 0). */
export interface ArchivedMessage<Payload = unknown> {
  /** The id it had while live; bigint as a decimal string. */
  id: string;
  queue: string;
  payload: Payload;
  headers: Record<string, unknown> | null;
  priority: number;
  /** Deliveries it took, the acked one included. */
  attempts: number;
  groupKey: string | null;
  /** When it was sent (the start of the sending transaction). */
  sentAt: Date;
  ackedAt: Date;
}

/** One page of archived messages in send order, and where the next starts. */
export interface ArchivedMessagePage<Payload = unknown> {
  messages: ArchivedMessage<Payload>[];
  /** Pass as `after` for the next page; null when this page is empty. */
  endCursor: string | null;
  hasNextPage: boolean;
}

/** RUNNING until every matching message is enqueued (DONE), or CANCELLED, or FAILED. */
export type ReplayJobState = 'RUNNING' | 'DONE' | 'CANCELLED' | 'FAILED';

/** REPLAY: copies of archived messages; REDRIVE: dead letters moved back to their origin. */
export type ReplayJobKind = 'REPLAY' | 'REDRIVE';

/**
 * A replay (archived messages of `queue` re-enqueued into `into`) or a redrive (dead letters
 * of `queue` moved back into it), run by the leader in batches.
 */
export interface ReplayJob {
  /** bigint as a decimal string. */
  id: string;
  kind: ReplayJobKind;
  /** The queue whose archive is replayed, or whose dead letters are redriven. */
  queue: string;
  /** The queue the messages go to. */
  into: string;
  /** Bounds on the send time: from inclusive, to exclusive; null: open. */
  from: Date | null;
  to: Date | null;
  filter: ArchiveFilter | null;
  /** Most messages per second; null: as fast as batches go. */
  ratePerSecond: number | null;
  /** A redrive's most dead letters to move; null: all (and for a replay). */
  max: number | null;
  /** Only counted: nothing was enqueued. */
  dryRun: boolean;
  state: ReplayJobState;
  /** Messages matching when the job started. */
  matched: number;
  /** Copies enqueued so far. */
  replayed: number;
  /** Why a FAILED job failed. */
  lastError: string | null;
  createdAt: Date;
  updatedAt: Date;
  finishedAt: Date | null;
}
