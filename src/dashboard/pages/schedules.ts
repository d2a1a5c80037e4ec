import { confirmAction } from '../confirm-dialog.ts';
import { tableHead } from '../data-table.ts';
import { h, replaceChildren } from '../element.ts';
import { actionButton, pausedBadge } from '../action-button.ts';
import { formatTime, jsonPreview } from '../format.ts';
import type { Page, PageContext } from '../page-context.ts';
import { routeHash } from '../router.ts';
import { may } from '../viewer.ts';

interface ScheduleRow {
  name: string;
  cron: string;
  timezone: string;
  queue: string;
  payload: unknown;
  catchUp: string;
  paused: boolean;
  nextTickAt: string;
  lastTickAt: string | null;
  lastMessageId: string | null;
}

const SCHEDULES_QUERY = `query Schedules {
  schedules { name cron timezone queue payload catchUp paused nextTickAt lastTickAt lastMessageId }
}`;

/** How often the list is read again (ticks move on). */
const REFRESH_MS = 5_000;

/** Cron schedules: when each fires next and last, into which queue; pause, resume and delete. */
export const schedulesPage: Page = async (ctx, container) => {
  let refresh = (): Promise<void> => Promise.resolve();
  const load = async (): Promise<ScheduleRow[]> =>
    (await ctx.request<{ schedules: ScheduleRow[] }>(SCHEDULES_QUERY)).schedules;
  const draw = (schedules: readonly ScheduleRow[]): void => {
    replaceChildren(
      container,
      h('h1', null, 'Schedules'),
      schedules.length === 0
        ? h('p', { class: 'empty' }, 'No schedules. Create one with the createSchedule mutation.')
        : h(
            'table',
            { class: 'schedules' },
            tableHead(['Name', 'Cron', 'Queue', 'State', 'Next tick', 'Last tick', 'Payload', '']),
            h(
              'tbody',
              null,
              schedules.map((s) => scheduleRow(ctx, s, () => void refresh())),
            ),
          ),
    );
  };
  refresh = await ctx.scope.drawEvery(REFRESH_MS, load, draw);
};

function scheduleRow(ctx: PageContext, s: ScheduleRow, changed: () => void): HTMLElement {
  const mutate = (done: string, mutation: string) => async (): Promise<string> => {
    await ctx.request(mutation, { name: s.name });
    return `${done}: ${s.name}`;
  };
  const remove = async (): Promise<string | undefined> => {
    const confirmed = await confirmAction({
      title: `Delete schedule ${s.name}`,
      text: `Delete the schedule ${s.name} (${s.cron}, into ${s.queue})? Messages it sent stay.`,
      confirmLabel: 'Delete',
    });
    if (!confirmed) return undefined;
    return mutate('Deleted', 'mutation Delete($name: String!) { deleteSchedule(name: $name) }')();
  };
  return h(
    'tr',
    { 'data-schedule': s.name },
    h('th', { scope: 'row' }, s.name),
    h('td', null, h('code', null, s.cron), ` (${s.timezone})`),
    h('td', null, h('a', { href: routeHash({ page: 'queue', queue: s.queue }) }, s.queue)),
    h('td', null, pausedBadge(s.paused)),
    h('td', null, formatTime(s.nextTickAt)),
    h(
      'td',
      null,
      formatTime(s.lastTickAt),
      s.lastMessageId === null
        ? null
        : [
            ' → ',
            h(
              'a',
              { href: routeHash({ page: 'message', id: s.lastMessageId }) },
              `#${s.lastMessageId}`,
            ),
          ],
    ),
    h('td', { class: 'payload' }, jsonPreview(s.payload, 60)),
    h(
      'td',
      { class: 'actions' },
      may(ctx.viewer, 'admin', s.queue)
        ? [
            s.paused
              ? actionButton(
                  ctx,
                  'Resume',
                  mutate(
                    'Resumed',
                    'mutation Resume($name: String!) { resumeSchedule(name: $name) { paused } }',
                  ),
                  { changed },
                )
              : actionButton(
                  ctx,
                  'Pause',
                  mutate(
                    'Paused',
                    'mutation Pause($name: String!) { pauseSchedule(name: $name) { paused } }',
                  ),
                  { changed },
                ),
            actionButton(ctx, 'Delete…', remove, { danger: true, changed }),
          ]
        : null,
    ),
  );
}
