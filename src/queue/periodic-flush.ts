/**
 * The lifecycle of an in-memory meter that writes what it counted every few seconds
 * (DequeueMeter, HistoryMeter): start() writes every `intervalMs` on a timer that does not
 * keep the process alive, stop() ends the timer and writes once more, flush() writes now.
 * Writes never overlap: each waits for the one before. Safe to stop twice.
 */
export abstract class PeriodicFlush {
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();

  protected constructor(private readonly intervalMs: number) {}

  /** Writes what is counted; a failure is the subclass's to report and to keep counts for. */
  protected abstract write(): Promise<void>;

  start(): void {
    if (this.timer !== undefined) return;
    this.timer = setInterval(() => void this.flush(), this.intervalMs);
    this.timer.unref();
  }

  /** Stops the timer and writes what is counted. Safe to call twice. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.flush();
  }

  /** Writes the counts so far, after any write in progress. */
  flush(): Promise<void> {
    this.flushing = this.flushing.then(() => this.write());
    return this.flushing;
  }
}
