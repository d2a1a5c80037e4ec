/**
 * What a page holds while it is shown: timers, subscriptions, listeners. Everything
 * registered here ends when the page is left, so a page that is gone never polls, never
 * keeps a subscription open and never writes into the document.
 */
export class PageScope {
  private readonly cleanups: (() => void)[] = [];
  private ended = false;

  /** True once the page was left: late answers are dropped. */
  get disposed(): boolean {
    return this.ended;
  }

  /** Runs `cleanup` when the page is left (at once if it already was). */
  onDispose(cleanup: () => void): void {
    if (this.ended) cleanup();
    else this.cleanups.push(cleanup);
  }

  /**
   * Runs `task` every `intervalMs`, each run starting after the previous one finished (a slow
   * service gets no pile-up of requests), until the page is left.
   */
  every(intervalMs: number, task: () => Promise<void>): void {
    let timer: number | undefined;
    const run = async (): Promise<void> => {
      try {
        await task();
      } finally {
        if (!this.ended) timer = window.setTimeout(() => void run(), intervalMs);
      }
    };
    timer = window.setTimeout(() => void run(), intervalMs);
    this.onDispose(() => window.clearTimeout(timer));
  }

  /**
   * Draws what `load` reads, then reads and draws again every `intervalMs` until the page is
   * left; a refresh that fails keeps the last drawing (the next one tries again). The first
   * load's error is thrown (the page shows it). Returns a refresh to call after an action.
   */
  async drawEvery<T>(
    intervalMs: number,
    load: () => Promise<T>,
    draw: (value: T) => void,
  ): Promise<() => Promise<void>> {
    const refresh = async (): Promise<void> => {
      const value = await load().catch(() => undefined);
      if (value !== undefined && !this.ended) draw(value);
    };
    const first = await load();
    if (!this.ended) draw(first);
    this.every(intervalMs, refresh);
    return refresh;
  }

  /** Ends the page: runs every cleanup once. */
  dispose(): void {
    if (this.ended) return;
    this.ended = true;
    for (const cleanup of this.cleanups.splice(0).reverse()) cleanup();
  }
}
