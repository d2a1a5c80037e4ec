import type { WaitingReason } from '../../contract.ts';
import { h, replaceChildren } from '../element.ts';
import { errorBox } from '../error-box.ts';
import { formatCount, formatSeconds, formatTime, jsonPretty } from '../format.ts';
import type { Page } from '../page-context.ts';
import { routeHash } from '../router.ts';

interface MessageDetails {
  id: string;
  queue: string;
  state: string;
  payload: unknown;
  headers: unknown;
  priority: number;
  attempts: number;
  runAt: string;
  createdAt: string;
  lastError: string | null;
  originQueue: string | null;
  groupKey: string | null;
  dedupKey: string | null;
  leaseExpiresAt: string | null;
  deadLetteredAt: string | null;
  position: number | null;
  estimatedWaitSeconds: number | null;
  waitingReason: WaitingReason | null;
  nextEligibleAt: string | null;
}

const MESSAGE_QUERY = `query Message($id: ID!) {
  message(id: $id) {
    id queue state payload headers priority attempts runAt createdAt lastError originQueue
    position estimatedWaitSeconds waitingReason nextEligibleAt groupKey dedupKey leaseExpiresAt deadLetteredAt
  }
}`;

/** Why a message waits, told as a sentence. */
const WAITING_STORIES: Readonly<Record<WaitingReason, string>> = {
  READY: 'Nothing holds it back: it is delivered once the messages ahead of it have gone.',
  DELAYED: 'It is not due yet (sent with a delay or a run time).',
  BACKING_OFF: 'A delivery failed; it waits out the retry backoff.',
  GROUP_HEAD_IN_FLIGHT:
    'An earlier message of its group is still in the queue: a group goes one at a time, in order.',
  QUEUE_PAUSED: 'The queue is paused.',
  CONCURRENCY_CAP:
    'Every slot of the queue’s concurrency cap is leased; it goes when a lease ends.',
  RATE_LIMITED: 'The queue’s rate limit has no token left for now.',
};

/** How often the page reads the message again (its place in line moves). */
const REFRESH_MS = 2_000;

/**
 * A message's page: its payload and headers, attempts and last error, its lease, and where
 * it stands — position in line, estimated wait and why it waits — read again every 2 s.
 */
export const messagePage: Page<{ page: 'message'; id: string }> = async (ctx, container, route) => {
  const load = async (): Promise<MessageDetails | null> =>
    (await ctx.request<{ message: MessageDetails | null }>(MESSAGE_QUERY, { id: route.id }))
      .message;
  const draw = (message: MessageDetails | null): void => {
    if (message === null) {
      replaceChildren(
        container,
        h('h1', null, `Message ${route.id}`),
        errorBox(
          'There is no such message now: it was acked, purged or deleted, was never sent, or is in a queue this token may not read.',
        ),
      );
      return;
    }
    replaceChildren(container, ...messageView(message));
  };
  draw(await load());
  ctx.scope.every(REFRESH_MS, async () => {
    const message = await load().catch(() => undefined);
    if (message !== undefined && !ctx.scope.disposed) draw(message);
  });
};

function messageView(m: MessageDetails): HTMLElement[] {
  const facts: [string, string | HTMLElement][] = [
    ['Queue', h('a', { href: routeHash({ page: 'queue', queue: m.queue }) }, m.queue)],
    ['State', m.state],
    ['Attempts', formatCount(m.attempts)],
    ['Priority', String(m.priority)],
    ['Sent', formatTime(m.createdAt)],
    ['Due', formatTime(m.runAt)],
  ];
  if (m.state === 'LEASED') facts.push(['Lease ends', formatTime(m.leaseExpiresAt)]);
  if (m.state === 'READY') {
    facts.push([
      'Position',
      m.position === null
        ? '—'
        : m.position === 0
          ? 'next in line'
          : `${formatCount(m.position)} ahead of it`,
    ]);
    facts.push([
      'Estimated wait',
      m.estimatedWaitSeconds === null
        ? 'unknown (nothing delivered recently)'
        : formatSeconds(m.estimatedWaitSeconds),
    ]);
  }
  if (m.nextEligibleAt !== null && m.state !== 'READY')
    facts.push(['Eligible at', formatTime(m.nextEligibleAt)]);
  if (m.groupKey !== null) facts.push(['Group key', m.groupKey]);
  if (m.dedupKey !== null) facts.push(['Dedup key', m.dedupKey]);
  if (m.originQueue !== null)
    facts.push([
      'Died in',
      h('a', { href: routeHash({ page: 'queue', queue: m.originQueue }) }, m.originQueue),
    ]);
  if (m.lastError !== null)
    facts.push(['Last error', h('span', { class: 'error-text' }, m.lastError)]);
  return [
    h('h1', null, `Message ${m.id}`),
    m.waitingReason === null
      ? h('p', { class: 'story' }, 'A consumer holds it under a lease.')
      : h(
          'p',
          { class: 'story' },
          h('strong', null, m.waitingReason),
          ' — ',
          WAITING_STORIES[m.waitingReason],
        ),
    h(
      'dl',
      { class: 'facts' },
      facts.map(([k, v]) => [h('dt', null, k), h('dd', null, v)]),
    ),
    h('h2', null, 'Payload'),
    h('pre', { class: 'json' }, jsonPretty(m.payload)),
    h('h2', null, 'Headers'),
    h('pre', { class: 'json' }, m.headers == null ? 'none' : jsonPretty(m.headers)),
  ];
}
