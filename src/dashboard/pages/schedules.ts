import { confirmAction } from '../confirm-dialog.ts';
import { tableHead } from '../data-table.ts';
import { h, replaceChildren } from '../element.ts';
import { errorText } from '../error-box.ts';
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
  const refresh = async (): Promise<void> => {
    const schedules = await load().catch(() => undefined);
    if (schedules !== undefined && !ctx.scope.disposed) draw(schedules);
  };
  draw(await load());
  ctx.scope.every(REFRESH_MS, refresh);
};

function scheduleRow(ctx: PageContext, s: ScheduleRow, changed: () => void): HTMLElement {
  const act = async (label: string, mutation: string): Promise<void> => {
    try {
      await ctx.request(mutation, { name: s.name });
      ctx.notice(`${label}: ${s.name}`);
      changed();
    } catch (error) {
      ctx.notice(`${label} failed: ${errorText(error)}`);
    }
  };
  const remove = async (): Promise<void> => {
    const confirmed = await confirmAction({
      title: `Delete schedule ${s.name}`,
      text: `Delete the schedule ${s.name} (${s.cron}, into ${s.queue})? Messages it sent stay.`,
      confirmLabel: 'Delete',
    });
    if (confirmed)
      await act('Deleted', 'mutation Delete($name: String!) { deleteSchedule(name: $name) }');
  };
  return h(
    'tr',
    { 'data-schedule': s.name },
    h('th', { scope: 'row' }, s.name),
    h('td', null, h('code', null, s.cron), ` (${s.timezone})`),
    h('td', null, h('a', { href: routeHash({ page: 'queue', queue: s.queue }) }, s.queue)),
    h(
      'td',
      null,
      h(
        'span',
        { class: `state ${s.paused ? 'paused' : 'active'}` },
        s.paused ? 'paused' : 'active',
      ),
    ),
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
              ? h(
                  'button',
                  {
                    type: 'button',
                    onclick: () =>
                      void act(
                        'Resumed',
                        'mutation Resume($name: String!) { resumeSchedule(name: $name) { paused } }',
                      ),
                  },
                  'Resume',
                )
              : h(
                  'button',
                  {
                    type: 'button',
                    onclick: () =>
                      void act(
                        'Paused',
                        'mutation Pause($name: String!) { pauseSchedule(name: $name) { paused } }',
                      ),
                  },
                  'Pause',
                ),
            h(
              'button',
              { type: 'button', class: 'danger', onclick: () => void remove() },
              'Delete…',
            ),
          ]
        : null,
    ),
  );
}
