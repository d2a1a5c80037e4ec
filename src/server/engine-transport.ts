import { HoldlineError } from '../client/errors.ts';
import type { HoldlineClient } from '../client/holdline-client.ts';
import { retryOptions, sendIdempotency, withRetries } from '../client/retry.ts';
import type { Idempotency, RetryOptions } from '../client/retry.ts';
import type {
  ArchivedMessagePage,
  ArchivedMessagesOptions,
  BulkSelection,
  CountMessagesOptions,
  Delivery,
  ListMessagesOptions,
  Message,
  MessageFilter,
  MessageWithPosition,
  NackOptions,
  Queue,
  QueueHistoryOptions,
  QueueHistoryPoint,
  ReceiveOptions,
  ReplayJob,
  ReplayOptions,
  StartRedriveOptions,
} from '../client/types.ts';
import { QueueWorker, WorkerGroup } from '../client/worker.ts';
import type { ConsumeOptions, MessageHandler } from '../client/worker.ts';
import type { ContractMessage } from '../contract.ts';
import { QueueError } from '../queue/index.ts';
import type {
  QueueConfig,
  QueueEngine,
  QueueStats,
  Schedule,
  ScheduleInput,
  SendInput,
} from '../queue/index.ts';

/**
 * The engine's QueueError as a HoldlineError (same code and message, the original as
 * `cause`), so in-process and HTTP callers catch the same type. Anything else is returned
 * unchanged: an unexpected error is a bug to see, not a code to branch on.
 */
export function fromEngineError(error: unknown): unknown {
  if (error instanceof QueueError) {
    return new HoldlineError(error.code, error.message, { cause: error });
  }
  return error;
}

/** Picks the contract's fields of an engine message (which carries more). */
export function toContractMessage<Payload>(message: ContractMessage): Message<Payload> {
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

/**
 * The client over a QueueEngine in this process: the same methods and results as the HTTP
 * client, with the engine's QueueErrors turned into HoldlineErrors. Long polls wait on the
 * engine's wake-ups (LISTEN/NOTIFY and this process's own commits). It owns nothing: close()
 * stops the workers started through it and leaves the engine to whoever made it (see
 * createInProcessClient for the variant that owns its pool, listener and engine).
 */
export class EngineTransport implements HoldlineClient {
  private readonly workers = new WorkerGroup();
  private readonly retry: Required<RetryOptions>;

  /**
   * @param engine the engine to run operations on (started by its owner).
   * @param options.retry retries of UNAVAILABLE failures (a lost connection, a serialization
   *   conflict), for idempotent operations only: the same policy as the HTTP client.
   */
  constructor(
    readonly engine: QueueEngine,
    options: { retry?: RetryOptions } = {},
  ) {
    this.retry = retryOptions(options.retry);
  }

  send<P>(queue: string, message: SendInput): Promise<Message<P>> {
    return this.call(sendIdempotency([message]), async () =>
      toContractMessage<P>(await this.engine.send(queue, message)),
    );
  }

  sendBatch<P>(queue: string, messages: readonly SendInput[]): Promise<Message<P>[]> {
    return this.call(sendIdempotency(messages), async () =>
      (await this.engine.sendBatch(queue, messages)).map((m) => toContractMessage<P>(m)),
    );
  }

  publish<P>(topic: string, message: SendInput): Promise<Message<P>[]> {
    return this.call(sendIdempotency([message]), async () =>
      (await this.engine.publish(topic, message)).map((m) => toContractMessage<P>(m)),
    );
  }

  receive<P>(queue: string, options: ReceiveOptions = {}): Promise<Delivery<P>[]> {
    return this.call('not-idempotent', async () => {
      const deliveries = await this.engine.receive({
        queue,
        max: options.max,
        visibilityTimeoutSeconds: options.visibilityTimeoutSeconds,
        waitSeconds: options.waitSeconds,
        signal: options.signal,
      });
      // Messages leased just before an abort are still returned: the caller must settle them.
      if (deliveries.length === 0 && options.signal?.aborted === true) {
        throw options.signal.reason;
      }
      return deliveries.map((d) => ({
        receipt: d.receipt,
        leaseExpiresAt: d.leaseExpiresAt,
        message: toContractMessage<P>(d.message),
      }));
    });
  }

  ack(receipt: string): Promise<boolean> {
    return this.call('idempotent', async () => {
      await this.engine.ack(receipt);
      return true;
    });
  }

  ackBatch(receipts: readonly string[]): Promise<number> {
    return this.call('idempotent', async () => (await this.engine.ackBatch(receipts)).length);
  }

  nack(receipt: string, options: NackOptions = {}): Promise<boolean> {
    return this.call('idempotent', async () => {
      await this.engine.nack(receipt, options);
      return true;
    });
  }

  extendLease<P>(receipt: string, seconds: number): Promise<Delivery<P>> {
    return this.call('idempotent', async () => {
      const delivery = await this.engine.extendLease(receipt, seconds);
      return {
        receipt: delivery.receipt,
        leaseExpiresAt: delivery.leaseExpiresAt,
        message: toContractMessage<P>(delivery.message),
      };
    });
  }

  createQueue(name: string, config?: Partial<QueueConfig>): Promise<Queue> {
    return this.call('not-idempotent', async () =>
      toQueue(await this.engine.createQueue(name, config)),
    );
  }

  configureQueue(name: string, config: Partial<QueueConfig>): Promise<Queue> {
    return this.call('idempotent', async () =>
      toQueue(await this.engine.configureQueue(name, config)),
    );
  }

  deleteQueue(name: string): Promise<boolean> {
    return this.call('not-idempotent', () => this.engine.deleteQueue(name));
  }

  getQueue(name: string): Promise<Queue | null> {
    return this.call('idempotent', async () => {
      const queue = await this.engine.getQueue(name);
      return queue === undefined ? null : toQueue(queue);
    });
  }

  listQueues(): Promise<Queue[]> {
    return this.call('idempotent', async () => (await this.engine.listQueues()).map(toQueue));
  }

  pauseQueue(name: string): Promise<Queue> {
    return this.call('idempotent', async () => toQueue(await this.engine.pauseQueue(name)));
  }

  resumeQueue(name: string): Promise<Queue> {
    return this.call('idempotent', async () => toQueue(await this.engine.resumeQueue(name)));
  }

  purge(queue: string): Promise<number> {
    return this.call('not-idempotent', () => this.engine.purge(queue));
  }

  redrive(queue: string, max?: number | null): Promise<number> {
    return this.call('not-idempotent', () => this.engine.redrive(queue, max));
  }

  bindQueue(queue: string, pattern: string): Promise<boolean> {
    return this.call('idempotent', async () => {
      await this.engine.bindQueue(queue, pattern);
      return true;
    });
  }

  unbindQueue(queue: string, pattern: string): Promise<boolean> {
    return this.call('not-idempotent', () => this.engine.unbindQueue(queue, pattern));
  }

  queueStats(queue: string): Promise<QueueStats | null> {
    return this.call('idempotent', async () => (await this.engine.queueStats(queue)) ?? null);
  }

  getMessage<P>(id: string): Promise<MessageWithPosition<P> | null> {
    return this.call('idempotent', async () => {
      const message = await this.engine.getMessage(id);
      if (message === undefined) return null;
      return {
        ...toContractMessage<P>(message),
        position: message.position,
        estimatedWaitSeconds: message.estimatedWaitSeconds,
        waitingReason: message.waitingReason,
        nextEligibleAt: message.nextEligibleAt,
      };
    });
  }

  createSchedule(input: ScheduleInput): Promise<Schedule> {
    return this.call('not-idempotent', () => this.engine.createSchedule(input));
  }

  schedules(queue?: string | null): Promise<Schedule[]> {
    return this.call('idempotent', () => this.engine.listSchedules(queue));
  }

  pauseSchedule(name: string): Promise<Schedule> {
    return this.call('idempotent', () => this.engine.pauseSchedule(name));
  }

  resumeSchedule(name: string): Promise<Schedule> {
    return this.call('idempotent', () => this.engine.resumeSchedule(name));
  }

  deleteSchedule(name: string): Promise<boolean> {
    return this.call('not-idempotent', () => this.engine.deleteSchedule(name));
  }

  listMessages<P>(queue: string, options: ListMessagesOptions = {}): Promise<Message<P>[]> {
    return this.call('idempotent', async () =>
      (await this.engine.listMessages({ queue, ...options })).map((m) => toContractMessage<P>(m)),
    );
  }

  countMessages(queue: string, options: CountMessagesOptions = {}): Promise<number> {
    return this.call('idempotent', () => this.engine.countMessages({ queue, ...options }));
  }

  deleteMessages(queue: string, selection: BulkSelection = {}): Promise<number> {
    return this.call('idempotent', () => this.engine.deleteMessages({ queue, ...selection }));
  }

  moveMessages(queue: string, to: string, selection: BulkSelection = {}): Promise<number> {
    return this.call('idempotent', () => this.engine.moveMessages({ queue, to, ...selection }));
  }

  retryMessages(queue: string, filter?: MessageFilter | null): Promise<number> {
    return this.call('idempotent', () => this.engine.retryMessages({ queue, filter }));
  }

  redriveMessages(queue: string, filter?: MessageFilter | null): Promise<number> {
    return this.call('idempotent', () => this.engine.redriveMessages({ queue, filter }));
  }

  queueHistory(queue: string, options: QueueHistoryOptions): Promise<QueueHistoryPoint[]> {
    return this.call('idempotent', () => this.engine.queueHistory({ queue, ...options }));
  }

  archivedMessages<P>(
    queue: string,
    options: ArchivedMessagesOptions = {},
  ): Promise<ArchivedMessagePage<P>> {
    return this.call('idempotent', async () => {
      const page = await this.engine.listArchivedMessages({ queue, ...options });
      return {
        ...page,
        messages: page.messages.map((m) => ({ ...m, payload: m.payload as P })),
      };
    });
  }

  replay(queue: string, options: ReplayOptions = {}): Promise<ReplayJob> {
    return this.call('not-idempotent', () => this.engine.replay({ queue, ...options }));
  }

  startRedrive(queue: string, options: StartRedriveOptions = {}): Promise<ReplayJob> {
    return this.call('not-idempotent', () => this.engine.startRedrive({ queue, ...options }));
  }

  replayJobs(queue: string): Promise<ReplayJob[]> {
    return this.call('idempotent', () => this.engine.replayJobs(queue));
  }

  replayJob(id: string): Promise<ReplayJob | null> {
    return this.call('idempotent', async () => (await this.engine.replayJob(id)) ?? null);
  }

  cancelReplay(id: string): Promise<ReplayJob | null> {
    return this.call('idempotent', async () => (await this.engine.cancelReplay(id)) ?? null);
  }

  consume<P>(
    queue: string,
    handler: MessageHandler<P>,
    options: ConsumeOptions = {},
  ): QueueWorker<P> {
    return this.workers.add(new QueueWorker<P>(this, queue, handler, options));
  }

  /** Runs an engine call with retries, rethrowing its QueueError as a HoldlineError. */
  private call<T>(idempotency: Idempotency, run: () => Promise<T>): Promise<T> {
    return withRetries(idempotency, this.retry, async () => {
      try {
        return await run();
      } catch (error) {
        throw fromEngineError(error);
      }
    });
  }

  /** Stops the workers started through this client. */
  async close(): Promise<void> {
    await this.workers.stopAll();
  }
}

function toQueue(queue: Queue): Queue {
  return {
    name: queue.name,
    paused: queue.paused,
    config: { ...queue.config },
    createdAt: queue.createdAt,
  };
}
