/** How one ack fared: sent in a batch the service accepted, or the error that batch got. */
export type AckOutcome = { ok: true } | { ok: false; error: unknown };

/**
 * Coalesces acks made within `delayMs` of each other into one ackBatch call (one round trip
 * and one statement for many messages), flushing early when `maxBatch` are waiting. Acks
 * are idempotent and fenced, so batching changes no outcome, only the cost.
 */
export class AckBatcher {
  private pending: { receipt: string; resolve: (outcome: AckOutcome) => void }[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly inFlight = new Set<Promise<void>>();

  /**
   * @param sendBatch acks the receipts (1 to maxBatch of them) in one call.
   * @param delayMs how long the first ack of a batch waits for company.
   * @param maxBatch most receipts per call (the contract allows 1000).
   */
  constructor(
    private readonly sendBatch: (receipts: string[]) => Promise<unknown>,
    private readonly delayMs: number,
    private readonly maxBatch: number,
  ) {}

  /** Queues an ack; resolves (never rejects) once its batch has been answered. */
  add(receipt: string): Promise<AckOutcome> {
    return new Promise<AckOutcome>((resolve) => {
      this.pending.push({ receipt, resolve });
      if (this.pending.length >= this.maxBatch) this.flush();
      else this.timer ??= setTimeout(() => this.flush(), this.delayMs);
    });
  }

  /** Sends what is waiting now and waits for every batch in flight to be answered. */
  async drain(): Promise<void> {
    this.flush();
    await Promise.all(this.inFlight);
  }

  private flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    while (this.pending.length > 0) {
      const batch = this.pending.splice(0, this.maxBatch);
      const sent = this.sendBatch(batch.map((entry) => entry.receipt)).then(
        () => {
          for (const entry of batch) entry.resolve({ ok: true });
        },
        (error: unknown) => {
          for (const entry of batch) entry.resolve({ ok: false, error });
        },
      );
      this.inFlight.add(sent);
      void sent.finally(() => this.inFlight.delete(sent));
    }
  }
}
