import type {
  ArchiveFilter,
  ArchivedMessage,
  ArchivedMessagePage,
  ContractMessage,
  MessageFilter,
  MessageState,
  QueueHistoryPoint,
  QueueConfig,
  QueueStats,
  ReplayJob,
  ReplayJobKind,
  ReplayJobState,
  SendInput,
  WaitingReason,
  CatchUp,
  RateLimit,
  Schedule,
  ScheduleInput,
  ScheduledMessage,
} from '../contract.ts';

export type {
  MessageFilter,
  QueueHistoryPoint,
  ArchivedMessage,
  ArchivedMessagePage,
  ArchiveFilter,
  CatchUp,
  MessageState,
  QueueConfig,
  QueueStats,
  RateLimit,
  ReplayJob,
  ReplayJobKind,
  ReplayJobState,
  Schedule,
  ScheduledMessage,
  ScheduleInput,
  SendInput,
  WaitingReason,
};

/** Options of {@link HoldlineClient.archivedMessages}. */
export interface ArchivedMessagesOptions {
  /** Only messages sent at or after this time. */
  from?: Date | null;
  /** Only messages sent before this time. */
  to?: Date | null;
  /** JSON containment (@>) on payload and headers. */
  filter?: ArchiveFilter | null;
  /** Page size, 1 to 1000. Default 50. */
  first?: number;
  /** The endCursor of the previous page. */
  after?: string | null;
}

/** Options of {@link HoldlineClient.replay}. */
export interface ReplayOptions {
  /** Where the copies go. Default: the queue itself. */
  into?: string | null;
  /** Only messages sent at or after this time. */
  from?: Date | null;
  /** Only messages sent before this time. */
  to?: Date | null;
  /** JSON containment (@>) on payload and headers. */
  filter?: ArchiveFilter | null;
  /** Most copies per second. Default: no limit. */
  ratePerSecond?: number | null;
  /** Only count. Default false. */
  dryRun?: boolean;
}

/**
 * A message as the contract (the GraphQL `Message` type) describes it. `Payload` is what the
 * caller says the payload is; it is not checked.
 */
export type Message<Payload = unknown> = ContractMessage<Payload>;

/** A message and, when it is READY, its place in line. */
export type MessageWithPosition<Payload = unknown> = Message<Payload> & {
  /** Ready messages that will be delivered before it (0: it is next); null unless READY. */
  position: number | null;
  /** Estimated seconds until delivery at the queue's recent rate; null when unknown. */
  estimatedWaitSeconds: number | null;
  /** Why it is not being delivered yet; null while leased. */
  waitingReason: WaitingReason | null;
  /** When it will next be eligible, where known (its due time; now when READY). */
  nextEligibleAt: Date | null;
};

/** A leased message and the receipt that acks, nacks or extends it. */
export interface Delivery<Payload = unknown> {
  /** Proof of this lease; valid only while the lease is. */
  receipt: string;
  /** When the lease ends unless extended (the service's clock). */
  leaseExpiresAt: Date;
  /** The message: state LEASED, attempts including this delivery. */
  message: Message<Payload>;
}

/** A named queue and its settings. */
export interface Queue {
  name: string;
  /** True while deliveries are stopped; sends are still accepted. */
  paused: boolean;
  config: QueueConfig;
  createdAt: Date;
}

/** Options of {@link HoldlineClient.receive}. */
export interface ReceiveOptions {
  /** Most messages to lease, 1 to 1000. Default 1. */
  max?: number;
  /** Lease length in seconds, 1 to 43,200. Default: the queue's visibilityTimeout. */
  visibilityTimeoutSeconds?: number;
  /** Long poll: seconds (0 to 20) to wait when nothing is deliverable. Default 0. */
  waitSeconds?: number;
  /**
   * Ends a long poll early; the call then rejects with the signal's reason. Over HTTP a
   * message leased in the instant before the abort reaches the service is not returned; its
   * lease expires and it is delivered again (at-least-once).
   */
  signal?: AbortSignal;
}

/** Options of {@link HoldlineClient.nack}. */
export interface NackOptions {
  /** Seconds until it may be delivered again, 0 to one year. Default: the queue's backoff. */
  delaySeconds?: number | null;
  /** Why it failed; kept as the message's lastError (8,192 characters at most are kept). */
  error?: string | null;
}

/** Options of {@link HoldlineClient.listMessages}. */
export interface ListMessagesOptions {
  /** Only messages in this state. Default: all. */
  state?: MessageState | null;
  /** Only messages matching every part given. Default: all. */
  filter?: MessageFilter | null;
  /** Page size, 1 to 1000. Default 50. */
  first?: number | null;
  /** Cursor: only messages with a greater id (the last id of the previous page). */
  after?: string | null;
}

/**
 * What the worker loop needs from a client: the delivery half of the contract (see
 * HoldlineClient in holdline-client.ts, which extends it).
 */
export interface WorkerTransport {
  /** Leases up to `max` messages; with waitSeconds, waits for one (long poll). */
  receive<Payload = unknown>(queue: string, options?: ReceiveOptions): Promise<Delivery<Payload>[]>;
  /** Acks 1 to 1000 deliveries; how many were acked (lost leases are skipped). */
  ackBatch(receipts: readonly string[]): Promise<number>;
  /** Gives a delivery back as failed: retried after backoff, or dead-lettered. */
  nack(receipt: string, options?: NackOptions): Promise<boolean>;
  /** Sets the lease to end `seconds` (1 to 43,200) from now. LEASE_LOST when it was lost. */
  extendLease<Payload = unknown>(receipt: string, seconds: number): Promise<Delivery<Payload>>;
  /** One queue, or null. */
  getQueue(name: string): Promise<Queue | null>;
}

/** Options of {@link HoldlineClient.countMessages}. */
export interface CountMessagesOptions {
  /** Only messages in this state. Default: all. */
  state?: MessageState | null;
  /** Only messages matching every part given. Default: all. */
  filter?: MessageFilter | null;
  /** Where counting stops, 1 to 1,000,000 (a count equal to it means "at least"). Default 100,000. */
  max?: number | null;
}

/** Which messages a bulk action ({@link HoldlineClient.deleteMessages} …) acts on. */
export interface BulkSelection {
  /** READY or DELAYED; default both (leased messages are never acted on). */
  state?: Exclude<MessageState, 'LEASED'> | null;
  /** Only messages matching every part given. Default: all. */
  filter?: MessageFilter | null;
}

/** Options of {@link HoldlineClient.queueHistory}. */
export interface QueueHistoryOptions {
  /** Start of the range (inclusive). */
  from: Date;
  /** End of the range (exclusive). */
  to: Date;
  /** Seconds per point, a whole number of minutes from 60 to 86,400. Default 60. */
  stepSeconds?: number | null;
}

/** Options of {@link HoldlineClient.startRedrive}. */
export interface StartRedriveOptions {
  /** Only dead letters whose payload and headers contain these JSON objects. */
  filter?: ArchiveFilter | null;
  /** Most dead letters to move. Default: all. */
  max?: number | null;
  /** Most moves per second. Default: no limit. */
  ratePerSecond?: number | null;
  /** Only count what would move. Default false. */
  dryRun?: boolean;
}
