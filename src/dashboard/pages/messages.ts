import { bulkActionsFor, countMatching } from '../bulk-actions.ts';
import type { BulkAction, BulkTarget } from '../bulk-actions.ts';
import { confirmAction } from '../confirm-dialog.ts';
import { tableHead } from '../data-table.ts';
import { h, replaceChildren } from '../element.ts';
import { actionButton } from '../action-button.ts';
import { errorBox } from '../error-box.ts';
import { ApiError } from '../graphql-api.ts';
import { formatCount, formatTime, jsonPreview } from '../format.ts';
import { FilterInputError, toApiFilter } from '../message-filter.ts';
import type { ApiFilter } from '../message-filter.ts';
import type { Page, PageContext } from '../page-context.ts';
import { routeHash } from '../router.ts';
import type { FILTER_FIELDS, MessageFilterParams } from '../router.ts';
import { may } from '../viewer.ts';

/** Messages per page of the browser. */
const PAGE_SIZE = 50;

/**
 * The list is read again when the queue's counts change, but at most once in this many ms:
 * on a busy queue the counts change with every subscription event (4 a second), and each
 * read counts the matches too.
 */
const RELOAD_MIN_INTERVAL_MS = 500;

/** Where the browser's summary stops counting ("at least 10,000 messages match"). */
const SUMMARY_COUNT_MAX = 10_000;

interface ListedMessage {
  id: string;
  state: string;
  attempts: number;
  priority: number;
  createdAt: string;
  runAt: string;
  lastError: string | null;
  originQueue: string | null;
  groupKey: string | null;
  payload: unknown;
}

const MESSAGE_FIELDS =
  'id state attempts priority createdAt runAt lastError originQueue groupKey payload';

const LIST_QUERY = `query Browse($queue: String!, $state: MessageState, $filter: MessageFilter, $first: Int, $after: ID, $max: Int!) {
  messages(queue: $queue, state: $state, filter: $filter, first: $first, after: $after) { ${MESSAGE_FIELDS} }
  messageCount(queue: $queue, state: $state, filter: $filter, max: $max)
}`;

const QUEUE_NAMES_QUERY = `query Names { queues { name config { deadLetterQueue } } }`;

/** The filter form's fields: label, kind of input, hint. */
const FIELD_INPUTS: Readonly<
  Record<Exclude<(typeof FILTER_FIELDS)[number], 'state'>, [string, string, string]>
> = {
  payload: ['Payload contains', 'text', '{"region": "eu"}'],
  headers: ['Headers contain', 'text', '{"tenant": "acme"}'],
  groupKey: ['Group key', 'text', ''],
  dedupKey: ['Dedup key', 'text', ''],
  createdAfter: ['Sent after', 'datetime-local', ''],
  createdBefore: ['Sent before', 'datetime-local', ''],
};

/**
 * The message browser of one queue: a filter (state, payload and header containment, group
 * and dedup key, sending time), the matching count, one page of matches (updated when the
 * queue's counts change), and bulk actions on everything the filter matches, each confirmed
 * with the count. On a dead-letter queue it shows each message's origin and last error, and
 * offers redrive.
 */
export const messagesPage: Page<{
  page: 'messages';
  queue: string;
  filter: MessageFilterParams;
}> = async (ctx, container, route) => {
  const { queue, filter: params } = route;
  const names = await ctx.request<{
    queues: { name: string; config: { deadLetterQueue: string | null } }[];
  }>(QUEUE_NAMES_QUERY);
  if (ctx.scope.disposed) return;
  const origins = names.queues.filter((q) => q.config.deadLetterQueue === queue).map((q) => q.name);
  const isDeadLetterQueue = origins.length > 0;
  const summary = h('p', { class: 'summary', 'aria-live': 'polite' });
  const listBox = h('div', { class: 'list' });
  const pager = h('div', { class: 'pager' });
  const form = filterForm(ctx, queue, params);
  replaceChildren(
    container,
    h(
      'h1',
      null,
      isDeadLetterQueue ? 'Dead letters in ' : 'Messages of ',
      h('a', { href: routeHash({ page: 'queue', queue }) }, queue),
    ),
    isDeadLetterQueue
      ? h('p', { class: 'subtitle' }, `Dead-letter queue of ${origins.join(', ')}.`)
      : null,
    form,
  );

  let apiFilter: ApiFilter;
  try {
    apiFilter = toApiFilter(params);
  } catch (error) {
    if (!(error instanceof FilterInputError)) throw error;
    container.append(errorBox(error));
    return;
  }
  const target: BulkTarget = { queue, filter: apiFilter };
  const actions = may(ctx.viewer, 'admin', queue)
    ? bulkBar(
        ctx,
        target,
        bulkActionsFor(isDeadLetterQueue),
        names.queues.map((q) => q.name),
        params,
        () => void reload(),
      )
    : null;
  container.append(summary, actions ?? '', listBox, pager);

  let after: string | undefined;
  let lastReload = 0;
  const pages: (string | undefined)[] = [];
  const reload = async (): Promise<void> => {
    lastReload = Date.now();
    let data: { messages: ListedMessage[]; messageCount: number };
    try {
      data = await ctx.request(LIST_QUERY, {
        queue,
        state: apiFilter.state,
        filter: apiFilter.filter,
        first: PAGE_SIZE,
        after,
        max: SUMMARY_COUNT_MAX,
      });
    } catch (error) {
      if (ctx.scope.disposed) return;
      // A dead-letter queue is created with its first dead letter.
      const none =
        isDeadLetterQueue && error instanceof ApiError && error.code === 'QUEUE_NOT_FOUND';
      replaceChildren(
        listBox,
        none
          ? h(
              'p',
              { class: 'empty' },
              `No dead letters yet: ${queue} is created when the first message dies.`,
            )
          : errorBox(error),
      );
      return;
    }
    const { messages, messageCount: count } = data;
    if (ctx.scope.disposed) return;
    replaceChildren(
      summary,
      `${count >= SUMMARY_COUNT_MAX ? 'At least ' : ''}${formatCount(count)} ${count === 1 ? 'message matches' : 'messages match'}.`,
    );
    replaceChildren(listBox, messageTable(messages, isDeadLetterQueue));
    replaceChildren(
      pager,
      pages.length > 0
        ? h(
            'button',
            { type: 'button', onclick: () => void turn(pages.pop(), false) },
            '← Previous page',
          )
        : null,
      messages.length === PAGE_SIZE
        ? h(
            'button',
            { type: 'button', onclick: () => void turn(messages.at(-1)?.id, true) },
            'Next page →',
          )
        : null,
    );
  };
  const turn = async (cursor: string | undefined, forward: boolean): Promise<void> => {
    if (forward) pages.push(after);
    after = cursor;
    await reload();
  };

  // Live: a change of the queue's counts reads the list again (sends, acks, moves by others).
  let pending: number | undefined;
  ctx.scope.onDispose(() => window.clearTimeout(pending));
  let first = true;
  ctx.scope.onDispose(
    ctx.live.watch(queue, () => {
      if (first) {
        first = false; // the counts as they were when the page was drawn
        return;
      }
      if (pending !== undefined) return;
      const wait = Math.max(0, lastReload + RELOAD_MIN_INTERVAL_MS - Date.now());
      pending = window.setTimeout(() => {
        pending = undefined;
        void reload();
      }, wait);
    }),
  );
  await reload();
};

function filterForm(ctx: PageContext, queue: string, params: MessageFilterParams): HTMLElement {
  const state = h(
    'select',
    { name: 'state' },
    ['', 'READY', 'DELAYED', 'LEASED'].map((value) =>
      h(
        'option',
        { value, selected: (params.state ?? '') === value },
        value === '' ? 'any' : value,
      ),
    ),
  );
  const inputs = Object.entries(FIELD_INPUTS).map(([field, [label, type, placeholder]]) => {
    const input = h('input', {
      name: field,
      type,
      placeholder,
      value: params[field as keyof MessageFilterParams] ?? '',
      ...(type === 'datetime-local' ? { step: 1 } : {}),
    });
    return {
      field: field as keyof MessageFilterParams,
      element: h('label', null, label, input),
      input,
    };
  });
  const submit = (event: Event): void => {
    event.preventDefault();
    const next: MessageFilterParams = {};
    if (state.value !== '') next.state = state.value;
    for (const { field, input } of inputs)
      if (input.value.trim() !== '') next[field] = input.value.trim();
    ctx.go({ page: 'messages', queue, filter: next });
  };
  return h(
    'form',
    { class: 'filter', onsubmit: submit, 'aria-label': 'Filter' },
    h('label', null, 'State', state),
    inputs.map((i) => i.element),
    h(
      'div',
      { class: 'buttons' },
      h('button', { type: 'submit' }, 'Apply filter'),
      h('a', { href: routeHash({ page: 'messages', queue, filter: {} }) }, 'Clear'),
    ),
  );
}

function bulkBar(
  ctx: PageContext,
  target: BulkTarget,
  actions: readonly BulkAction[],
  queueNames: readonly string[],
  params: MessageFilterParams,
  changed: () => void,
): HTMLElement {
  /** Counts, confirms with the count, runs; resolves with the notice, or undefined if cancelled. */
  const run = async (action: BulkAction): Promise<string | undefined> => {
    const matching = await countMatching(ctx.request, action, target);
    if (matching === undefined) return undefined;
    const countText = `${matching.atLeast ? 'at least ' : ''}${formatCount(matching.count)}`;
    const select =
      action.needsTarget === true
        ? h(
            'select',
            { name: 'to' },
            queueNames
              .filter((name) => name !== target.queue)
              .map((name) => h('option', { value: name }, name)),
          )
        : undefined;
    const confirmed = await confirmAction({
      title: `${action.label} matching messages`,
      text: action.describe(countText, target),
      confirmLabel: `${action.label} ${formatCount(matching.count)}`,
      ...(select === undefined ? {} : { body: h('label', null, 'Move to ', select) }),
    });
    if (!confirmed) return undefined;
    const to = select?.value;
    const done = await action.run(ctx.request, target, to);
    return action.done(formatCount(done), target, to);
  };
  return h(
    'div',
    { class: 'bulk', role: 'group', 'aria-label': 'Bulk actions' },
    'On everything the filter matches: ',
    actions.map((action) => {
      const button = actionButton(ctx, `${action.label}…`, () => run(action), {
        danger: action.label === 'Delete',
        changed,
      });
      if (action.statesFor(params.state ?? null) === undefined) {
        button.disabled = true;
        button.title = `${action.label} does not apply to ${params.state ?? ''} messages`;
      }
      return button;
    }),
  );
}

function messageTable(messages: readonly ListedMessage[], deadLetters: boolean): HTMLElement {
  if (messages.length === 0) return h('p', { class: 'empty' }, 'No messages match.');
  const columns = deadLetters
    ? ['ID', 'From', 'Attempts #', 'Last error', 'Sent', 'Payload']
    : ['ID', 'State', 'Attempts #', 'Priority #', 'Group', 'Sent', 'Due', 'Payload'];
  const link = (m: ListedMessage): HTMLElement =>
    h('a', { href: routeHash({ page: 'message', id: m.id }) }, m.id);
  return h(
    'table',
    { class: 'messages' },
    tableHead(columns),
    h(
      'tbody',
      null,
      messages.map((m) =>
        h(
          'tr',
          { 'data-id': m.id },
          deadLetters
            ? [
                h('td', null, link(m)),
                h('td', null, m.originQueue ?? '—'),
                h('td', { class: 'num' }, String(m.attempts)),
                h('td', { class: 'error-text' }, m.lastError ?? '—'),
                h('td', null, formatTime(m.createdAt)),
                h('td', { class: 'payload' }, jsonPreview(m.payload)),
              ]
            : [
                h('td', null, link(m)),
                h('td', null, h('span', { class: `msg-state ${m.state.toLowerCase()}` }, m.state)),
                h('td', { class: 'num' }, String(m.attempts)),
                h('td', { class: 'num' }, String(m.priority)),
                h('td', null, m.groupKey ?? '—'),
                h('td', null, formatTime(m.createdAt)),
                h('td', null, formatTime(m.runAt)),
                h('td', { class: 'payload' }, jsonPreview(m.payload)),
              ],
        ),
      ),
    ),
  );
}
