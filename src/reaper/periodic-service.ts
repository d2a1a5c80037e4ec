import type { Logger } from 'pino';
import type { QueueMaintenance } from '../queue/index.ts';

/** What every maintenance service of the leader is built with. */
export interface MaintenanceServiceOptions {
  maintenance: QueueMaintenance;
  logger: Logger;
  /** Pause between runs, in ms. */
  intervalMs: number;
  /** Whether this process leads now: only the leader's services do their work. */
  isLeader: () => boolean;
}

/**
 * The one lifecycle of the maintainer's services (River's Start/Stop): start() begins a loop
 * that runs `runOnce` every `intervalMs` (the first run at once), stop() ends it and waits
 * for a run in progress. Both are safe to call any number of times; start() after stop()
 * starts again. A failed run is logged and the loop carries on: an error never turns into
 * "nothing to do". runNow() asks for a run as soon as the one in progress (if any) is done.
 */
export abstract class PeriodicService {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = true;

  /**
   * @param logger the service's logger (a child per component)
   * @param intervalMs pause between the end of one run and the start of the next
   * @param failureMessage the log message of a failed run
   */
  protected constructor(
    protected readonly logger: Logger,
    private readonly intervalMs: number,
    private readonly failureMessage = 'reaper pass failed',
  ) {}

  /** True between start() and stop(). */
  protected get isStarted(): boolean {
    return !this.stopped;
  }

  /** One run; errors are caught by the loop. */
  protected abstract runOnce(): Promise<void>;

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.schedule(0);
  }

  /** Ends the loop and waits for a run in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  /** Runs again without waiting for the interval (once a run in progress ends). */
  runNow(): void {
    if (this.stopped || this.running !== undefined) return;
    clearTimeout(this.timer);
    this.schedule(0);
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.runOnce()
        .catch((error: unknown) => this.logger.error({ err: error }, this.failureMessage))
        .finally(() => {
          this.running = undefined;
          this.schedule(this.intervalMs);
        });
    }, delayMs);
  }
}
