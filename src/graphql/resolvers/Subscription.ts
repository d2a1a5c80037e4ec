import { Kind } from 'graphql';
import type { GraphQLResolveInfo, SelectionSetNode } from 'graphql';
import {
  LEASE_MAX_SECONDS,
  QueueError,
  validateInteger,
  validateQueueName,
} from '../../queue/index.ts';
import type { Delivery, QueueStats, ReplayJob } from '../../queue/index.ts';
import { abortableIterator } from '../abortable-iterator.ts';
import type { AbortableIterator } from '../abortable-iterator.ts';
import { authorize, readableReplayJob, whileTokenLive } from '../authorization.ts';
import type { GraphQLContext } from '../context.ts';
import { PREFETCH_MAX, streamDeliveries } from '../delivery-stream.ts';
import { createErrorMapper } from '../errors.ts';
import { streamReplayJob } from '../replay-job-stream.ts';
import { streamQueueStats } from '../stats-stream.ts';

/**
 * Fails before the stream starts when the queue does not exist, so the client gets a plain
 * GraphQL error response (QUEUE_NOT_FOUND) rather than a stream that ends at once.
 */
async function requireQueue(ctx: GraphQLContext, queue: string): Promise<void> {
  validateQueueName(queue);
  if ((await ctx.engine.getQueue(queue)) === undefined) {
    throw new QueueError('QUEUE_NOT_FOUND', `queue "${queue}" does not exist`);
  }
}

/** Whether the subscription's selection asks for `field` (through fragments too). */
function selects(info: GraphQLResolveInfo, field: string): boolean {
  const visit = (selectionSet: SelectionSetNode | undefined, seen: Set<string>): boolean =>
    selectionSet?.selections.some((selection) => {
      if (selection.kind === Kind.FIELD) return selection.name.value === field;
      if (selection.kind === Kind.INLINE_FRAGMENT) return visit(selection.selectionSet, seen);
      const name = selection.name.value;
      if (seen.has(name)) return false;
      seen.add(name);
      return visit(info.fragments[name]?.selectionSet, seen);
    }) ?? false;
  return info.fieldNodes.some((node) => visit(node.selectionSet, new Set()));
}

/**
 * Resolvers of type Subscription. Each `subscribe` checks the token's scope (`receive` for
 * deliveries, `read` for queueStats and for a replayJob's queue), its arguments and the queue, then hands out a stream
 * (delivery-stream.ts, stats-stream.ts) that stops at once when the subscriber leaves, and
 * ends with UNAUTHENTICATED once the token is revoked (whileTokenLive). Errors in mid-stream
 * are mapped here, since graphql-ws forwards them without yoga's masking.
 */
export const SubscriptionResolvers = {
  deliveries: {
    async subscribe(
      _root: unknown,
      args: { queue: string; prefetch?: number | null; visibilityTimeout?: number | null },
      ctx: GraphQLContext,
    ): Promise<AbortableIterator<Delivery>> {
      authorize(ctx.access, 'receive', args.queue);
      const prefetch = validateInteger(args.prefetch ?? 1, 'prefetch', 1, PREFETCH_MAX);
      const visibilityTimeoutSeconds =
        args.visibilityTimeout == null
          ? null
          : validateInteger(args.visibilityTimeout, 'visibilityTimeout', 1, LEASE_MAX_SECONDS);
      await requireQueue(ctx, args.queue);
      const logger = ctx.logger().child({ subscription: 'deliveries', queue: args.queue });
      return abortableIterator(
        (signal) =>
          whileTokenLive(
            ctx.access,
            streamDeliveries(
              {
                engine: ctx.engine,
                tracker: ctx.deliveryTracker,
                logger,
                queue: args.queue,
                prefetch,
                visibilityTimeoutSeconds,
              },
              signal,
            ),
          ),
        { mapError: createErrorMapper(logger), registry: ctx.streams, endOn: ctx.signal },
      );
    },
    resolve: (delivery: Delivery): Delivery => delivery,
  },

  queueStats: {
    async subscribe(
      _root: unknown,
      args: { queue: string },
      ctx: GraphQLContext,
      info: GraphQLResolveInfo,
    ): Promise<AbortableIterator<QueueStats>> {
      authorize(ctx.access, 'read', args.queue);
      await requireQueue(ctx, args.queue);
      const logger = ctx.logger().child({ subscription: 'queueStats', queue: args.queue });
      const watchAge = selects(info, 'oldestReadyAgeSeconds');
      return abortableIterator(
        (signal) =>
          whileTokenLive(
            ctx.access,
            streamQueueStats(
              { engine: ctx.engine, stats: ctx.queueStats, logger, queue: args.queue, watchAge },
              signal,
            ),
          ),
        { mapError: createErrorMapper(logger), registry: ctx.streams, endOn: ctx.signal },
      );
    },
    resolve: (stats: QueueStats): QueueStats => stats,
  },

  replayJob: {
    async subscribe(
      _root: unknown,
      args: { id: string },
      ctx: GraphQLContext,
    ): Promise<AbortableIterator<ReplayJob>> {
      if ((await readableReplayJob(ctx.access, ctx.engine, args.id)) === undefined) {
        throw new QueueError('BAD_USER_INPUT', `there is no replay job ${args.id}`);
      }
      const logger = ctx.logger().child({ subscription: 'replayJob', job: args.id });
      return abortableIterator(
        (signal) =>
          whileTokenLive(
            ctx.access,
            streamReplayJob({ engine: ctx.engine, logger, id: args.id }, signal),
          ),
        { mapError: createErrorMapper(logger), registry: ctx.streams, endOn: ctx.signal },
      );
    },
    resolve: (job: ReplayJob): ReplayJob => job,
  },
};
