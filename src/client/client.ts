import { linkAbortSignals } from '../abort-signals.ts';
import type {
  CatchUp,
  QueueConfig,
  QueueStats,
  Schedule,
  ScheduleInput,
  SendInput,
  WaitingReason,
} from '../contract.ts';
import { HoldlineError, toHoldlineErrorCode } from './errors.ts';
import { retryOptions, sendIdempotency, withRetries } from './retry.ts';
import type { Idempotency, RetryOptions } from './retry.ts';
import type {
  ArchivedMessage,
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
} from './types.ts';
import type { HoldlineClient } from './holdline-client.ts';
import { QueueWorker, WorkerGroup } from './worker.ts';
import type { ConsumeOptions, MessageHandler } from './worker.ts';

/** How long one HTTP request may take (a long poll adds its waitSeconds). */
export const REQUEST_TIMEOUT_MS_DEFAULT = 30_000;

/** Options of {@link createClient}. */
export interface ClientOptions {
  /** The service: `http://localhost:4000` or its GraphQL endpoint `…/graphql`. */
  url: string;
  /** Sent as `Authorization: Bearer <token>` when set. */
  token?: string;
  /** More headers for every request. */
  headers?: Record<string, string>;
  /** Retries of failures that may pass (network, 503, RATE_LIMITED); see {@link RetryOptions}. */
  retry?: RetryOptions;
  /** Per-request timeout in ms, besides a long poll's wait. Default {@link REQUEST_TIMEOUT_MS_DEFAULT}. */
  requestTimeoutMs?: number;
  /** The fetch to use. Default: the global fetch (Node 20+). */
  fetch?: typeof fetch;
}

const MESSAGE_FIELDS = `id queue payload headers priority attempts state runAt createdAt lastError originQueue`;
const DELIVERY_FIELDS = `receipt leaseExpiresAt message { ${MESSAGE_FIELDS} }`;
const QUEUE_FIELDS = `name paused createdAt config {
  visibilityTimeout maxAttempts deadLetterQueue backoffInitialSeconds backoffMaxSeconds
  retentionSeconds maxPayloadBytes archiveSeconds maxInFlight rateLimit { count perSeconds }
  groupMaxInFlight groupRateLimit { count perSeconds } }`;
const STATS_FIELDS = `queue ready delayed leased total oldestReadyAgeSeconds`;
const ARCHIVED_FIELDS = `id queue payload headers priority attempts groupKey sentAt ackedAt`;
const REPLAY_JOB_FIELDS = `id kind queue into from to filter ratePerSecond max dryRun state matched
  replayed lastError createdAt updatedAt finishedAt`;
const HISTORY_FIELDS = `at sent delivered acked nacked deadLettered leaseExpired depth
  oldestReadyAgeSeconds deliveryLatencyP50Seconds deliveryLatencyP95Seconds
  deliveryLatencyP99Seconds`;
const SCHEDULE_FIELDS = `name cron timezone queue payload headers priority groupKey catchUp
  catchUpMax paused nextTickAt lastTickAt lastMessageId createdAt`;

/** Node socket errors that mean the request never reached the service. */
const NOT_CONNECTED_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'UND_ERR_CONNECT_TIMEOUT',
]);

/** A schedule as GraphQL sends it: the message's fields flat, dates as strings. */
interface WireSchedule {
  name: string;
  cron: string;
  timezone: string;
  queue: string;
  payload: unknown;
  headers: Record<string, unknown> | null;
  priority: number;
  groupKey: string | null;
  catchUp: CatchUp;
  catchUpMax: number;
  paused: boolean;
  nextTickAt: string;
  lastTickAt: string | null;
  lastMessageId: string | null;
  createdAt: string;
}

/** A message as GraphQL sends it: dates as strings. */
type WireMessage = Omit<Message, 'runAt' | 'createdAt'> & { runAt: string; createdAt: string };
type WireMessageWithPosition = WireMessage & {
  position: number | null;
  estimatedWaitSeconds: number | null;
  waitingReason: WaitingReason | null;
  nextEligibleAt: string | null;
};
interface WireDelivery {
  receipt: string;
  leaseExpiresAt: string;
  message: WireMessage;
}
interface WireQueue {
  name: string;
  paused: boolean;
  createdAt: string;
  config: Omit<QueueConfig, 'visibilityTimeoutSeconds'> & { visibilityTimeout: number };
}
interface GraphQLBody {
  data?: Record<string, unknown> | null;
  errors?: { message?: string; extensions?: Record<string, unknown> }[];
}

/**
 * A typed client for a Holdline service over GraphQL/HTTP (fetch). Every contract operation
 * is a method; failures reject with a {@link HoldlineError} carrying the contract code.
 * Failures that may pass (network errors, 502/503/504, UNAVAILABLE, RATE_LIMITED) are
 * retried with capped, jittered backoff, but a send whose messages lack a dedupKey, a
 * receive and a redrive only when the request provably never ran: a message is never sent
 * twice by a retry. The client holds no connection of its own; close() stops the workers
 * started through it.
 */
export function createClient(options: ClientOptions): HoldlineClient {
  return new HttpClient(options);
}

class HttpClient implements HoldlineClient {
  private readonly endpoint: string;
  private readonly headers: Record<string, string>;
  private readonly retry: Required<RetryOptions>;
  private readonly timeoutMs: number;
  private readonly fetch: typeof fetch;
  private readonly workers = new WorkerGroup();

  constructor(options: ClientOptions) {
    let url: URL;
    try {
      url = new URL(options.url);
    } catch (error) {
      throw new HoldlineError('BAD_USER_INPUT', `url is not a URL: ${String(options.url)}`, {
        cause: error,
      });
    }
    const base = url.toString().replace(/\/+$/, '');
    this.endpoint = base.endsWith('/graphql') ? base : `${base}/graphql`;
    this.headers = {
      'content-type': 'application/json',
      accept: 'application/graphql-response+json, application/json',
      ...options.headers,
      ...(options.token === undefined ? {} : { authorization: `Bearer ${options.token}` }),
    };
    this.retry = retryOptions(options.retry);
    this.timeoutMs = options.requestTimeoutMs ?? REQUEST_TIMEOUT_MS_DEFAULT;
    this.fetch = options.fetch ?? globalThis.fetch;
  }

  async send<P>(queue: string, message: SendInput): Promise<Message<P>> {
    const data = await this.request<{ send: WireMessage }>(
      `mutation Send($queue: String!, $message: SendInput!) {
        send(queue: $queue, message: $message) { ${MESSAGE_FIELDS} } }`,
      { queue, message: toWireSendInput(message) },
      sendIdempotency([message]),
    );
    return toMessage<P>(data.send);
  }

  async sendBatch<P>(queue: string, messages: readonly SendInput[]): Promise<Message<P>[]> {
    const data = await this.request<{ sendBatch: WireMessage[] }>(
      `mutation SendBatch($queue: String!, $messages: [SendInput!]!) {
        sendBatch(queue: $queue, messages: $messages) { ${MESSAGE_FIELDS} } }`,
      { queue, messages: messages.map(toWireSendInput) },
      sendIdempotency(messages),
    );
    return data.sendBatch.map((m) => toMessage<P>(m));
  }

  async publish<P>(topic: string, message: SendInput): Promise<Message<P>[]> {
    const data = await this.request<{ publish: WireMessage[] }>(
      `mutation Publish($topic: String!, $message: SendInput!) {
        publish(topic: $topic, message: $message) { ${MESSAGE_FIELDS} } }`,
      { topic, message: toWireSendInput(message) },
      sendIdempotency([message]),
    );
    return data.publish.map((m) => toMessage<P>(m));
  }

  async receive<P>(queue: string, options: ReceiveOptions = {}): Promise<Delivery<P>[]> {
    const data = await this.request<{ receive: WireDelivery[] }>(
      `mutation Receive($queue: String!, $max: Int, $visibilityTimeout: Int, $waitSeconds: Int) {
        receive(queue: $queue, max: $max, visibilityTimeout: $visibilityTimeout,
                waitSeconds: $waitSeconds) { ${DELIVERY_FIELDS} } }`,
      {
        queue,
        max: options.max ?? 1,
        visibilityTimeout: options.visibilityTimeoutSeconds ?? null,
        waitSeconds: options.waitSeconds ?? 0,
      },
      'not-idempotent',
      { signal: options.signal, extraTimeoutMs: (options.waitSeconds ?? 0) * 1000 },
    );
    return data.receive.map((d) => toDelivery<P>(d));
  }

  async ack(receipt: string): Promise<boolean> {
    const data = await this.request<{ ack: boolean }>(
      `mutation Ack($receipt: String!) { ack(receipt: $receipt) }`,
      { receipt },
      'idempotent',
    );
    return data.ack;
  }

  async ackBatch(receipts: readonly string[]): Promise<number> {
    const data = await this.request<{ ackBatch: number }>(
      `mutation AckBatch($receipts: [String!]!) { ackBatch(receipts: $receipts) }`,
      { receipts },
      'idempotent',
    );
    return data.ackBatch;
  }

  async nack(receipt: string, options: NackOptions = {}): Promise<boolean> {
    const data = await this.request<{ nack: boolean }>(
      `mutation Nack($receipt: String!, $delaySeconds: Int, $error: String) {
        nack(receipt: $receipt, delaySeconds: $delaySeconds, error: $error) }`,
      { receipt, delaySeconds: options.delaySeconds ?? null, error: options.error ?? null },
      // Fenced by the lease: a repeat after success fails with LEASE_LOST, changing nothing.
      'idempotent',
    );
    return data.nack;
  }

  async extendLease<P>(receipt: string, seconds: number): Promise<Delivery<P>> {
    const data = await this.request<{ extendLease: WireDelivery }>(
      `mutation ExtendLease($receipt: String!, $seconds: Int!) {
        extendLease(receipt: $receipt, seconds: $seconds) { ${DELIVERY_FIELDS} } }`,
      { receipt, seconds },
      'idempotent',
    );
    return toDelivery<P>(data.extendLease);
  }

  async createQueue(name: string, config?: Partial<QueueConfig>): Promise<Queue> {
    const data = await this.request<{ createQueue: WireQueue }>(
      `mutation CreateQueue($name: String!, $config: QueueConfigInput) {
        createQueue(name: $name, config: $config) { ${QUEUE_FIELDS} } }`,
      { name, config: config === undefined ? null : toWireConfig(config) },
      // A repeat after success would fail with QUEUE_EXISTS, hiding that it worked.
      'not-idempotent',
    );
    return toQueue(data.createQueue);
  }

  async configureQueue(name: string, config: Partial<QueueConfig>): Promise<Queue> {
    const data = await this.request<{ configureQueue: WireQueue }>(
      `mutation ConfigureQueue($name: String!, $config: QueueConfigInput!) {
        configureQueue(name: $name, config: $config) { ${QUEUE_FIELDS} } }`,
      { name, config: toWireConfig(config) },
      'idempotent',
    );
    return toQueue(data.configureQueue);
  }

  async deleteQueue(name: string): Promise<boolean> {
    const data = await this.request<{ deleteQueue: boolean }>(
      `mutation DeleteQueue($name: String!) { deleteQueue(name: $name) }`,
      { name },
      'not-idempotent',
    );
    return data.deleteQueue;
  }

  async getQueue(name: string): Promise<Queue | null> {
    const data = await this.request<{ queue: WireQueue | null }>(
      `query Queue($name: String!) { queue(name: $name) { ${QUEUE_FIELDS} } }`,
      { name },
      'idempotent',
    );
    return data.queue === null ? null : toQueue(data.queue);
  }

  async listQueues(): Promise<Queue[]> {
    const data = await this.request<{ queues: WireQueue[] }>(
      `query Queues { queues { ${QUEUE_FIELDS} } }`,
      {},
      'idempotent',
    );
    return data.queues.map(toQueue);
  }

  async pauseQueue(name: string): Promise<Queue> {
    const data = await this.request<{ pauseQueue: WireQueue }>(
      `mutation PauseQueue($name: String!) { pauseQueue(name: $name) { ${QUEUE_FIELDS} } }`,
      { name },
      'idempotent',
    );
    return toQueue(data.pauseQueue);
  }

  async resumeQueue(name: string): Promise<Queue> {
    const data = await this.request<{ resumeQueue: WireQueue }>(
      `mutation ResumeQueue($name: String!) { resumeQueue(name: $name) { ${QUEUE_FIELDS} } }`,
      { name },
      'idempotent',
    );
    return toQueue(data.resumeQueue);
  }

  async purge(queue: string): Promise<number> {
    const data = await this.request<{ purge: number }>(
      `mutation Purge($queue: String!) { purge(queue: $queue) }`,
      { queue },
      'not-idempotent',
    );
    return data.purge;
  }

  async redrive(queue: string, max?: number | null): Promise<number> {
    const data = await this.request<{ redrive: number }>(
      `mutation Redrive($queue: String!, $max: Int) { redrive(queue: $queue, max: $max) }`,
      { queue, max: max ?? null },
      'not-idempotent',
    );
    return data.redrive;
  }

  async bindQueue(queue: string, pattern: string): Promise<boolean> {
    const data = await this.request<{ bindQueue: boolean }>(
      `mutation BindQueue($queue: String!, $pattern: String!) {
        bindQueue(queue: $queue, pattern: $pattern) }`,
      { queue, pattern },
      'idempotent',
    );
    return data.bindQueue;
  }

  async unbindQueue(queue: string, pattern: string): Promise<boolean> {
    const data = await this.request<{ unbindQueue: boolean }>(
      `mutation UnbindQueue($queue: String!, $pattern: String!) {
        unbindQueue(queue: $queue, pattern: $pattern) }`,
      { queue, pattern },
      'not-idempotent',
    );
    return data.unbindQueue;
  }

  async queueStats(queue: string): Promise<QueueStats | null> {
    const data = await this.request<{ queue: { stats: QueueStats } | null }>(
      `query QueueStats($name: String!) { queue(name: $name) { stats { ${STATS_FIELDS} } } }`,
      { name: queue },
      'idempotent',
    );
    return data.queue?.stats ?? null;
  }

  async getMessage<P>(id: string): Promise<MessageWithPosition<P> | null> {
    const data = await this.request<{ message: WireMessageWithPosition | null }>(
      `query Message($id: ID!) {
        message(id: $id) {
          ${MESSAGE_FIELDS} position estimatedWaitSeconds waitingReason nextEligibleAt } }`,
      { id },
      'idempotent',
    );
    const message = data.message;
    if (message === null) return null;
    return {
      ...toMessage<P>(message),
      position: message.position,
      estimatedWaitSeconds: message.estimatedWaitSeconds,
      waitingReason: message.waitingReason,
      nextEligibleAt: message.nextEligibleAt === null ? null : new Date(message.nextEligibleAt),
    };
  }

  async createSchedule(input: ScheduleInput): Promise<Schedule> {
    const data = await this.request<{ createSchedule: WireSchedule }>(
      `mutation CreateSchedule($name: String!, $cron: String!, $timezone: String,
                              $queue: String!, $message: SendInput!, $catchUp: CatchUp,
                              $catchUpMax: Int) {
        createSchedule(name: $name, cron: $cron, timezone: $timezone, queue: $queue,
                       message: $message, catchUp: $catchUp, catchUpMax: $catchUpMax) {
          ${SCHEDULE_FIELDS} } }`,
      {
        name: input.name,
        cron: input.cron,
        timezone: input.timezone ?? 'UTC',
        queue: input.queue,
        message: toWireSendInput(input.message),
        catchUp: input.catchUp ?? 'LATEST',
        catchUpMax: input.catchUpMax ?? 100,
      },
      'not-idempotent',
    );
    return toSchedule(data.createSchedule);
  }

  async schedules(queue?: string | null): Promise<Schedule[]> {
    const data = await this.request<{ schedules: WireSchedule[] }>(
      `query Schedules($queue: String) { schedules(queue: $queue) { ${SCHEDULE_FIELDS} } }`,
      { queue: queue ?? null },
      'idempotent',
    );
    return data.schedules.map(toSchedule);
  }

  async pauseSchedule(name: string): Promise<Schedule> {
    const data = await this.request<{ pauseSchedule: WireSchedule }>(
      `mutation PauseSchedule($name: String!) { pauseSchedule(name: $name) { ${SCHEDULE_FIELDS} } }`,
      { name },
      'idempotent',
    );
    return toSchedule(data.pauseSchedule);
  }

  async resumeSchedule(name: string): Promise<Schedule> {
    const data = await this.request<{ resumeSchedule: WireSchedule }>(
      `mutation ResumeSchedule($name: String!) { resumeSchedule(name: $name) { ${SCHEDULE_FIELDS} } }`,
      { name },
      'idempotent',
    );
    return toSchedule(data.resumeSchedule);
  }

  async deleteSchedule(name: string): Promise<boolean> {
    const data = await this.request<{ deleteSchedule: boolean }>(
      `mutation DeleteSchedule($name: String!) { deleteSchedule(name: $name) }`,
      { name },
      'not-idempotent',
    );
    return data.deleteSchedule;
  }

  async listMessages<P>(queue: string, options: ListMessagesOptions = {}): Promise<Message<P>[]> {
    const data = await this.request<{ messages: WireMessage[] }>(
      `query Messages($queue: String!, $state: MessageState, $filter: MessageFilter, $first: Int,
                      $after: ID) {
        messages(queue: $queue, state: $state, filter: $filter, first: $first, after: $after) {
          ${MESSAGE_FIELDS} } }`,
      {
        queue,
        state: options.state ?? null,
        filter: toWireFilter(options.filter),
        first: options.first ?? 50,
        after: options.after ?? null,
      },
      'idempotent',
    );
    return data.messages.map((m) => toMessage<P>(m));
  }

  async countMessages(queue: string, options: CountMessagesOptions = {}): Promise<number> {
    const data = await this.request<{ messageCount: number }>(
      `query MessageCount($queue: String!, $state: MessageState, $filter: MessageFilter,
                          $max: Int) {
        messageCount(queue: $queue, state: $state, filter: $filter, max: $max) }`,
      {
        queue,
        state: options.state ?? null,
        filter: toWireFilter(options.filter),
        max: options.max ?? 100_000,
      },
      'idempotent',
    );
    return data.messageCount;
  }

  // The bulk actions are safe to repeat: a second run finds what still matches (nothing, or
  // what arrived since), never acts twice on one message.
  async deleteMessages(queue: string, selection: BulkSelection = {}): Promise<number> {
    const data = await this.request<{ deleteMessages: number }>(
      `mutation DeleteMessages($queue: String!, $state: MessageState, $filter: MessageFilter) {
        deleteMessages(queue: $queue, state: $state, filter: $filter) }`,
      { queue, state: selection.state ?? null, filter: toWireFilter(selection.filter) },
      'idempotent',
    );
    return data.deleteMessages;
  }

  async moveMessages(queue: string, to: string, selection: BulkSelection = {}): Promise<number> {
    const data = await this.request<{ moveMessages: number }>(
      `mutation MoveMessages($queue: String!, $to: String!, $state: MessageState,
                             $filter: MessageFilter) {
        moveMessages(queue: $queue, to: $to, state: $state, filter: $filter) }`,
      { queue, to, state: selection.state ?? null, filter: toWireFilter(selection.filter) },
      'idempotent',
    );
    return data.moveMessages;
  }

  async retryMessages(queue: string, filter?: MessageFilter | null): Promise<number> {
    const data = await this.request<{ retryMessages: number }>(
      `mutation RetryMessages($queue: String!, $filter: MessageFilter) {
        retryMessages(queue: $queue, filter: $filter) }`,
      { queue, filter: toWireFilter(filter) },
      'idempotent',
    );
    return data.retryMessages;
  }

  async redriveMessages(queue: string, filter?: MessageFilter | null): Promise<number> {
    const data = await this.request<{ redriveMessages: number }>(
      `mutation RedriveMessages($queue: String!, $filter: MessageFilter) {
        redriveMessages(queue: $queue, filter: $filter) }`,
      { queue, filter: toWireFilter(filter) },
      'idempotent',
    );
    return data.redriveMessages;
  }

  async queueHistory(queue: string, options: QueueHistoryOptions): Promise<QueueHistoryPoint[]> {
    const data = await this.request<{ queueHistory: WireHistoryPoint[] }>(
      `query QueueHistory($queue: String!, $from: DateTime!, $to: DateTime!, $step: Int) {
        queueHistory(queue: $queue, from: $from, to: $to, step: $step) { ${HISTORY_FIELDS} } }`,
      {
        queue,
        from: options.from.toISOString(),
        to: options.to.toISOString(),
        step: options.stepSeconds ?? 60,
      },
      'idempotent',
    );
    return data.queueHistory.map((point) => ({ ...point, at: new Date(point.at) }));
  }

  async archivedMessages<P>(
    queue: string,
    options: ArchivedMessagesOptions = {},
  ): Promise<ArchivedMessagePage<P>> {
    const data = await this.request<{
      archivedMessages: {
        messages: WireArchived[];
        endCursor: string | null;
        hasNextPage: boolean;
      };
    }>(
      `query ArchivedMessages($queue: String!, $from: DateTime, $to: DateTime,
                              $filter: ArchiveFilter, $first: Int, $after: String) {
        archivedMessages(queue: $queue, from: $from, to: $to, filter: $filter, first: $first,
                         after: $after) {
          messages { ${ARCHIVED_FIELDS} } endCursor hasNextPage } }`,
      {
        queue,
        from: options.from?.toISOString() ?? null,
        to: options.to?.toISOString() ?? null,
        filter: options.filter ?? null,
        first: options.first ?? 50,
        after: options.after ?? null,
      },
      'idempotent',
    );
    const page = data.archivedMessages;
    return {
      messages: page.messages.map((m) => toArchivedMessage<P>(m)),
      endCursor: page.endCursor,
      hasNextPage: page.hasNextPage,
    };
  }

  async replay(queue: string, options: ReplayOptions = {}): Promise<ReplayJob> {
    const data = await this.request<{ replay: WireReplayJob }>(
      `mutation Replay($queue: String!, $into: String, $from: DateTime, $to: DateTime,
                       $filter: ArchiveFilter, $ratePerSecond: Float, $dryRun: Boolean) {
        replay(queue: $queue, into: $into, from: $from, to: $to, filter: $filter,
               ratePerSecond: $ratePerSecond, dryRun: $dryRun) { ${REPLAY_JOB_FIELDS} } }`,
      {
        queue,
        into: options.into ?? null,
        from: options.from?.toISOString() ?? null,
        to: options.to?.toISOString() ?? null,
        filter: options.filter ?? null,
        ratePerSecond: options.ratePerSecond ?? null,
        dryRun: options.dryRun ?? false,
      },
      // A repeat after success would start a second job: twice the copies.
      'not-idempotent',
    );
    return toReplayJob(data.replay);
  }

  async startRedrive(queue: string, options: StartRedriveOptions = {}): Promise<ReplayJob> {
    const data = await this.request<{ startRedrive: WireReplayJob }>(
      `mutation StartRedrive($queue: String!, $filter: ArchiveFilter, $max: Int,
                             $ratePerSecond: Float, $dryRun: Boolean) {
        startRedrive(queue: $queue, filter: $filter, max: $max, ratePerSecond: $ratePerSecond,
                     dryRun: $dryRun) { ${REPLAY_JOB_FIELDS} } }`,
      {
        queue,
        filter: options.filter ?? null,
        max: options.max ?? null,
        ratePerSecond: options.ratePerSecond ?? null,
        dryRun: options.dryRun ?? false,
      },
      // A repeat after success would start a second job over the same dead letters.
      'not-idempotent',
    );
    return toReplayJob(data.startRedrive);
  }

  async replayJobs(queue: string): Promise<ReplayJob[]> {
    const data = await this.request<{ replayJobs: WireReplayJob[] }>(
      `query ReplayJobs($queue: String!) { replayJobs(queue: $queue) { ${REPLAY_JOB_FIELDS} } }`,
      { queue },
      'idempotent',
    );
    return data.replayJobs.map(toReplayJob);
  }

  async replayJob(id: string): Promise<ReplayJob | null> {
    const data = await this.request<{ replayJob: WireReplayJob | null }>(
      `query ReplayJob($id: ID!) { replayJob(id: $id) { ${REPLAY_JOB_FIELDS} } }`,
      { id },
      'idempotent',
    );
    return data.replayJob === null ? null : toReplayJob(data.replayJob);
  }

  async cancelReplay(id: string): Promise<ReplayJob | null> {
    const data = await this.request<{ cancelReplay: WireReplayJob | null }>(
      `mutation CancelReplay($id: ID!) { cancelReplay(id: $id) { ${REPLAY_JOB_FIELDS} } }`,
      { id },
      'idempotent',
    );
    return data.cancelReplay === null ? null : toReplayJob(data.cancelReplay);
  }

  consume<P>(
    queue: string,
    handler: MessageHandler<P>,
    options: ConsumeOptions = {},
  ): QueueWorker<P> {
    return this.workers.add(new QueueWorker<P>(this, queue, handler, options));
  }

  async close(): Promise<void> {
    await this.workers.stopAll();
  }

  /** One GraphQL operation with retries; resolves with `data`. */
  private request<T>(
    query: string,
    variables: Record<string, unknown>,
    idempotency: Idempotency,
    options: { signal?: AbortSignal; extraTimeoutMs?: number } = {},
  ): Promise<T> {
    return withRetries(
      idempotency,
      this.retry,
      () => this.post<T>(query, variables, options.signal, options.extraTimeoutMs ?? 0),
      options.signal,
    );
  }

  private async post<T>(
    query: string,
    variables: Record<string, unknown>,
    signal: AbortSignal | undefined,
    extraTimeoutMs: number,
  ): Promise<T> {
    const timeoutMs = this.timeoutMs + extraTimeoutMs;
    const timeout = AbortSignal.timeout(timeoutMs);
    const linked = signal === undefined ? undefined : linkAbortSignals([signal, timeout]);
    let status: number;
    let text: string;
    try {
      const response = await this.fetch(this.endpoint, {
        method: 'POST',
        headers: this.headers,
        body: JSON.stringify({ query, variables }),
        signal: linked?.signal ?? timeout,
      });
      status = response.status;
      text = await response.text();
    } catch (error) {
      if (signal?.aborted === true) throw signal.reason;
      if (timeout.aborted) {
        throw new HoldlineError(
          'UNAVAILABLE',
          `no answer from ${this.endpoint} within ${timeoutMs} ms`,
          { cause: error },
        );
      }
      throw networkError(this.endpoint, error);
    } finally {
      linked?.dispose();
    }
    let body: GraphQLBody | undefined;
    try {
      body = JSON.parse(text) as GraphQLBody;
    } catch {
      body = undefined;
    }
    const first = body?.errors?.[0];
    if (first !== undefined) throw graphQLError(first, status);
    if (status < 200 || status > 299 || body?.data == null) throw httpError(status, text);
    return body.data as T;
  }
}

function networkError(endpoint: string, error: unknown): HoldlineError {
  const code = socketErrorCode(error);
  return new HoldlineError(
    'UNAVAILABLE',
    `could not reach ${endpoint}${code === undefined ? '' : ` (${code})`}`,
    { cause: error, notProcessed: code !== undefined && NOT_CONNECTED_CODES.has(code) },
  );
}

/** The socket error code under fetch's "fetch failed" TypeError, if any. */
function socketErrorCode(error: unknown): string | undefined {
  let cause: unknown = error;
  for (let depth = 0; depth < 4 && typeof cause === 'object' && cause !== null; depth++) {
    const code = (cause as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    // Several addresses tried (IPv4 and IPv6): an AggregateError of the attempts.
    const errors = (cause as { errors?: unknown }).errors;
    cause = Array.isArray(errors) && errors.length > 0 ? errors[0] : (cause as Error).cause;
  }
  return undefined;
}

function graphQLError(
  error: { message?: string; extensions?: Record<string, unknown> },
  status: number,
): HoldlineError {
  const given = error.extensions?.code;
  let code = toHoldlineErrorCode(given);
  // A gateway in front of the service may answer 503/429 in GraphQL form without a code.
  if (given === undefined) code = statusCode(status) ?? code;
  return new HoldlineError(code, error.message ?? 'request failed', {
    status,
    extensions: error.extensions,
    notProcessed: code === 'RATE_LIMITED',
  });
}

function httpError(status: number, text: string): HoldlineError {
  const code = statusCode(status) ?? 'INTERNAL_SERVER_ERROR';
  return new HoldlineError(code, `HTTP ${status}: ${text.slice(0, 200)}`, {
    status,
    notProcessed: code === 'RATE_LIMITED',
  });
}

function statusCode(status: number): HoldlineError['code'] | undefined {
  switch (status) {
    case 401:
      return 'UNAUTHENTICATED';
    case 403:
      return 'FORBIDDEN';
    case 413:
      return 'PAYLOAD_TOO_LARGE';
    case 429:
      return 'RATE_LIMITED';
    case 502:
    case 503:
    case 504:
      return 'UNAVAILABLE';
    default:
      return undefined;
  }
}

function toWireSendInput(input: SendInput): Record<string, unknown> {
  const wire: Record<string, unknown> = { payload: input.payload };
  if (input.delaySeconds != null) wire.delaySeconds = input.delaySeconds;
  if (input.runAt != null) {
    wire.runAt = input.runAt instanceof Date ? input.runAt.toISOString() : input.runAt;
  }
  if (input.priority != null) wire.priority = input.priority;
  if (input.dedupKey != null) wire.dedupKey = input.dedupKey;
  if (input.groupKey != null) wire.groupKey = input.groupKey;
  if (input.headers != null) wire.headers = input.headers;
  return wire;
}

function toWireConfig(config: Partial<QueueConfig>): Record<string, unknown> {
  const { visibilityTimeoutSeconds, ...rest } = config;
  return visibilityTimeoutSeconds === undefined
    ? rest
    : { ...rest, visibilityTimeout: visibilityTimeoutSeconds };
}

function toMessage<P>(wire: WireMessage): Message<P> {
  return {
    id: wire.id,
    queue: wire.queue,
    payload: wire.payload as P,
    headers: wire.headers,
    priority: wire.priority,
    attempts: wire.attempts,
    state: wire.state,
    runAt: new Date(wire.runAt),
    createdAt: new Date(wire.createdAt),
    lastError: wire.lastError,
    originQueue: wire.originQueue,
  };
}

function toSchedule(wire: WireSchedule): Schedule {
  return {
    name: wire.name,
    cron: wire.cron,
    timezone: wire.timezone,
    queue: wire.queue,
    message: {
      payload: wire.payload,
      headers: wire.headers,
      priority: wire.priority,
      groupKey: wire.groupKey,
    },
    catchUp: wire.catchUp,
    catchUpMax: wire.catchUpMax,
    paused: wire.paused,
    nextTickAt: new Date(wire.nextTickAt),
    lastTickAt: wire.lastTickAt === null ? null : new Date(wire.lastTickAt),
    lastMessageId: wire.lastMessageId,
    createdAt: new Date(wire.createdAt),
  };
}

function toDelivery<P>(wire: WireDelivery): Delivery<P> {
  return {
    receipt: wire.receipt,
    leaseExpiresAt: new Date(wire.leaseExpiresAt),
    message: toMessage<P>(wire.message),
  };
}

/** An archived message as GraphQL sends it: dates as strings. */
type WireArchived = Omit<ArchivedMessage, 'sentAt' | 'ackedAt'> & {
  sentAt: string;
  ackedAt: string;
};
/** A replay job as GraphQL sends it: dates as strings. */
type WireReplayJob = Omit<ReplayJob, 'from' | 'to' | 'createdAt' | 'updatedAt' | 'finishedAt'> & {
  from: string | null;
  to: string | null;
  createdAt: string;
  updatedAt: string;
  finishedAt: string | null;
};

/** A history point as GraphQL sends it: its time as a string. */
type WireHistoryPoint = Omit<QueueHistoryPoint, 'at'> & { at: string };

/** A message filter as GraphQL takes it: times as ISO strings. */
function toWireFilter(filter: MessageFilter | null | undefined): Record<string, unknown> | null {
  if (filter === null || filter === undefined) return null;
  const { createdAfter, createdBefore, ...rest } = filter;
  return {
    ...rest,
    ...(createdAfter == null ? {} : { createdAfter: createdAfter.toISOString() }),
    ...(createdBefore == null ? {} : { createdBefore: createdBefore.toISOString() }),
  };
}

function optionalDate(text: string | null): Date | null {
  return text === null ? null : new Date(text);
}

function toArchivedMessage<P>(wire: WireArchived): ArchivedMessage<P> {
  return {
    ...wire,
    payload: wire.payload as P,
    sentAt: new Date(wire.sentAt),
    ackedAt: new Date(wire.ackedAt),
  };
}

function toReplayJob(wire: WireReplayJob): ReplayJob {
  return {
    ...wire,
    from: optionalDate(wire.from),
    to: optionalDate(wire.to),
    createdAt: new Date(wire.createdAt),
    updatedAt: new Date(wire.updatedAt),
    finishedAt: optionalDate(wire.finishedAt),
  };
}

function toQueue(wire: WireQueue): Queue {
  const { visibilityTimeout, ...config } = wire.config;
  return {
    name: wire.name,
    paused: wire.paused,
    createdAt: new Date(wire.createdAt),
    config: { ...config, visibilityTimeoutSeconds: visibilityTimeout },
  };
}
