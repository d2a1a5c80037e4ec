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

  /** Ends the page: runs every cleanup once. */
  dispose(): void {
    if (this.ended) return;
    this.ended = true;
    for (const cleanup of this.cleanups.splice(0).reverse()) cleanup();
  }
}
