import type {
  ArchivedMessagePage,
  ArchivedMessagesOptions,
  BulkSelection,
  CountMessagesOptions,
  ListMessagesOptions,
  Message,
  MessageFilter,
  MessageWithPosition,
  Queue,
  QueueConfig,
  QueueHistoryOptions,
  QueueHistoryPoint,
  QueueStats,
  ReplayJob,
  ReplayOptions,
  StartRedriveOptions,
  Schedule,
  ScheduleInput,
  SendInput,
  WorkerTransport,
} from './types.ts';
import type { ConsumeOptions, MessageHandler, QueueWorker } from './worker.ts';

/**
 * Every operation of the contract, typed. Two implementations behave the same: the HTTP
 * client (createClient: GraphQL over fetch) and the in-process client
 * (createInProcessClient: the engine over a pg pool). Failures reject with a
 * {@link HoldlineError} carrying the contract code.
 */
export interface HoldlineClient extends WorkerTransport {
  /** Enqueues one message; committed when this resolves. QUEUE_NOT_FOUND for a missing queue. */
  send<Payload = unknown>(queue: string, message: SendInput): Promise<Message<Payload>>;
  /** Enqueues 1 to 1000 messages atomically; one Message per input, in input order. */
  sendBatch<Payload = unknown>(
    queue: string,
    messages: readonly SendInput[],
  ): Promise<Message<Payload>[]>;
  /** Copies a message into every queue bound to a pattern matching `topic`; the copies. */
  publish<Payload = unknown>(topic: string, message: SendInput): Promise<Message<Payload>[]>;
  /** Acks one delivery: the message is deleted. LEASE_LOST when its lease was lost. */
  ack(receipt: string): Promise<boolean>;

  /** Creates a queue; QUEUE_EXISTS when the name is taken. */
  createQueue(name: string, config?: Partial<QueueConfig>): Promise<Queue>;
  /** Changes some settings of a queue. */
  configureQueue(name: string, config: Partial<QueueConfig>): Promise<Queue>;
  /** Deletes a queue and its messages; false when there was none. */
  deleteQueue(name: string): Promise<boolean>;
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

  /** How many of a queue's messages match, counting no further than `max` (messageCount). */
  countMessages(queue: string, options?: CountMessagesOptions): Promise<number>;
  /**
   * Deletes every unleased message of `queue` the selection matches, in chunks that commit
   * one by one; how many. Needs admin rights.
   */
  deleteMessages(queue: string, selection?: BulkSelection): Promise<number>;
  /** Moves every unleased matching message of `queue` into queue `to`; how many. */
  moveMessages(queue: string, to: string, selection?: BulkSelection): Promise<number>;
  /** Makes every matching delayed or backing-off message of `queue` deliverable now; how many. */
  retryMessages(queue: string, filter?: MessageFilter | null): Promise<number>;
  /**
   * Moves every matching dead letter of `queue` (a dead-letter queue) back to the queue it died
   * in, deliverable now with attempts reset; how many.
   */
  redriveMessages(queue: string, filter?: MessageFilter | null): Promise<number>;
  /** A queue's stats history over [from, to) in points of `stepSeconds` (queueHistory). */
  queueHistory(queue: string, options: QueueHistoryOptions): Promise<QueueHistoryPoint[]>;

  /** One page of a queue's archive in send order (archivedMessages). */
  archivedMessages<Payload = unknown>(
    queue: string,
    options?: ArchivedMessagesOptions,
  ): Promise<ArchivedMessagePage<Payload>>;
  /** Starts a replay job of a queue's archive; the service's leader runs it. */
  replay(queue: string, options?: ReplayOptions): Promise<ReplayJob>;
  /**
   * Starts a redrive job: the dead letters whose origin is `queue` and that match move back to
   * it in batches run by the service's leader (a job like a replay's: replayJob, replayJobs,
   * cancelReplay).
   */
  startRedrive(queue: string, options?: StartRedriveOptions): Promise<ReplayJob>;
  /** One replay job, or null. */
  replayJob(id: string): Promise<ReplayJob | null>;
  /** The newest 100 replay and redrive jobs of a queue, newest first. */
  replayJobs(queue: string): Promise<ReplayJob[]>;
  /** Cancels a running replay job; null when there is none. */
  cancelReplay(id: string): Promise<ReplayJob | null>;
  /**
   * Creates a cron schedule: one message into its queue per tick, from the first tick after
   * now. BAD_USER_INPUT, QUEUE_NOT_FOUND, SCHEDULE_EXISTS.
   */
  createSchedule(input: ScheduleInput): Promise<Schedule>;
  /** Every schedule, or those sending into `queue`, by name. */
  schedules(queue?: string | null): Promise<Schedule[]>;
  /** Stops a schedule firing. SCHEDULE_NOT_FOUND. */
  pauseSchedule(name: string): Promise<Schedule>;
  /** Resumes a schedule from its first tick after now. SCHEDULE_NOT_FOUND. */
  resumeSchedule(name: string): Promise<Schedule>;
  /** Deletes a schedule; false when there was none. */
  deleteSchedule(name: string): Promise<boolean>;

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
