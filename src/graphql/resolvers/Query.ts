import type { Message, MessageState, MessageWithPosition, Queue } from '../../queue/index.ts';
import type { GraphQLContext } from '../context.ts';
import { withSharedStats } from './Queue.ts';
import type { QueueParent } from './Queue.ts';

/** Arguments of Query.messages. */
interface MessagesArgs {
  queue: string;
  state?: MessageState | null;
  first?: number | null;
  after?: string | null;
}

/** Resolvers of type Query: reads, each one engine call. */
export const QueryResolvers = {
  async queues(_root: unknown, _args: unknown, ctx: GraphQLContext): Promise<QueueParent[]> {
    const queues = await ctx.engine.listQueues();
    return withSharedStats(queues, () => ctx.engine.allQueueStats());
  },

  async queue(_root: unknown, args: { name: string }, ctx: GraphQLContext): Promise<Queue | null> {
    return (await ctx.engine.getQueue(args.name)) ?? null;
  },

  async message(
    _root: unknown,
    args: { id: string },
    ctx: GraphQLContext,
  ): Promise<MessageWithPosition | null> {
    return (await ctx.engine.getMessage(args.id)) ?? null;
  },

  messages(_root: unknown, args: MessagesArgs, ctx: GraphQLContext): Promise<Message[]> {
    return ctx.engine.listMessages({
      queue: args.queue,
      state: args.state,
      first: args.first,
      after: args.after,
    });
  },
};
