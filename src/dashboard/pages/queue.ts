import { CHART_COLORS, timeChart } from '../charts.ts';
import type { Chart, ChartSeries } from '../charts.ts';
import { confirmAction } from '../confirm-dialog.ts';
import { h, replaceChildren } from '../element.ts';
import { errorBox, errorText } from '../error-box.ts';
import { formatCount, formatSeconds, formatTime } from '../format.ts';
import type { LiveStats } from '../live-stats.ts';
import type { Page, PageContext } from '../page-context.ts';
import {
  HISTORY_RANGES,
  HistoryUnavailable,
  fetchHistories,
  pointTimes,
} from '../queue-history.ts';
import type { HistoryPoint, HistoryRange } from '../queue-history.ts';
import { routeHash } from '../router.ts';
import { may } from '../viewer.ts';

interface QueueDetails {
  name: string;
  paused: boolean;
  createdAt: string;
  bindings: string[];
  config: {
    visibilityTimeout: number;
    maxAttempts: number;
    deadLetterQueue: string | null;
    backoffInitialSeconds: number;
    backoffMaxSeconds: number;
    retentionSeconds: number;
    maxPayloadBytes: number;
    archiveSeconds: number;
    maxInFlight: number | null;
    groupMaxInFlight: number | null;
    rateLimit: { count: number; perSeconds: number } | null;
  };
  stats: LiveStats & {
    waiting: Record<WaitingCount, number>;
  };
}

type WaitingCount =
  | 'ready'
  | 'delayed'
  | 'backingOff'
  | 'groupHeadInFlight'
  | 'queuePaused'
  | 'concurrencyCap'
  | 'rateLimited';

/** Why unleased messages wait, in the words of the page. */
const WAITING_LABELS: readonly [WaitingCount, string][] = [
  ['ready', 'in line'],
  ['delayed', 'delayed'],
  ['backingOff', 'backing off after a failure'],
  ['groupHeadInFlight', 'behind their group’s head'],
  ['queuePaused', 'held by the pause'],
  ['concurrencyCap', 'held by the concurrency cap'],
  ['rateLimited', 'held by the rate limit'],
];

const QUEUE_QUERY = `query Queue($name: String!) {
  queue(name: $name) {
    name paused createdAt bindings
    config {
      visibilityTimeout maxAttempts deadLetterQueue backoffInitialSeconds backoffMaxSeconds
      retentionSeconds maxPayloadBytes archiveSeconds maxInFlight groupMaxInFlight
      rateLimit { count perSeconds }
    }
    stats {
      queue ready delayed leased total oldestReadyAgeSeconds
      waiting { ready delayed backingOff groupHeadInFlight queuePaused concurrencyCap rateLimited }
    }
  }
}`;

/** How often the waiting reasons are counted again (costlier than the live counts). */
const WAITING_MS = 5_000;

/**
 * A queue's page: live counts, why its messages wait, throughput, depth and latency charts
 * over the last hour or day, its settings, and pause, resume and purge for those who may.
 */
export const queuePage: Page<{ page: 'queue'; queue: string }> = async (ctx, container, route) => {
  const load = async (): Promise<QueueDetails | null> =>
    (await ctx.request<{ queue: QueueDetails | null }>(QUEUE_QUERY, { name: route.queue })).queue;
  const queue = await load();
  if (ctx.scope.disposed) return;
  if (queue === null) {
    replaceChildren(
      container,
      h('h1', null, route.queue),
      errorBox(`There is no queue named "${route.queue}".`),
    );
    return;
  }
  const title = h('div', { class: 'title' });
  const cards = h('div', { class: 'cards' });
  const waiting = h('p', { class: 'waiting' });
  const charts = h('section', { class: 'charts' });
  replaceChildren(
    container,
    title,
    cards,
    waiting,
    charts,
    h('h2', null, 'Settings'),
    settingsTable(queue),
  );
  const drawTitle = (current: QueueDetails): void =>
    replaceChildren(title, ...queueTitle(ctx, current, () => void refresh()));
  const drawWaiting = (current: QueueDetails): void =>
    replaceChildren(
      waiting,
      'Waiting: ',
      WAITING_LABELS.filter(([key]) => current.stats.waiting[key] > 0).map(([key, label], i) => [
        i === 0 ? '' : ', ',
        h('strong', null, formatCount(current.stats.waiting[key])),
        ` ${label}`,
      ]),
      WAITING_LABELS.every(([key]) => current.stats.waiting[key] === 0) ? 'nothing' : '',
      '.',
    );
  const refresh = async (): Promise<void> => {
    const current = await load().catch(() => undefined);
    if (current == null || ctx.scope.disposed) return;
    drawTitle(current);
    drawWaiting(current);
    drawCards(cards, current.stats);
  };
  drawTitle(queue);
  drawWaiting(queue);
  drawCards(cards, queue.stats);
  ctx.scope.onDispose(ctx.live.watch(queue.name, (stats) => drawCards(cards, stats)));
  ctx.scope.every(WAITING_MS, refresh);
  await showCharts(ctx, charts, queue.name);
};

function queueTitle(ctx: PageContext, queue: QueueDetails, changed: () => void): HTMLElement[] {
  const admin = may(ctx.viewer, 'admin', queue.name);
  const act = async (label: string, run: () => Promise<string>): Promise<void> => {
    try {
      ctx.notice(await run());
      changed();
    } catch (error) {
      ctx.notice(`${label} failed: ${errorText(error)}`);
    }
  };
  const pauseOrResume = queue.paused
    ? h(
        'button',
        {
          type: 'button',
          onclick: () =>
            void act('Resume', async () => {
              await ctx.request(
                'mutation Resume($name: String!) { resumeQueue(name: $name) { paused } }',
                {
                  name: queue.name,
                },
              );
              return `Resumed ${queue.name}`;
            }),
        },
        'Resume',
      )
    : h(
        'button',
        {
          type: 'button',
          onclick: () =>
            void act('Pause', async () => {
              await ctx.request(
                'mutation Pause($name: String!) { pauseQueue(name: $name) { paused } }',
                {
                  name: queue.name,
                },
              );
              return `Paused ${queue.name}`;
            }),
        },
        'Pause',
      );
  const purge = h(
    'button',
    {
      type: 'button',
      class: 'danger',
      onclick: () =>
        void act('Purge', async () => {
          const fresh = await ctx.request<{ queue: { stats: { total: number } } | null }>(
            'query Count($name: String!) { queue(name: $name) { stats { total } } }',
            { name: queue.name },
          );
          const total = fresh.queue?.stats.total ?? 0;
          const confirmed = await confirmAction({
            title: `Purge ${queue.name}`,
            text: `Delete all ${formatCount(total)} messages of ${queue.name}, leased ones included? This cannot be undone.`,
            confirmLabel: `Purge ${formatCount(total)}`,
          });
          if (!confirmed) return 'Nothing purged';
          const done = await ctx.request<{ purge: number }>(
            'mutation Purge($queue: String!) { purge(queue: $queue) }',
            {
              queue: queue.name,
            },
          );
          return `Purged ${formatCount(done.purge)} messages from ${queue.name}`;
        }),
    },
    'Purge…',
  );
  const dlq = queue.config.deadLetterQueue;
  return [
    h(
      'h1',
      null,
      queue.name,
      ' ',
      h(
        'span',
        { class: `state ${queue.paused ? 'paused' : 'active'}` },
        queue.paused ? 'paused' : 'active',
      ),
    ),
    h(
      'nav',
      { class: 'queue-links' },
      h(
        'a',
        { href: routeHash({ page: 'messages', queue: queue.name, filter: {} }) },
        'Browse messages',
      ),
      dlq === null
        ? null
        : h(
            'a',
            { href: routeHash({ page: 'messages', queue: dlq, filter: {} }) },
            `Dead letters (${dlq})`,
          ),
      admin ? h('span', { class: 'actions' }, pauseOrResume, purge) : null,
    ),
  ];
}

function drawCards(cards: HTMLElement, stats: LiveStats): void {
  const card = (label: string, value: string, className: string): HTMLElement =>
    h(
      'div',
      { class: `card ${className}` },
      h('div', { class: 'value' }, value),
      h('div', { class: 'label' }, label),
    );
  replaceChildren(
    cards,
    card('ready', formatCount(stats.ready), 'ready'),
    card('delayed', formatCount(stats.delayed), 'delayed'),
    card('leased', formatCount(stats.leased), 'leased'),
    card('total', formatCount(stats.total), 'total'),
    card('oldest ready', formatSeconds(stats.oldestReadyAgeSeconds), 'age'),
  );
}

/** The chart panel: a range switch and the three charts, or why there are none. */
async function showCharts(ctx: PageContext, panel: HTMLElement, queue: string): Promise<void> {
  let charts: Chart[] = [];
  const destroy = (): void => {
    charts.forEach((chart) => chart.destroy());
    charts = [];
  };
  ctx.scope.onDispose(destroy);
  const body = h('div', { class: 'chart-body' });
  const switcher = h('div', { class: 'range', role: 'group', 'aria-label': 'Chart range' });
  const draw = async (range: HistoryRange): Promise<void> => {
    for (const button of switcher.querySelectorAll('button')) {
      button.setAttribute('aria-pressed', String(button.textContent === range.label));
    }
    let points: HistoryPoint[];
    try {
      points = (await fetchHistories(ctx.request, [queue], range)).get(queue) ?? [];
    } catch (error) {
      if (ctx.scope.disposed) return;
      destroy();
      replaceChildren(
        body,
        h(
          'p',
          { class: 'unavailable' },
          error instanceof HistoryUnavailable
            ? error.message
            : `History could not be read: ${errorText(error)}`,
          ' The live counts above still update.',
        ),
      );
      return;
    }
    if (ctx.scope.disposed) return;
    destroy();
    const width = Math.max(320, Math.min(1100, panel.clientWidth || 900));
    const at = pointTimes(points);
    const perMinute = 60 / range.stepSeconds;
    const series = (label: string, i: number, values: (number | null)[]): ChartSeries => ({
      label,
      color: CHART_COLORS[i]!,
      values,
    });
    charts = [
      timeChart({
        title: 'Throughput (messages per minute)',
        at,
        width,
        formatValue: (v) => formatCount(Math.round(v * 10) / 10),
        series: [
          series(
            'sent',
            0,
            points.map((p) => p.sent * perMinute),
          ),
          series(
            'delivered',
            5,
            points.map((p) => p.delivered * perMinute),
          ),
          series(
            'acked',
            1,
            points.map((p) => p.acked * perMinute),
          ),
          series(
            'nacked',
            4,
            points.map((p) => p.nacked * perMinute),
          ),
          series(
            'dead-lettered',
            3,
            points.map((p) => p.deadLettered * perMinute),
          ),
        ],
      }),
      timeChart({
        title: 'Depth (messages in the queue)',
        at,
        width,
        formatValue: (v) => formatCount(Math.round(v)),
        series: [
          series(
            'depth',
            2,
            points.map((p) => p.depth),
          ),
        ],
      }),
      timeChart({
        title: 'Oldest ready message (age)',
        at,
        width,
        formatValue: formatSeconds,
        series: [
          series(
            'oldest ready',
            4,
            points.map((p) => p.oldestReadyAgeSeconds),
          ),
        ],
      }),
      timeChart({
        title: 'Delivery latency (send to delivery)',
        at,
        width,
        formatValue: formatSeconds,
        series: [
          series(
            'p50',
            1,
            points.map((p) => p.deliveryLatencyP50Seconds),
          ),
          series(
            'p95',
            4,
            points.map((p) => p.deliveryLatencyP95Seconds),
          ),
          series(
            'p99',
            3,
            points.map((p) => p.deliveryLatencyP99Seconds),
          ),
        ],
      }),
    ];
    replaceChildren(
      body,
      charts.map((chart) => chart.element),
    );
  };
  for (const range of HISTORY_RANGES) {
    switcher.append(h('button', { type: 'button', onclick: () => void draw(range) }, range.label));
  }
  replaceChildren(panel, h('h2', null, 'History'), switcher, body);
  await draw(HISTORY_RANGES[0]!);
}

function settingsTable(queue: QueueDetails): HTMLElement {
  const c = queue.config;
  const rows: [string, string][] = [
    ['Visibility timeout', formatSeconds(c.visibilityTimeout)],
    ['Max attempts', String(c.maxAttempts)],
    ['Dead-letter queue', c.deadLetterQueue ?? 'none (retried forever)'],
    [
      'Backoff',
      `${formatSeconds(c.backoffInitialSeconds)} doubling, up to ${formatSeconds(c.backoffMaxSeconds)}`,
    ],
    ['Retention', formatSeconds(c.retentionSeconds)],
    ['Largest payload', `${formatCount(c.maxPayloadBytes)} bytes`],
    [
      'Archive',
      c.archiveSeconds === 0 ? 'off' : `kept ${formatSeconds(c.archiveSeconds)} after ack`,
    ],
    [
      'Concurrency cap',
      c.maxInFlight === null ? 'none' : `${formatCount(c.maxInFlight)} leased at once`,
    ],
    [
      'Per group',
      c.groupMaxInFlight === null
        ? 'one at a time, in order'
        : `${formatCount(c.groupMaxInFlight)} at once`,
    ],
    [
      'Rate limit',
      c.rateLimit === null
        ? 'none'
        : `${formatCount(c.rateLimit.count)} per ${formatSeconds(c.rateLimit.perSeconds)}`,
    ],
    ['Topic bindings', queue.bindings.length === 0 ? 'none' : queue.bindings.join(', ')],
    ['Created', formatTime(queue.createdAt)],
  ];
  return h(
    'table',
    { class: 'settings' },
    h(
      'tbody',
      null,
      rows.map(([k, v]) => h('tr', null, h('th', { scope: 'row' }, k), h('td', null, v))),
    ),
  );
}
