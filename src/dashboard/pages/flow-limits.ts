import type { RateLimit } from '../../contract.ts';
import { confirmAction } from '../confirm-dialog.ts';
import { tableHead } from '../data-table.ts';
import { h, replaceChildren } from '../element.ts';
import { actionButton, pausedBadge } from '../action-button.ts';
import { formatCount, formatSeconds } from '../format.ts';
import type { Page, PageContext } from '../page-context.ts';
import { routeHash } from '../router.ts';
import { may } from '../viewer.ts';

interface LimitedQueue {
  name: string;
  paused: boolean;
  config: {
    maxInFlight: number | null;
    groupMaxInFlight: number | null;
    rateLimit: RateLimit | null;
    groupRateLimit: RateLimit | null;
  };
  stats: {
    leased: number;
    waiting: {
      concurrencyCap: number;
      rateLimited: number;
      groupHeadInFlight: number;
      queuePaused: number;
    };
  };
}

const FLOW_LIMITS_QUERY = `query FlowLimits {
  queues {
    name paused
    config {
      maxInFlight groupMaxInFlight rateLimit { count perSeconds }
      groupRateLimit { count perSeconds }
    }
    stats { leased waiting { concurrencyCap rateLimited groupHeadInFlight queuePaused } }
  }
}`;

/** How often the counts are read again (the waiting counts cost a probe per group). */
const REFRESH_MS = 5_000;

/**
 * Flow limits: each queue's concurrency cap, per-group concurrency and rate limits, how many
 * of its messages are leased, and how many each limit holds back now; admins can change them.
 */
export const flowLimitsPage: Page = async (ctx, container) => {
  let refresh = (): Promise<void> => Promise.resolve();
  const load = async (): Promise<LimitedQueue[]> =>
    (await ctx.request<{ queues: LimitedQueue[] }>(FLOW_LIMITS_QUERY)).queues;
  const draw = (queues: readonly LimitedQueue[]): void => {
    replaceChildren(
      container,
      h('h1', null, 'Flow limits'),
      h(
        'p',
        { class: 'subtitle' },
        'Limits are enforced by PostgreSQL across every consumer and service instance. “Held” counts messages that are due but wait for that limit.',
      ),
      h(
        'table',
        { class: 'flow-limits' },
        tableHead([
          'Queue',
          'Concurrency cap #',
          'Leased #',
          'Held by cap #',
          'Per group #',
          'Held by group #',
          'Rate limit #',
          'Per group rate #',
          'Held by rate #',
          '',
        ]),
        h(
          'tbody',
          null,
          queues.map((q) => limitRow(ctx, q, () => void refresh())),
        ),
      ),
    );
  };
  refresh = await ctx.scope.drawEvery(REFRESH_MS, load, draw);
};

function limitRow(ctx: PageContext, q: LimitedQueue, changed: () => void): HTMLElement {
  const c = q.config;
  const w = q.stats.waiting;
  return h(
    'tr',
    { 'data-queue': q.name },
    h(
      'th',
      { scope: 'row' },
      h('a', { href: routeHash({ page: 'queue', queue: q.name }) }, q.name),
      q.paused ? pausedBadge(true) : null,
    ),
    h('td', { class: 'num' }, c.maxInFlight === null ? 'none' : formatCount(c.maxInFlight)),
    h('td', { class: 'num' }, formatCount(q.stats.leased)),
    h('td', { class: 'num' }, formatCount(w.concurrencyCap)),
    h(
      'td',
      { class: 'num' },
      c.groupMaxInFlight === null ? '1, in order' : formatCount(c.groupMaxInFlight),
    ),
    h('td', { class: 'num' }, formatCount(w.groupHeadInFlight)),
    h('td', { class: 'num' }, formatRate(c.rateLimit)),
    h('td', { class: 'num' }, formatRate(c.groupRateLimit)),
    h('td', { class: 'num' }, formatCount(w.rateLimited)),
    h(
      'td',
      { class: 'actions' },
      may(ctx.viewer, 'admin', q.name)
        ? actionButton(ctx, 'Change…', () => edit(ctx, q), { changed })
        : null,
    ),
  );
}

function formatRate(limit: RateLimit | null): string {
  return limit === null
    ? 'none'
    : `${formatCount(limit.count)} / ${formatSeconds(limit.perSeconds)}`;
}

/** A number field of the limits form: empty means no limit. */
function limitInput(name: string, value: number | null | undefined, step = '1'): HTMLInputElement {
  return h('input', {
    name,
    type: 'number',
    min: '0',
    step,
    value: value ?? '',
    placeholder: 'none',
  });
}

async function edit(ctx: PageContext, q: LimitedQueue): Promise<string | undefined> {
  const maxInFlight = limitInput('maxInFlight', q.config.maxInFlight);
  const groupMaxInFlight = limitInput('groupMaxInFlight', q.config.groupMaxInFlight);
  const rateCount = limitInput('rateCount', q.config.rateLimit?.count);
  const ratePer = limitInput('ratePerSeconds', q.config.rateLimit?.perSeconds, 'any');
  const groupRateCount = limitInput('groupRateCount', q.config.groupRateLimit?.count);
  const groupRatePer = limitInput(
    'groupRatePerSeconds',
    q.config.groupRateLimit?.perSeconds,
    'any',
  );
  const confirmed = await confirmAction({
    title: `Flow limits of ${q.name}`,
    text: 'Leave a field empty for no limit. Changes apply from the next receive; leases already held are kept.',
    confirmLabel: 'Save limits',
    body: h(
      'div',
      { class: 'limit-fields' },
      h('label', null, 'Concurrency cap ', maxInFlight),
      h('label', null, 'Per group ', groupMaxInFlight),
      h('label', null, 'Rate limit: ', rateCount, ' per ', ratePer, ' s'),
      h('label', null, 'Per group: ', groupRateCount, ' per ', groupRatePer, ' s'),
    ),
  });
  if (!confirmed) return undefined;
  const number = (input: HTMLInputElement): number | null =>
    input.value === '' ? null : Number(input.value);
  const rate = (count: number | null, per: number | null): RateLimit | null =>
    count === null || per === null ? null : { count, perSeconds: per };
  await ctx.request(
    'mutation Limits($name: String!, $config: QueueConfigInput!) { configureQueue(name: $name, config: $config) { name } }',
    {
      name: q.name,
      config: {
        maxInFlight: number(maxInFlight),
        groupMaxInFlight: number(groupMaxInFlight),
        rateLimit: rate(number(rateCount), number(ratePer)),
        groupRateLimit: rate(number(groupRateCount), number(groupRatePer)),
      },
    },
  );
  return `Saved the flow limits of ${q.name}`;
}
