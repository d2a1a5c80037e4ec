import { tableHead } from '../data-table.ts';
import { h, replaceChildren } from '../element.ts';
import { actionButton } from '../action-button.ts';
import { formatCount, formatTime } from '../format.ts';
import type { Page, PageContext } from '../page-context.ts';
import { routeHash } from '../router.ts';
import { may } from '../viewer.ts';

interface ReplayJobRow {
  id: string;
  kind: string;
  queue: string;
  into: string;
  state: string;
  matched: number;
  replayed: number;
  dryRun: boolean;
  lastError: string | null;
  createdAt: string;
  finishedAt: string | null;
}

const JOB_FIELDS =
  'id kind queue into state matched replayed dryRun lastError createdAt finishedAt';

/** Queues asked for in one request (each `replayJobs` is a list of up to 100). */
const QUEUES_PER_REQUEST = 10;

/** How often the jobs are read again while one runs. */
const RUNNING_REFRESH_MS = 2_000;

/** How often they are read again while none runs (a new job may start). */
const IDLE_REFRESH_MS = 15_000;

/**
 * Replay and redrive jobs of every queue, newest first: what they move where, progress, and
 * cancel for a running one (for those who may send into its target).
 */
export const replayJobsPage: Page = async (ctx, container) => {
  const load = async (): Promise<ReplayJobRow[]> => {
    const names = (
      await ctx.request<{ queues: { name: string }[] }>('query Names { queues { name } }')
    ).queues.map((q) => q.name);
    const jobs: ReplayJobRow[] = [];
    for (let start = 0; start < names.length; start += QUEUES_PER_REQUEST) {
      const chunk = names.slice(start, start + QUEUES_PER_REQUEST);
      const variables = Object.fromEntries(chunk.map((name, i) => [`q${i}`, name]));
      const data = await ctx.request<Record<string, ReplayJobRow[]>>(
        `query Jobs(${chunk.map((_, i) => `$q${i}: String!`).join(', ')}) { ${chunk.map((_, i) => `j${i}: replayJobs(queue: $q${i}) { ${JOB_FIELDS} }`).join(' ')} }`,
        variables,
      );
      for (const list of Object.values(data)) jobs.push(...list);
    }
    return jobs.sort((a, b) => Number(b.id) - Number(a.id));
  };
  const draw = (jobs: readonly ReplayJobRow[]): void => {
    replaceChildren(
      container,
      h('h1', null, 'Replay jobs'),
      h(
        'p',
        { class: 'subtitle' },
        'Replays of archives and filtered redrives of dead letters, run by the leader in batches.',
      ),
      jobs.length === 0
        ? h('p', { class: 'empty' }, 'No replay or redrive jobs.')
        : h(
            'table',
            { class: 'replay-jobs' },
            tableHead([
              'Job',
              'Kind',
              'From',
              'Into',
              'State',
              'Progress #',
              'Started',
              'Finished',
              '',
            ]),
            h(
              'tbody',
              null,
              jobs.map((job) => jobRow(ctx, job, () => void refresh())),
            ),
          ),
    );
  };
  let running = false;
  let loadedAt = 0;
  const show = (jobs: readonly ReplayJobRow[]): void => {
    running = jobs.some((job) => job.state === 'RUNNING');
    loadedAt = Date.now();
    draw(jobs);
  };
  const refresh = async (): Promise<void> => {
    const jobs = await load().catch(() => undefined);
    if (jobs !== undefined && !ctx.scope.disposed) show(jobs);
  };
  show(await load());
  ctx.scope.every(RUNNING_REFRESH_MS, async () => {
    if (running || Date.now() - loadedAt >= IDLE_REFRESH_MS) await refresh();
  });
};

function jobRow(ctx: PageContext, job: ReplayJobRow, changed: () => void): HTMLElement {
  const cancel = async (): Promise<string> => {
    await ctx.request('mutation Cancel($id: ID!) { cancelReplay(id: $id) { state } }', {
      id: job.id,
    });
    return `Cancelled job ${job.id}`;
  };
  return h(
    'tr',
    { 'data-job': job.id },
    h('th', { scope: 'row' }, job.id),
    h('td', null, job.kind.toLowerCase(), job.dryRun ? ' (dry run)' : ''),
    h('td', null, h('a', { href: routeHash({ page: 'queue', queue: job.queue }) }, job.queue)),
    h('td', null, h('a', { href: routeHash({ page: 'queue', queue: job.into }) }, job.into)),
    h(
      'td',
      { title: job.lastError ?? '' },
      h('span', { class: `job-state ${job.state.toLowerCase()}` }, job.state),
    ),
    h('td', { class: 'num' }, `${formatCount(job.replayed)} of ${formatCount(job.matched)}`),
    h('td', null, formatTime(job.createdAt)),
    h('td', null, formatTime(job.finishedAt)),
    h(
      'td',
      { class: 'actions' },
      job.state === 'RUNNING' && may(ctx.viewer, 'send', job.into)
        ? actionButton(ctx, 'Cancel', cancel, { danger: true, changed })
        : null,
    ),
  );
}
