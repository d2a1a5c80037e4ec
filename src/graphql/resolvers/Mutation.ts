import { QueueError } from '../../queue/index.ts';
import type {
  ArchiveFilter,
  CatchUp,
  Delivery,
  Message,
  MessageFilter,
  MessageState,
  Queue,
  QueueConfig,
  ReplayJob,
  Schedule,
  SendInput,
} from '../../queue/index.ts';
import {
  authorize,
  authorizeAll,
  forbidden,
  readableReplayJob,
  receiptAuthorization,
} from '../authorization.ts';
import type { GraphQLContext } from '../context.ts';
import { badUserInput } from '../errors.ts';

/** GraphQL input QueueConfigInput as graphql-js hands it over: absent, null or a value. */
interface QueueConfigInput {
  visibilityTimeout?: number | null;
  maxAttempts?: number | null;
  deadLetterQueue?: string | null;
  backoffInitialSeconds?: number | null;
  backoffMaxSeconds?: number | null;
  retentionSeconds?: number | null;
  maxPayloadBytes?: number | null;
  archiveSeconds?: number | null;
  maxInFlight?: number | null;
  rateLimit?: { count: number; perSeconds: number } | null;
  groupMaxInFlight?: number | null;
  groupRateLimit?: { count: number; perSeconds: number } | null;
}

/** GraphQL input SendInput; payload and headers are whatever JSON the client sent. */
interface SendInputArgs {
  payload: unknown;
  delaySeconds?: number | null;
  runAt?: Date | null;
  priority?: number | null;
  dedupKey?: string | null;
  groupKey?: string | null;
  headers?: unknown;
}

/** Arguments every bulk action on messages takes. */
interface BulkArgs {
  queue: string;
  filter?: MessageFilter | null;
}

/** Input field → engine setting, for the settings where null has no meaning. */
const NUMERIC_SETTINGS = [
  ['visibilityTimeout', 'visibilityTimeoutSeconds'],
  ['maxAttempts', 'maxAttempts'],
  ['backoffInitialSeconds', 'backoffInitialSeconds'],
  ['backoffMaxSeconds', 'backoffMaxSeconds'],
  ['retentionSeconds', 'retentionSeconds'],
  ['maxPayloadBytes', 'maxPayloadBytes'],
  ['archiveSeconds', 'archiveSeconds'],
] as const;

/**
 * Maps QueueConfigInput to the engine's settings. A field left out is not passed (default
 * or unchanged); null is refused except for deadLetterQueue, maxInFlight, rateLimit,
 * groupMaxInFlight and groupRateLimit, where it means "none" (no dead-letter queue, no cap, no
 * limit, groups one at a time). Ranges are the engine's to check.
 */
function toQueueConfig(input: QueueConfigInput | null | undefined): Partial<QueueConfig> {
  const config: Partial<QueueConfig> = {};
  if (input == null) return config;
  for (const [field, setting] of NUMERIC_SETTINGS) {
    const value = input[field];
    if (value === undefined) continue;
    if (value === null) {
      throw badUserInput(
        `config.${field} may not be null: leave it out for the default or the current value`,
      );
    }
    config[setting] = value;
  }
  if (input.deadLetterQueue !== undefined) config.deadLetterQueue = input.deadLetterQueue;
  if (input.maxInFlight !== undefined) config.maxInFlight = input.maxInFlight;
  if (input.rateLimit !== undefined) config.rateLimit = input.rateLimit;
  if (input.groupMaxInFlight !== undefined) config.groupMaxInFlight = input.groupMaxInFlight;
  if (input.groupRateLimit !== undefined) config.groupRateLimit = input.groupRateLimit;
  return config;
}

/** SendInput as the engine takes it; the engine validates every field. */
function toSendInput(input: SendInputArgs): SendInput {
  return {
    payload: input.payload,
    delaySeconds: input.delaySeconds,
    runAt: input.runAt,
    priority: input.priority,
    dedupKey: input.dedupKey,
    groupKey: input.groupKey,
    headers: input.headers as SendInput['headers'],
  };
}

function isLeaseLost(error: unknown): boolean {
  return error instanceof QueueError && error.code === 'LEASE_LOST';
}

/**
 * Runs an ack or nack and tells `deliveries` subscriptions of this instance that the
 * receipts are settled: on success, and on LEASE_LOST too (a lost lease frees the slot
 * just the same). Other failures settle nothing: the lease may still be held.
 */
async function settling<T>(
  ctx: GraphQLContext,
  receipts: readonly string[],
  run: () => Promise<T>,
): Promise<T> {
  try {
    const result = await run();
    ctx.deliveryTracker.settle(receipts);
    return result;
  } catch (error) {
    if (isLeaseLost(error)) ctx.deliveryTracker.settle(receipts);
    throw error;
  }
}

/**
 * A queue's settings name its dead-letter queue: pointing it at a queue is a way of writing
 * into that queue, so a named one needs `admin` there too (the default `<name>.dlq` is the
 * queue's own and needs nothing more).
 */
function authorizeConfig(
  ctx: GraphQLContext,
  queue: string,
  config: QueueConfigInput | null | undefined,
): void {
  authorize(ctx.access, 'admin', queue);
  if (config?.deadLetterQueue != null) authorize(ctx.access, 'admin', config.deadLetterQueue);
}

/**
 * Changing a schedule needs `admin` on the queue it sends into. Returns the schedule; when it
 * does not exist, throws SCHEDULE_NOT_FOUND, or returns undefined when `mustExist` is false.
 */
async function authorizeSchedule(
  ctx: GraphQLContext,
  name: string,
  mustExist = true,
): Promise<Schedule | undefined> {
  const schedule = await ctx.engine.getSchedule(name);
  if (schedule === undefined) {
    if (!mustExist) return undefined;
    throw new QueueError('SCHEDULE_NOT_FOUND', `schedule "${name}" does not exist`);
  }
  authorize(ctx.access, 'admin', schedule.queue);
  return schedule;
}

/**
 * Resolvers of type Mutation: each checks the token's scope for its queue (authorization.ts),
 * checks the shape, makes one engine call, maps the result. Queue management needs `admin`,
 * sends `send`, receiving and settling deliveries `receive`.
 */
export const MutationResolvers = {
  createQueue(
    _root: unknown,
    args: { name: string; config?: QueueConfigInput | null },
    ctx: GraphQLContext,
  ): Promise<Queue> {
    authorizeConfig(ctx, args.name, args.config);
    return ctx.engine.createQueue(args.name, toQueueConfig(args.config));
  },

  configureQueue(
    _root: unknown,
    args: { name: string; config: QueueConfigInput },
    ctx: GraphQLContext,
  ): Promise<Queue> {
    authorizeConfig(ctx, args.name, args.config);
    return ctx.engine.configureQueue(args.name, toQueueConfig(args.config));
  },

  deleteQueue(_root: unknown, args: { name: string }, ctx: GraphQLContext): Promise<boolean> {
    authorize(ctx.access, 'admin', args.name);
    return ctx.engine.deleteQueue(args.name);
  },

  send(
    _root: unknown,
    args: { queue: string; message: SendInputArgs },
    ctx: GraphQLContext,
  ): Promise<Message> {
    authorize(ctx.access, 'send', args.queue);
    return ctx.engine.send(args.queue, toSendInput(args.message));
  },

  sendBatch(
    _root: unknown,
    args: { queue: string; messages: SendInputArgs[] },
    ctx: GraphQLContext,
  ): Promise<Message[]> {
    authorize(ctx.access, 'send', args.queue);
    return ctx.engine.sendBatch(args.queue, args.messages.map(toSendInput));
  },

  receive(
    _root: unknown,
    args: {
      queue: string;
      max?: number | null;
      visibilityTimeout?: number | null;
      waitSeconds?: number | null;
    },
    ctx: GraphQLContext,
  ): Promise<Delivery[]> {
    authorize(ctx.access, 'receive', args.queue);
    return ctx.engine.receive({
      queue: args.queue,
      max: args.max ?? undefined,
      visibilityTimeoutSeconds: args.visibilityTimeout,
      waitSeconds: args.waitSeconds ?? undefined,
      // A long poll whose HTTP client went away stops waiting (and leases nothing).
      signal: ctx.signal,
    });
  },

  async ack(_root: unknown, args: { receipt: string }, ctx: GraphQLContext): Promise<boolean> {
    const authorization = receiptAuthorization(ctx.access);
    await settling(ctx, [args.receipt], () => ctx.engine.ack(args.receipt, authorization));
    return true;
  },

  async ackBatch(
    _root: unknown,
    args: { receipts: string[] },
    ctx: GraphQLContext,
  ): Promise<number> {
    const authorization = receiptAuthorization(ctx.access);
    // Receipts that were not acked had lost their lease: settled all the same.
    const acked = await settling(ctx, args.receipts, () =>
      ctx.engine.ackBatch(args.receipts, authorization),
    );
    return acked.length;
  },

  async nack(
    _root: unknown,
    args: { receipt: string; delaySeconds?: number | null; error?: string | null },
    ctx: GraphQLContext,
  ): Promise<boolean> {
    const { authorize } = receiptAuthorization(ctx.access);
    await settling(ctx, [args.receipt], () =>
      ctx.engine.nack(args.receipt, {
        delaySeconds: args.delaySeconds,
        error: args.error,
        authorize,
      }),
    );
    return true;
  },

  async extendLease(
    _root: unknown,
    args: { receipt: string; seconds: number },
    ctx: GraphQLContext,
  ): Promise<Delivery> {
    const { authorize } = receiptAuthorization(ctx.access);
    try {
      return await ctx.engine.extendLease(args.receipt, args.seconds, { authorize });
    } catch (error) {
      // The lease is gone: a subscription holding this receipt has a free slot.
      if (isLeaseLost(error)) ctx.deliveryTracker.settle([args.receipt]);
      throw error;
    }
  },

  redrive(
    _root: unknown,
    args: { queue: string; max?: number | null },
    ctx: GraphQLContext,
  ): Promise<number> {
    authorize(ctx.access, 'admin', args.queue);
    return ctx.engine.redrive(args.queue, args.max);
  },

  /** Needs `admin` on the queue. */
  deleteMessages(
    _root: unknown,
    args: BulkArgs & { state?: MessageState | null },
    ctx: GraphQLContext,
  ): Promise<number> {
    authorize(ctx.access, 'admin', args.queue);
    return ctx.engine.deleteMessages(args);
  },

  /** Needs `admin` on both queues: taking messages out of one and putting them into the other. */
  moveMessages(
    _root: unknown,
    args: BulkArgs & { to: string; state?: MessageState | null },
    ctx: GraphQLContext,
  ): Promise<number> {
    authorizeAll(ctx.access, 'admin', [args.queue, args.to]);
    return ctx.engine.moveMessages(args);
  },

  /** Needs `admin` on the queue. */
  retryMessages(_root: unknown, args: BulkArgs, ctx: GraphQLContext): Promise<number> {
    authorize(ctx.access, 'admin', args.queue);
    return ctx.engine.retryMessages(args);
  },

  /**
   * Needs `admin` on the dead-letter queue, and on every origin queue its matching dead
   * letters would go back to: the engine asks before it moves anything.
   */
  redriveMessages(_root: unknown, args: BulkArgs, ctx: GraphQLContext): Promise<number> {
    authorize(ctx.access, 'admin', args.queue);
    return ctx.engine.redriveMessages(args, {
      authorize: (origins) => authorizeAll(ctx.access, 'admin', origins),
    });
  },

  purge(_root: unknown, args: { queue: string }, ctx: GraphQLContext): Promise<number> {
    authorize(ctx.access, 'admin', args.queue);
    return ctx.engine.purge(args.queue);
  },

  pauseQueue(_root: unknown, args: { name: string }, ctx: GraphQLContext): Promise<Queue> {
    authorize(ctx.access, 'admin', args.name);
    return ctx.engine.pauseQueue(args.name);
  },

  resumeQueue(_root: unknown, args: { name: string }, ctx: GraphQLContext): Promise<Queue> {
    authorize(ctx.access, 'admin', args.name);
    return ctx.engine.resumeQueue(args.name);
  },

  async bindQueue(
    _root: unknown,
    args: { queue: string; pattern: string },
    ctx: GraphQLContext,
  ): Promise<boolean> {
    authorize(ctx.access, 'admin', args.queue);
    await ctx.engine.bindQueue(args.queue, args.pattern);
    return true;
  },

  unbindQueue(
    _root: unknown,
    args: { queue: string; pattern: string },
    ctx: GraphQLContext,
  ): Promise<boolean> {
    authorize(ctx.access, 'admin', args.queue);
    return ctx.engine.unbindQueue(args.queue, args.pattern);
  },

  /**
   * Needs `send` on every queue the topic reaches. Which queues those are is only certain
   * inside the publishing transaction (a binding may be added at any moment), so with a
   * token that cannot send everywhere the engine asks this hook with the queues the copies
   * landed in, and rolls back (publishing nothing) when it refuses. The FORBIDDEN error does
   * not name that queue.
   */
  publish(
    _root: unknown,
    args: { topic: string; message: SendInputArgs },
    ctx: GraphQLContext,
  ): Promise<Message[]> {
    const access = ctx.access;
    const message = toSendInput(args.message);
    if (access.kind === 'open' || access.principal.scopes.allowsEveryQueue('send')) {
      return ctx.engine.publish(args.topic, message);
    }
    return ctx.engine.publish(args.topic, message, {
      authorize(queues) {
        try {
          authorizeAll(access, 'send', queues);
        } catch {
          throw forbidden(
            `topic "${args.topic}" reaches a queue this token may not send to: nothing was published`,
          );
        }
      },
    });
  },

  /**
   * Reading the archive is receiving what the queue delivered: `receive` on `queue`; the
   * copies are sends: `send` on the target. Both checked before anything is recorded.
   */
  replay(
    _root: unknown,
    args: {
      queue: string;
      from?: Date | null;
      to?: Date | null;
      filter?: ArchiveFilter | null;
      into?: string | null;
      ratePerSecond?: number | null;
      dryRun?: boolean | null;
    },
    ctx: GraphQLContext,
  ): Promise<ReplayJob> {
    authorize(ctx.access, 'receive', args.queue);
    authorize(ctx.access, 'send', args.into ?? args.queue);
    return ctx.engine.replay({
      queue: args.queue,
      into: args.into,
      from: args.from,
      to: args.to,
      filter: args.filter,
      ratePerSecond: args.ratePerSecond,
      dryRun: args.dryRun,
    });
  },

  /** Needs `admin` on the queue, as redrive does. */
  startRedrive(
    _root: unknown,
    args: {
      queue: string;
      filter?: ArchiveFilter | null;
      max?: number | null;
      ratePerSecond?: number | null;
      dryRun?: boolean | null;
    },
    ctx: GraphQLContext,
  ): Promise<ReplayJob> {
    authorize(ctx.access, 'admin', args.queue);
    return ctx.engine.startRedrive({
      queue: args.queue,
      filter: args.filter,
      max: args.max,
      ratePerSecond: args.ratePerSecond,
      dryRun: args.dryRun,
    });
  },

  /**
   * Needs `send` on the job's target, as starting it did. A job in a queue the token may not
   * read is answered as no job (null), as replayJob does.
   */
  async cancelReplay(
    _root: unknown,
    args: { id: string },
    ctx: GraphQLContext,
  ): Promise<ReplayJob | null> {
    const job = await readableReplayJob(ctx.access, ctx.engine, args.id);
    if (job === undefined) return null;
    authorize(ctx.access, 'send', job.into);
    return (await ctx.engine.cancelReplay(args.id)) ?? null;
  },

  createSchedule(
    _root: unknown,
    args: {
      name: string;
      cron: string;
      timezone?: string | null;
      queue: string;
      message: SendInputArgs;
      catchUp?: CatchUp | null;
      catchUpMax?: number | null;
    },
    ctx: GraphQLContext,
  ): Promise<Schedule> {
    // A schedule sends into its queue for as long as it lives: queue management, not a send.
    authorize(ctx.access, 'admin', args.queue);
    return ctx.engine.createSchedule({
      name: args.name,
      cron: args.cron,
      timezone: args.timezone ?? undefined,
      queue: args.queue,
      message: toSendInput(args.message),
      catchUp: args.catchUp ?? undefined,
      catchUpMax: args.catchUpMax ?? undefined,
    });
  },

  async pauseSchedule(
    _root: unknown,
    args: { name: string },
    ctx: GraphQLContext,
  ): Promise<Schedule> {
    await authorizeSchedule(ctx, args.name);
    return ctx.engine.pauseSchedule(args.name);
  },

  async resumeSchedule(
    _root: unknown,
    args: { name: string },
    ctx: GraphQLContext,
  ): Promise<Schedule> {
    await authorizeSchedule(ctx, args.name);
    return ctx.engine.resumeSchedule(args.name);
  },

  async deleteSchedule(
    _root: unknown,
    args: { name: string },
    ctx: GraphQLContext,
  ): Promise<boolean> {
    if ((await authorizeSchedule(ctx, args.name, false)) === undefined) return false;
    return ctx.engine.deleteSchedule(args.name);
  },
};
