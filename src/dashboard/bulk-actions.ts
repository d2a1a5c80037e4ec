import type { Request } from './graphql-api.ts';
import type { ApiFilter } from './message-filter.ts';

/** Where a bulk action applies: a queue and everything the filter matches in it. */
export interface BulkTarget {
  queue: string;
  filter: ApiFilter;
}

/**
 * An action on every message a filter matches, as one mutation of the API (which applies it
 * to all of them at once and returns how many it touched).
 */
export interface BulkAction {
  /** The button's label, e.g. "Redrive". */
  label: string;
  /** The confirmation's sentence for `count` messages, e.g. "Redrive 3 dead letters … ?". */
  describe(count: string, target: BulkTarget, to?: string): string;
  /** The notice afterwards for `done` messages, e.g. "Redrove 3 dead letters". */
  done(done: string, target: BulkTarget, to?: string): string;
  /** False when the mutation takes no state: then it is offered only without a state filter. */
  takesState: boolean;
  /** True when it needs a target queue (move). */
  needsTarget?: boolean;
  run(request: Request, target: BulkTarget, to?: string): Promise<number>;
}

const REDRIVE: BulkAction = {
  label: 'Redrive',
  takesState: false,
  describe: (count, t) =>
    `Redrive ${count} dead letters matching the filter from ${t.queue} back to the queues they died in? They become deliverable at once, with attempts reset.`,
  done: (done, t) => `Redrove ${done} dead letters from ${t.queue}`,
  run: async (request, t) =>
    (
      await request<{ redriveMessages: number }>(
        'mutation Redrive($queue: String!, $filter: MessageFilter) { redriveMessages(queue: $queue, filter: $filter) }',
        { queue: t.queue, filter: t.filter.filter },
      )
    ).redriveMessages,
};

const RETRY: BulkAction = {
  label: 'Retry',
  takesState: false,
  describe: (count, t) =>
    `Retry ${count} messages of ${t.queue} matching the filter now? Those waiting (delayed or backing off) become deliverable at once.`,
  done: (done, t) => `Retried ${done} messages of ${t.queue}`,
  run: async (request, t) =>
    (
      await request<{ retryMessages: number }>(
        'mutation Retry($queue: String!, $filter: MessageFilter) { retryMessages(queue: $queue, filter: $filter) }',
        { queue: t.queue, filter: t.filter.filter },
      )
    ).retryMessages,
};

const DELETE: BulkAction = {
  label: 'Delete',
  takesState: true,
  describe: (count, t) =>
    `Delete ${count} messages of ${t.queue} matching the filter? This cannot be undone.`,
  done: (done, t) => `Deleted ${done} messages of ${t.queue}`,
  run: async (request, t) =>
    (
      await request<{ deleteMessages: number }>(
        'mutation Delete($queue: String!, $state: MessageState, $filter: MessageFilter) { deleteMessages(queue: $queue, state: $state, filter: $filter) }',
        { queue: t.queue, state: t.filter.state, filter: t.filter.filter },
      )
    ).deleteMessages,
};

const MOVE: BulkAction = {
  label: 'Move',
  takesState: true,
  needsTarget: true,
  describe: (count, t, to) =>
    `Move ${count} messages of ${t.queue} matching the filter to ${to ?? '…'}?`,
  done: (done, t, to) => `Moved ${done} messages from ${t.queue} to ${to ?? '?'}`,
  run: async (request, t, to) =>
    (
      await request<{ moveMessages: number }>(
        'mutation Move($queue: String!, $to: String!, $state: MessageState, $filter: MessageFilter) { moveMessages(queue: $queue, to: $to, state: $state, filter: $filter) }',
        { queue: t.queue, to, state: t.filter.state, filter: t.filter.filter },
      )
    ).moveMessages,
};

/** The bulk actions of a queue's message browser: a dead-letter queue redrives, others retry. */
export function bulkActionsFor(isDeadLetterQueue: boolean): readonly BulkAction[] {
  return [isDeadLetterQueue ? REDRIVE : RETRY, DELETE, MOVE];
}

/** How many messages a bulk action would touch now: the API's messageCount for the same filter. */
export async function countMatching(
  request: Request,
  action: BulkAction,
  target: BulkTarget,
): Promise<number> {
  const data = await request<{ messageCount: number }>(
    'query Count($queue: String!, $state: MessageState, $filter: MessageFilter) { messageCount(queue: $queue, state: $state, filter: $filter) }',
    {
      queue: target.queue,
      state: action.takesState ? target.filter.state : null,
      filter: target.filter.filter,
    },
  );
  return data.messageCount;
}
