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
   * Most messages of the queue leased at once, across every consumer and instance (1 to
   * 100,000); null: no cap.
   */
  maxInFlight: number | null;
}

/**
 * Why an unleased message is not being delivered, judged in this order (the first that holds):
 * BACKING_OFF (not yet due after a failed delivery), DELAYED (not yet due, never delivered),
 * QUEUE_PAUSED, GROUP_HEAD_IN_FLIGHT (an earlier message of its group is still in the queue),
 * CONCURRENCY_CAP (the queue's maxInFlight leases are all held), RATE_LIMITED (the queue's
 * rate limit has no token left), else READY.
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
