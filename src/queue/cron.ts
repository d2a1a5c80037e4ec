import { Cron } from 'croner';
import { badInput } from './errors.ts';
import type { CatchUp } from './types.ts';

/**
 * How late a tick may be and still count as on time, in ms: a tick due within this window
 * before the leader's pass fires whatever the schedule's catchUp says. Wide enough for a
 * leader failover (a standby takes over within a second or two) and a slow pass; ticks older
 * than this were missed while nothing ran, and catchUp decides their fate.
 */
export const ON_TIME_WINDOW_MS = 10_000;

/** Longest cron expression accepted. */
export const CRON_MAX_LENGTH = 256;
/** Longest time zone name accepted (IANA names are far shorter). */
export const TIMEZONE_MAX_LENGTH = 64;

/**
 * A parsed cron expression in a time zone, evaluated by croner (5 fields, or 6 with seconds
 * first; names and ranges as croner documents them). Time zones and DST are croner's: a
 * local time that does not exist on a spring-forward day and one that occurs twice on a
 * fall-back day each fire once.
 */
export class CronSchedule {
  private readonly job: Cron;

  /** Throws BAD_USER_INPUT for a malformed expression or an unknown time zone. */
  constructor(
    readonly cron: string,
    readonly timezone: string,
  ) {
    if (typeof cron !== 'string' || cron.trim().length === 0 || cron.length > CRON_MAX_LENGTH) {
      throw badInput(`cron must be 1 to ${CRON_MAX_LENGTH} characters`);
    }
    if (
      typeof timezone !== 'string' ||
      timezone.length === 0 ||
      timezone.length > TIMEZONE_MAX_LENGTH ||
      !isKnownTimeZone(timezone)
    ) {
      throw badInput(
        `timezone must be an IANA time zone such as "Europe/Berlin"; got "${timezone}"`,
      );
    }
    try {
      this.job = new Cron(cron, { timezone, mode: '5-or-6-parts' });
    } catch (error) {
      throw badInput(`cron "${cron}" is not a valid expression: ${(error as Error).message}`);
    }
  }

  /**
   * The first tick strictly after `after`, or null when the expression has none left (croner
   * gives up on a date that never comes, such as February 30th, by throwing or by null).
   */
  nextAfter(after: Date): Date | null {
    try {
      return this.job.nextRun(after);
    } catch {
      return null;
    }
  }

  /**
   * The ticks to fire now for a schedule whose first unfired tick is `dueAt`, and its next
   * tick after them. On-time ticks (due within {@link ON_TIME_WINDOW_MS} before `now`) all
   * fire; older ones were missed and follow `catchUp`: NONE skips them, LATEST fires the
   * latest of them when no on-time tick fires, ALL fires the latest `catchUpMax` of them.
   * Ticks come out oldest first. Enumerates at most `catchUpMax` missed ticks, however long
   * nothing ran.
   */
  dueTicks(params: { dueAt: Date; now: Date; catchUp: CatchUp; catchUpMax: number }): {
    ticks: Date[];
    next: Date | null;
  } {
    const { dueAt, now, catchUp, catchUpMax } = params;
    const windowStart = new Date(now.getTime() - ON_TIME_WINDOW_MS);
    const onTime: Date[] = [];
    let tick: Date | null =
      dueAt.getTime() >= windowStart.getTime()
        ? dueAt
        : this.nextAfter(new Date(windowStart.getTime() - 1));
    while (tick !== null && tick.getTime() <= now.getTime()) {
      if (tick.getTime() >= dueAt.getTime()) onTime.push(tick);
      tick = this.nextAfter(tick);
    }
    let missed: Date[] = [];
    if (dueAt.getTime() < windowStart.getTime() && catchUp !== 'NONE') {
      const wanted = catchUp === 'ALL' ? catchUpMax : onTime.length === 0 ? 1 : 0;
      if (wanted > 0) {
        missed = this.job
          .previousRuns(wanted, windowStart)
          .filter((t) => t.getTime() >= dueAt.getTime() && t.getTime() < windowStart.getTime())
          .reverse();
      }
    }
    return { ticks: [...missed, ...onTime], next: this.nextAfter(now) };
  }
}

/** Whether the runtime's time zone database knows `timezone`. */
function isKnownTimeZone(timezone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: timezone });
    return true;
  } catch {
    return false;
  }
}
