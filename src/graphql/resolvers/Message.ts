import type { Message, MessageWithPosition, WaitingReason } from '../../queue/index.ts';
import type { GraphQLContext } from '../context.ts';

/**
 * Place-in-line lookups by message object, so asking for both position and
 * estimatedWaitSeconds of one message costs one statement. Keyed by the result objects of
 * one request, so entries go when the request's results do.
 */
const placeLookups = new WeakMap<Message, Promise<MessageWithPosition | undefined>>();

function placeInLine(
  message: Message | MessageWithPosition,
  ctx: GraphQLContext,
): Promise<MessageWithPosition | undefined> | MessageWithPosition {
  // Query.message already has it (engine.getMessage computes it).
  if ('position' in message) return message;
  let lookup = placeLookups.get(message);
  if (lookup === undefined) {
    lookup = ctx.engine.getMessage(message.id);
    placeLookups.set(message, lookup);
  }
  return lookup;
}

/**
 * Field resolvers of type Message. Position, estimated wait and the waiting reason are a count
 * over the queue's ready messages and a few probes, so they are computed only when a query
 * asks for them, never for every message a send or receive returns.
 */
export const MessageResolvers = {
  async waitingReason(
    message: Message,
    _args: unknown,
    ctx: GraphQLContext,
  ): Promise<WaitingReason | null> {
    return (await placeInLine(message, ctx))?.waitingReason ?? null;
  },
  async nextEligibleAt(
    message: Message,
    _args: unknown,
    ctx: GraphQLContext,
  ): Promise<Date | null> {
    return (await placeInLine(message, ctx))?.nextEligibleAt ?? null;
  },
  async position(message: Message, _args: unknown, ctx: GraphQLContext): Promise<number | null> {
    return (await placeInLine(message, ctx))?.position ?? null;
  },
  async estimatedWaitSeconds(
    message: Message,
    _args: unknown,
    ctx: GraphQLContext,
  ): Promise<number | null> {
    return (await placeInLine(message, ctx))?.estimatedWaitSeconds ?? null;
  },
};
