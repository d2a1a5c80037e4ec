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
  describe(count: string, target: BulkTarget): string;
  /** The notice afterwards for `done` messages, e.g. "Redrove 3 dead letters". */
  done(done: string, target: BulkTarget, to?: string): string;
  /**
   * The states of the messages it acts on, given the browser's state filter (null: any), so
   * that the confirmation counts exactly those; undefined when it does not apply with that
   * filter. Leased messages are never acted on.
   */
  statesFor(state: string | null): readonly string[] | undefined;
  /** True when it needs a target queue (move). */
  needsTarget?: boolean;
  run(request: Request, target: BulkTarget, to?: string): Promise<number>;
}

/** READY or DELAYED as filtered, both when not: what delete and move act on. */
const UNLEASED = (state: string | null): readonly string[] | undefined =>
  state === null ? ['READY', 'DELAYED'] : state === 'LEASED' ? undefined : [state];

const REDRIVE: BulkAction = {
  label: 'Redrive',
  // It takes no state: every unleased dead letter that matches.
  statesFor: (state) => (state === null ? ['READY', 'DELAYED'] : undefined),
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
  // It acts on the messages waiting for their runAt: delayed, or backing off after a failure.
  statesFor: (state) => (state === null || state === 'DELAYED' ? ['DELAYED'] : undefined),
  describe: (count, t) =>
    `Retry ${count} waiting messages of ${t.queue} matching the filter (delayed, or backing off after a failure)? They become deliverable at once, attempts kept.`,
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
  statesFor: UNLEASED,
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
  statesFor: UNLEASED,
  needsTarget: true,
  describe: (count, t) =>
    `Move ${count} messages of ${t.queue} matching the filter to the queue chosen below? They keep their id, payload, attempts and group; a dedup key is dropped.`,
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

/** Where messageCount stops counting (its default): a count this high reads "at least". */
export const COUNT_MAX = 100_000;

/**
 * How many messages a bulk action would touch now: the API's messageCount for the same
 * filter, summed over the states the action acts on (one request). A snapshot: the action
 * itself then finds what is there when it runs. Undefined when the action does not apply
 * with the browser's state filter.
 */
export async function countMatching(
  request: Request,
  action: BulkAction,
  target: BulkTarget,
): Promise<{ count: number; atLeast: boolean } | undefined> {
  const states = action.statesFor(target.filter.state);
  if (states === undefined) return undefined;
  const counts = states
    .map(
      (state) =>
        `${state}: messageCount(queue: $queue, state: ${state}, filter: $filter, max: $max)`,
    )
    .join(' ');
  const data = await request<Record<string, number>>(
    `query Count($queue: String!, $filter: MessageFilter, $max: Int!) { ${counts} }`,
    { queue: target.queue, filter: target.filter.filter, max: COUNT_MAX },
  );
  const values = states.map((state) => data[state] ?? 0);
  return {
    count: values.reduce((sum, n) => sum + n, 0),
    atLeast: values.some((n) => n >= COUNT_MAX),
  };
}
