import type {
  ArchiveFilter,
  ArchivedMessagePage,
  Message,
  MessageFilter,
  MessageState,
  MessageWithPosition,
  Queue,
  QueueHistoryPoint,
  ReplayJob,
  Schedule,
} from '../../queue/index.ts';
import { authorize, mayAccess, readableReplayJob, viewerOf } from '../authorization.ts';
import type { Viewer } from '../authorization.ts';
import type { GraphQLContext } from '../context.ts';
import { withSharedStats } from './Queue.ts';
import type { QueueParent } from './Queue.ts';

/** Arguments of Query.messages. */
interface MessagesArgs {
  queue: string;
  state?: MessageState | null;
  filter?: MessageFilter | null;
  first?: number | null;
  after?: string | null;
}

/** Arguments of Query.messageCount. */
interface MessageCountArgs {
  queue: string;
  state?: MessageState | null;
  filter?: MessageFilter | null;
  max?: number | null;
}

/** Arguments of Query.archivedMessages. */
interface ArchivedMessagesArgs {
  queue: string;
  from?: Date | null;
  to?: Date | null;
  filter?: ArchiveFilter | null;
  first?: number | null;
  after?: string | null;
}

/**
 * Resolvers of type Query: reads, each one engine call, each needing `read` on its queue
 * (which `receive` and `admin` scopes imply); the archive needs `receive`, as its messages
 * are what consumers of the queue received.
 */
export const QueryResolvers = {
  /** Only the queues the token may read: the others are not listed, not refused. */
  async queues(_root: unknown, _args: unknown, ctx: GraphQLContext): Promise<QueueParent[]> {
    const queues = (await ctx.engine.listQueues()).filter((queue) =>
      mayAccess(ctx.access, 'read', queue.name),
    );
    return withSharedStats(queues, () => ctx.engine.allQueueStats());
  },

  async queue(_root: unknown, args: { name: string }, ctx: GraphQLContext): Promise<Queue | null> {
    authorize(ctx.access, 'read', args.name);
    return (await ctx.engine.getQueue(args.name)) ?? null;
  },

  /**
   * Null, as for a message that does not exist, when the message is in a queue the token may
   * not read: the answer does not tell a message of another queue from no message at all.
   */
  async message(
    _root: unknown,
    args: { id: string },
    ctx: GraphQLContext,
  ): Promise<MessageWithPosition | null> {
    const message = await ctx.engine.getMessage(args.id);
    if (message === undefined || !mayAccess(ctx.access, 'read', message.queue)) return null;
    return message;
  },

  messages(_root: unknown, args: MessagesArgs, ctx: GraphQLContext): Promise<Message[]> {
    authorize(ctx.access, 'read', args.queue);
    return ctx.engine.listMessages({
      queue: args.queue,
      state: args.state,
      filter: args.filter,
      first: args.first,
      after: args.after,
    });
  },

  messageCount(_root: unknown, args: MessageCountArgs, ctx: GraphQLContext): Promise<number> {
    authorize(ctx.access, 'read', args.queue);
    return ctx.engine.countMessages({
      queue: args.queue,
      state: args.state,
      filter: args.filter,
      max: args.max,
    });
  },

  queueHistory(
    _root: unknown,
    args: { queue: string; from: Date; to: Date; step?: number | null },
    ctx: GraphQLContext,
  ): Promise<QueueHistoryPoint[]> {
    authorize(ctx.access, 'read', args.queue);
    return ctx.engine.queueHistory({
      queue: args.queue,
      from: args.from,
      to: args.to,
      stepSeconds: args.step,
    });
  },

  /** Needs no scope: it tells a request only what its own token allows. */
  viewer(_root: unknown, _args: unknown, ctx: GraphQLContext): Viewer {
    return viewerOf(ctx.access);
  },

  archivedMessages(
    _root: unknown,
    args: ArchivedMessagesArgs,
    ctx: GraphQLContext,
  ): Promise<ArchivedMessagePage> {
    authorize(ctx.access, 'receive', args.queue);
    return ctx.engine.listArchivedMessages({
      queue: args.queue,
      from: args.from,
      to: args.to,
      filter: args.filter,
      first: args.first,
      after: args.after,
    });
  },

  /** Null, as for no job at all, when the job replays a queue the token may not read. */
  async replayJob(
    _root: unknown,
    args: { id: string },
    ctx: GraphQLContext,
  ): Promise<ReplayJob | null> {
    return (await readableReplayJob(ctx.access, ctx.engine, args.id)) ?? null;
  },

  replayJobs(_root: unknown, args: { queue: string }, ctx: GraphQLContext): Promise<ReplayJob[]> {
    authorize(ctx.access, 'read', args.queue);
    return ctx.engine.replayJobs(args.queue);
  },

  /** Only the schedules of queues the token may read: the others are not listed. */
  async schedules(
    _root: unknown,
    args: { queue?: string | null },
    ctx: GraphQLContext,
  ): Promise<Schedule[]> {
    if (args.queue != null) authorize(ctx.access, 'read', args.queue);
    return (await ctx.engine.listSchedules(args.queue ?? null)).filter((schedule) =>
      mayAccess(ctx.access, 'read', schedule.queue),
    );
  },
};
