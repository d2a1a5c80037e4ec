import { pausedBadge } from '../action-button.ts';
import { CHART_COLORS, sparkline } from '../charts.ts';
import type { Chart } from '../charts.ts';
import { tableHead } from '../data-table.ts';
import { h, replaceChildren } from '../element.ts';
import { errorText } from '../error-box.ts';
import { formatCount, formatRate, formatSeconds } from '../format.ts';
import { LIVE_QUEUES_MAX } from '../live-stats.ts';
import type { LiveStats } from '../live-stats.ts';
import type { Page, PageContext } from '../page-context.ts';
import {
  HISTORY_RANGES,
  completePoints,
  fetchHistories,
  pointTimes,
  recentRate,
} from '../queue-history.ts';
import type { HistoryPoint } from '../queue-history.ts';
import { routeHash } from '../router.ts';

/** How often the list is polled when it has more than {@link LIVE_QUEUES_MAX} queues. */
const POLL_MS = 2_000;

/** How often the list is read again for new or deleted queues and paused states. */
const MEMBERSHIP_MS = 10_000;

/** How often rates and sparklines are read again (the history has one point a minute). */
const HISTORY_MS = 60_000;

interface OverviewQueue {
  name: string;
  paused: boolean;
  config: { deadLetterQueue: string | null };
  stats: LiveStats;
}

const OVERVIEW_QUERY = `query Overview {
  queues { name paused config { deadLetterQueue } stats { queue ready delayed leased total oldestReadyAgeSeconds } }
}`;

/** The cells of one queue's row that change. */
interface Row {
  queue: OverviewQueue;
  element: HTMLTableRowElement;
  ready: HTMLElement;
  delayed: HTMLElement;
  leased: HTMLElement;
  dead: HTMLElement;
  age: HTMLElement;
  rateIn: HTMLElement;
  rateOut: HTMLElement;
  spark: HTMLElement;
  chart?: Chart;
}

/**
 * The queues overview: per queue its ready, delayed, leased and dead counts, the age of its
 * oldest ready message, in and out rates and a sparkline of the last hour, and whether it is
 * paused; live (see {@link LIVE_QUEUES_MAX}).
 */
export const overviewPage: Page = async (ctx, container) => {
  const queues = await ctx.request<{ queues: OverviewQueue[] }>(OVERVIEW_QUERY);
  if (ctx.scope.disposed) return;
  const table = new OverviewTable(ctx, container);
  table.show(queues.queues);

  ctx.scope.every(MEMBERSHIP_MS, async () => {
    const next = await ctx
      .request<{ queues: OverviewQueue[] }>(OVERVIEW_QUERY)
      .catch(() => undefined);
    if (next !== undefined && !ctx.scope.disposed) table.update(next.queues);
  });
  if (queues.queues.length > LIVE_QUEUES_MAX) {
    ctx.scope.every(POLL_MS, async () => {
      const next = await ctx
        .request<{ queues: OverviewQueue[] }>(OVERVIEW_QUERY)
        .catch(() => undefined);
      if (next !== undefined && !ctx.scope.disposed) table.update(next.queues);
    });
  }
  await table.loadHistory();
  ctx.scope.every(HISTORY_MS, () => table.loadHistory());
};

class OverviewTable {
  private readonly rows = new Map<string, Row>();
  private readonly body = h('tbody');
  private readonly note = h('p', { class: 'note' });
  private unwatch: (() => void)[] = [];

  constructor(
    private readonly ctx: PageContext,
    private readonly container: HTMLElement,
  ) {
    ctx.scope.onDispose(() => this.stopWatching());
    ctx.scope.onDispose(() => this.rows.forEach((row) => row.chart?.destroy()));
  }

  /** Draws the table for `queues` and starts watching them. */
  show(queues: readonly OverviewQueue[]): void {
    this.stopWatching();
    this.rows.forEach((row) => row.chart?.destroy());
    this.rows.clear();
    this.body.replaceChildren();
    if (queues.length === 0) {
      replaceChildren(
        this.container,
        h('h1', null, 'Queues'),
        h(
          'p',
          { class: 'empty' },
          'No queues yet. Create one with GraphiQL or the API: ',
          h('code', null, 'mutation { createQueue(name: "orders") { name } }'),
        ),
      );
      return;
    }
    for (const queue of queues) this.body.append(this.row(queue).element);
    this.refreshDead();
    const live = queues.length <= LIVE_QUEUES_MAX;
    replaceChildren(
      this.container,
      h('h1', null, 'Queues'),
      h(
        'p',
        { class: 'subtitle' },
        live
          ? 'Counts are live (queueStats subscriptions). Rates are messages per second over the last 5 minutes.'
          : `Counts refresh every ${POLL_MS / 1000} s (more than ${LIVE_QUEUES_MAX} queues). Rates are messages per second over the last 5 minutes.`,
      ),
      h(
        'table',
        { class: 'queues' },
        tableHead([
          'Queue',
          'State',
          'Ready #',
          'Delayed #',
          'Leased #',
          'Dead #',
          'Oldest ready #',
          'In #',
          'Out #',
          'Last hour',
        ]),
        this.body,
      ),
      this.note,
    );
    if (live) this.watch(queues);
  }

  /** Takes a fresh list: redraws when queues came or went, else updates counts and states. */
  update(queues: readonly OverviewQueue[]): void {
    const same =
      queues.length === this.rows.size && queues.every((queue) => this.rows.has(queue.name));
    if (!same) {
      this.show(queues);
      void this.loadHistory();
      return;
    }
    for (const queue of queues) {
      const row = this.rows.get(queue.name)!;
      row.queue = queue;
      row.element.querySelector('.state')!.replaceWith(pausedBadge(queue.paused));
      this.setCounts(row, queue.stats);
    }
    this.refreshDead();
  }

  /** Reads the last hour of every queue's history for rates and sparklines. */
  async loadHistory(): Promise<void> {
    const range = HISTORY_RANGES[0]!;
    let histories: Map<string, HistoryPoint[]>;
    try {
      histories = await fetchHistories(this.ctx.request, [...this.rows.keys()], range);
    } catch (error) {
      if (this.ctx.scope.disposed) return;
      replaceChildren(this.note, `Rates and sparklines are not available: ${errorText(error)}`);
      return;
    }
    if (this.ctx.scope.disposed) return;
    replaceChildren(this.note);
    for (const [queue, history] of histories) {
      const row = this.rows.get(queue);
      if (row === undefined) continue;
      const points = completePoints(history, range.stepSeconds);
      replaceChildren(row.rateIn, formatRate(recentRate(points, 'sent', range.stepSeconds)));
      replaceChildren(row.rateOut, formatRate(recentRate(points, 'acked', range.stepSeconds)));
      row.chart?.destroy();
      row.chart = sparkline(pointTimes(points), [
        { label: 'in', color: CHART_COLORS[0]!, values: points.map((p) => p.sent) },
        { label: 'out', color: CHART_COLORS[1]!, values: points.map((p) => p.acked) },
      ]);
      row.spark.title = 'Sent (blue) and acked (green) per minute, last hour';
      replaceChildren(row.spark, row.chart.element);
    }
  }

  private row(queue: OverviewQueue): Row {
    const cell = (className: string): HTMLElement => h('td', { class: className });
    const origin = this.originOf(queue.name);
    const row: Row = {
      queue,
      element: h('tr', { 'data-queue': queue.name }),
      ready: cell('num ready'),
      delayed: cell('num delayed'),
      leased: cell('num leased'),
      dead: cell('num dead'),
      age: cell('num age'),
      rateIn: cell('num rate-in'),
      rateOut: cell('num rate-out'),
      spark: cell('spark'),
    };
    row.element.append(
      h(
        'th',
        { scope: 'row' },
        h('a', { href: routeHash({ page: 'queue', queue: queue.name }) }, queue.name),
        origin === undefined ? null : h('span', { class: 'tag' }, `dead letters of ${origin}`),
      ),
      h('td', null, pausedBadge(queue.paused)),
      row.ready,
      row.delayed,
      row.leased,
      row.dead,
      row.age,
      row.rateIn,
      row.rateOut,
      row.spark,
    );
    for (const c of [row.rateIn, row.rateOut, row.spark]) c.textContent = '—';
    this.setCounts(row, queue.stats);
    this.rows.set(queue.name, row);
    return row;
  }

  private setCounts(row: Row, stats: LiveStats): void {
    row.queue.stats = stats;
    replaceChildren(row.ready, formatCount(stats.ready));
    replaceChildren(row.delayed, formatCount(stats.delayed));
    replaceChildren(row.leased, formatCount(stats.leased));
    replaceChildren(row.age, formatSeconds(stats.oldestReadyAgeSeconds));
  }

  /** The queue whose dead-letter queue `name` is, if any. */
  private originOf(name: string): string | undefined {
    for (const row of this.rows.values()) {
      if (row.queue.config.deadLetterQueue === name) return row.queue.name;
    }
    return undefined;
  }

  /** Dead: the total of each queue's dead-letter queue (0 until its first dead letter creates it). */
  private refreshDead(): void {
    for (const row of this.rows.values()) {
      const dlq = row.queue.config.deadLetterQueue;
      if (dlq === null) {
        replaceChildren(row.dead, '—');
        continue;
      }
      const dead = this.rows.get(dlq)?.queue.stats.total ?? 0;
      replaceChildren(
        row.dead,
        dead === 0
          ? '0'
          : h(
              'a',
              { href: routeHash({ page: 'messages', queue: dlq, filter: {} }) },
              formatCount(dead),
            ),
      );
    }
  }

  private watch(queues: readonly OverviewQueue[]): void {
    for (const queue of queues) {
      this.unwatch.push(
        this.ctx.live.watch(
          queue.name,
          (stats) => {
            const row = this.rows.get(queue.name);
            if (row === undefined) return;
            this.setCounts(row, stats);
            this.refreshDead();
          },
          (code, message) => {
            const row = this.rows.get(queue.name);
            if (row !== undefined && code !== 'QUEUE_NOT_FOUND')
              row.element.title = `${code}: ${message}`;
          },
        ),
      );
    }
  }

  private stopWatching(): void {
    for (const stop of this.unwatch.splice(0)) stop();
  }
}
