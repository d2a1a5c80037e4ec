import { CHART_COLORS, timeChart } from '../charts.ts';
import type { Chart, ChartSeries } from '../charts.ts';
import { confirmAction } from '../confirm-dialog.ts';
import { h, replaceChildren } from '../element.ts';
import { actionButton, pausedBadge } from '../action-button.ts';
import { errorBox, errorText } from '../error-box.ts';
import { formatCount, formatSeconds, formatSecondsShort, formatTime } from '../format.ts';
import type { QueueConfig, WaitingCounts } from '../../contract.ts';
import type { LiveStats } from '../live-stats.ts';
import type { Page, PageContext } from '../page-context.ts';
import { HISTORY_RANGES, completePoints, fetchHistories, pointTimes } from '../queue-history.ts';
import type { HistoryPoint, HistoryRange } from '../queue-history.ts';
import { routeHash } from '../router.ts';
import { may } from '../viewer.ts';

interface QueueDetails {
  name: string;
  paused: boolean;
  createdAt: string;
  bindings: string[];
  /** The contract's settings, with the GraphQL name of the lease length. */
  config: Omit<QueueConfig, 'visibilityTimeoutSeconds'> & { visibilityTimeout: number };
  stats: LiveStats & { waiting: Record<WaitingCount, number> };
}

/** The reasons `stats.waiting` counts by. */
type WaitingCount = Exclude<keyof WaitingCounts, 'queue' | 'leased' | 'maxInFlight'>;

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

/** The history's numeric fields, which the charts draw. */
type HistoryField = {
  [K in keyof HistoryPoint]: HistoryPoint[K] extends number | null ? K : never;
}[keyof HistoryPoint];

/** One chart of the queue page: its title, its lines (label, field), how its values read. */
interface ChartSpec {
  title: string;
  lines: readonly (readonly [string, HistoryField])[];
  /** Counts per step, drawn per minute whatever the step. */
  perStep?: boolean;
  /** Durations in seconds (else counts). */
  seconds?: boolean;
}

/** The queue page's charts, in order. */
const QUEUE_CHARTS: readonly ChartSpec[] = [
  {
    title: 'Throughput (messages per minute)',
    perStep: true,
    lines: [
      ['sent', 'sent'],
      ['delivered', 'delivered'],
      ['acked', 'acked'],
      ['nacked', 'nacked'],
      ['dead-lettered', 'deadLettered'],
      ['leases expired', 'leaseExpired'],
    ],
  },
  { title: 'Depth (ready + delayed + leased)', lines: [['depth', 'depth']] },
  {
    title: 'Oldest ready message (age)',
    seconds: true,
    lines: [['oldest ready', 'oldestReadyAgeSeconds']],
  },
  {
    title: 'Delivery latency (due to leased)',
    seconds: true,
    lines: [
      ['p50', 'deliveryLatencyP50Seconds'],
      ['p95', 'deliveryLatencyP95Seconds'],
      ['p99', 'deliveryLatencyP99Seconds'],
    ],
  },
];

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
  const name = { name: queue.name };
  const pauseOrResume = queue.paused
    ? actionButton(
        ctx,
        'Resume',
        async () => {
          await ctx.request(
            'mutation Resume($name: String!) { resumeQueue(name: $name) { paused } }',
            name,
          );
          return `Resumed ${queue.name}`;
        },
        { changed },
      )
    : actionButton(
        ctx,
        'Pause',
        async () => {
          await ctx.request(
            'mutation Pause($name: String!) { pauseQueue(name: $name) { paused } }',
            name,
          );
          return `Paused ${queue.name}`;
        },
        { changed },
      );
  const purge = actionButton(
    ctx,
    'Purge…',
    async () => {
      const fresh = await ctx.request<{ queue: { stats: { total: number } } | null }>(
        'query Count($name: String!) { queue(name: $name) { stats { total } } }',
        name,
      );
      const total = formatCount(fresh.queue?.stats.total ?? 0);
      const confirmed = await confirmAction({
        title: `Purge ${queue.name}`,
        text: `Delete all ${total} messages of ${queue.name}, leased ones included? This cannot be undone.`,
        confirmLabel: `Purge ${total}`,
      });
      if (!confirmed) return undefined;
      const done = await ctx.request<{ purge: number }>(
        'mutation Purge($name: String!) { purge(queue: $name) }',
        name,
      );
      return `Purged ${formatCount(done.purge)} messages from ${queue.name}`;
    },
    { danger: true, changed },
  );
  const dlq = queue.config.deadLetterQueue;
  return [
    h('h1', null, queue.name, ' ', pausedBadge(queue.paused)),
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
      const history = (await fetchHistories(ctx.request, [queue], range)).get(queue) ?? [];
      points = completePoints(history, range.stepSeconds);
    } catch (error) {
      if (ctx.scope.disposed) return;
      destroy();
      replaceChildren(
        body,
        h(
          'p',
          { class: 'unavailable' },
          `History could not be read: ${errorText(error)}.`,
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
    charts = QUEUE_CHARTS.map((spec) =>
      timeChart({
        title: spec.title,
        at,
        width,
        formatValue:
          spec.seconds === true ? formatSeconds : (v) => formatCount(Math.round(v * 10) / 10),
        formatAxis: spec.seconds === true ? formatSecondsShort : (v) => formatCount(v),
        series: spec.lines.map(([label, field], i): ChartSeries => ({
          label,
          color: CHART_COLORS[i % CHART_COLORS.length]!,
          values: points.map((point) => {
            const value = point[field];
            return value !== null && spec.perStep === true ? value * perMinute : value;
          }),
        })),
      }),
    );
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
