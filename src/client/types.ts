import type {
  Message as EngineMessage,
  MessageState,
  QueueConfig,
  QueueStats,
  SendInput,
} from '../queue/index.ts';
import type { ConsumeOptions, MessageHandler, QueueWorker } from './worker.ts';

export type { MessageState, QueueConfig, QueueStats, SendInput };

/**
 * A message as the contract (the GraphQL `Message` type) describes it. `Payload` is what the
 * caller says the payload is; it is not checked.
 */
export type Message<Payload = unknown> = Omit<
  EngineMessage,
  'payload' | 'dedupKey' | 'groupKey' | 'deadLetteredAt'
> & { payload: Payload };

/** A message and, when it is READY, its place in line. */
export type MessageWithPosition<Payload = unknown> = Message<Payload> & {
  /** Ready messages that will be delivered before it (0: it is next); null unless READY. */
  position: number | null;
  /** Estimated seconds until delivery at the queue's recent rate; null when unknown. */
  estimatedWaitSeconds: number | null;
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
  /** Page size, 1 to 1000. Default 50. */
  first?: number | null;
  /** Cursor: only messages with a greater id (the last id of the previous page). */
  after?: string | null;
}

/**
 * Every operation of the contract, typed. Two implementations behave the same: the HTTP
 * client (createClient: GraphQL over fetch) and the in-process client
 * (createInProcessClient: the engine over a pg pool). Failures reject with a
 * {@link HoldlineError} carrying the contract code.
 */
export interface HoldlineClient {
  /** Enqueues one message; committed when this resolves. QUEUE_NOT_FOUND for a missing queue. */
  send<Payload = unknown>(queue: string, message: SendInput): Promise<Message<Payload>>;
  /** Enqueues 1 to 1000 messages atomically; one Message per input, in input order. */
  sendBatch<Payload = unknown>(
    queue: string,
    messages: readonly SendInput[],
  ): Promise<Message<Payload>[]>;
  /** Copies a message into every queue bound to a pattern matching `topic`; the copies. */
  publish<Payload = unknown>(topic: string, message: SendInput): Promise<Message<Payload>[]>;
  /** Leases up to `max` messages; with waitSeconds, waits for one (long poll). */
  receive<Payload = unknown>(queue: string, options?: ReceiveOptions): Promise<Delivery<Payload>[]>;
  /** Acks one delivery: the message is deleted. LEASE_LOST when its lease was lost. */
  ack(receipt: string): Promise<boolean>;
  /** Acks 1 to 1000 deliveries; how many were acked (lost leases are skipped). */
  ackBatch(receipts: readonly string[]): Promise<number>;
  /** Gives a delivery back as failed: retried after backoff, or dead-lettered. */
  nack(receipt: string, options?: NackOptions): Promise<boolean>;
  /** Sets the lease to end `seconds` (1 to 43,200) from now. LEASE_LOST when it was lost. */
  extendLease<Payload = unknown>(receipt: string, seconds: number): Promise<Delivery<Payload>>;

  /** Creates a queue; QUEUE_EXISTS when the name is taken. */
  createQueue(name: string, config?: Partial<QueueConfig>): Promise<Queue>;
  /** Changes some settings of a queue. */
  configureQueue(name: string, config: Partial<QueueConfig>): Promise<Queue>;
  /** Deletes a queue and its messages; false when there was none. */
  deleteQueue(name: string): Promise<boolean>;
  /** One queue, or null. */
  getQueue(name: string): Promise<Queue | null>;
  /** Every queue, by name. */
  listQueues(): Promise<Queue[]>;
  /** Stops deliveries from a queue (sends still accepted). */
  pauseQueue(name: string): Promise<Queue>;
  /** Resumes deliveries; waiting consumers are woken. */
  resumeQueue(name: string): Promise<Queue>;
  /** Deletes every message of a queue; how many. */
  purge(queue: string): Promise<number>;
  /** Moves dead letters that came from `queue` back into it; how many. */
  redrive(queue: string, max?: number | null): Promise<number>;
  /** Binds a queue to a topic pattern (`orders.*`, `orders.#`). */
  bindQueue(queue: string, pattern: string): Promise<boolean>;
  /** Removes a binding; false when there was none. */
  unbindQueue(queue: string, pattern: string): Promise<boolean>;
  /** A queue's counts by state, or null when there is no such queue. */
  queueStats(queue: string): Promise<QueueStats | null>;
  /** One message with its place in line, or null. */
  getMessage<Payload = unknown>(id: string): Promise<MessageWithPosition<Payload> | null>;
  /** One page of a queue's messages in send order, for inspection. */
  listMessages<Payload = unknown>(
    queue: string,
    options?: ListMessagesOptions,
  ): Promise<Message<Payload>[]>;

  /** Starts a worker on `queue` over this client; see {@link QueueWorker}. */
  consume<Payload = unknown>(
    queue: string,
    handler: MessageHandler<Payload>,
    options?: ConsumeOptions,
  ): QueueWorker<Payload>;
  /** Stops the workers started through this client (see QueueWorker.stop), then lets go of
   * the client's resources. Safe to call twice. */
  close(): Promise<void>;
}

/** What the worker loop needs from a client: the delivery half of the contract. */
export type WorkerTransport = Pick<
  HoldlineClient,
  'receive' | 'ackBatch' | 'nack' | 'extendLease' | 'getQueue'
>;

/** Picks the contract's fields of an engine message (which carries more). */
export function toContractMessage<Payload>(message: EngineMessage): Message<Payload> {
  return {
    id: message.id,
    queue: message.queue,
    payload: message.payload as Payload,
    headers: message.headers,
    priority: message.priority,
    attempts: message.attempts,
    state: message.state,
    runAt: message.runAt,
    createdAt: message.createdAt,
    lastError: message.lastError,
    originQueue: message.originQueue,
  };
}
