import { tableHead } from '../data-table.ts';
import { h, replaceChildren } from '../element.ts';
import { formatCount, formatSeconds } from '../format.ts';
import type { Page } from '../page-context.ts';
import { routeHash } from '../router.ts';

interface QueueWithStats {
  name: string;
  config: { deadLetterQueue: string | null };
  stats: { total: number; oldestReadyAgeSeconds: number | null };
}

const DEAD_LETTERS_QUERY = `query DeadLetters {
  queues { name config { deadLetterQueue } stats { total oldestReadyAgeSeconds } }
}`;

/** How often the counts are read again. */
const REFRESH_MS = 5_000;

/**
 * Dead letters: every dead-letter queue with the queues that die into it, how many dead
 * letters it holds and for how long the oldest has waited, each linking to its browser
 * (last errors, attempts, filtered redrive).
 */
export const deadLettersPage: Page = async (ctx, container) => {
  const draw = (queues: readonly QueueWithStats[]): void => {
    const byName = new Map(queues.map((q) => [q.name, q]));
    const origins = new Map<string, string[]>();
    for (const q of queues) {
      const dlq = q.config.deadLetterQueue;
      if (dlq !== null) origins.set(dlq, [...(origins.get(dlq) ?? []), q.name]);
    }
    const rows = [...origins].sort(([a], [b]) => a.localeCompare(b));
    replaceChildren(
      container,
      h('h1', null, 'Dead letters'),
      h(
        'p',
        { class: 'subtitle' },
        'Messages that used all their attempts. Open a dead-letter queue to read last errors and redrive what a filter matches.',
      ),
      rows.length === 0
        ? h('p', { class: 'empty' }, 'No queue has a dead-letter queue.')
        : h(
            'table',
            { class: 'dead-letters' },
            tableHead(['Dead-letter queue', 'From', 'Dead letters #', 'Oldest #']),
            h(
              'tbody',
              null,
              rows.map(([dlq, from]) => {
                const stats = byName.get(dlq)?.stats;
                return h(
                  'tr',
                  { 'data-queue': dlq },
                  h(
                    'th',
                    { scope: 'row' },
                    h('a', { href: routeHash({ page: 'messages', queue: dlq, filter: {} }) }, dlq),
                  ),
                  h('td', null, from.join(', ')),
                  h('td', { class: 'num' }, formatCount(stats?.total ?? 0)),
                  h('td', { class: 'num' }, formatSeconds(stats?.oldestReadyAgeSeconds)),
                );
              }),
            ),
          ),
    );
  };
  const load = async (): Promise<QueueWithStats[]> =>
    (await ctx.request<{ queues: QueueWithStats[] }>(DEAD_LETTERS_QUERY)).queues;
  await ctx.scope.drawEvery(REFRESH_MS, load, draw);
};
