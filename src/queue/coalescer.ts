/** Options of a {@link Coalescer}. */
export interface CoalescerOptions<Item, Outcome> {
  /**
   * Runs one batch of items that share a key, in one statement; resolves with one settled
   * outcome per item, in the items' order (an item may fail alone). A rejection fails every
   * item of the batch with it.
   */
  run: (key: string, items: readonly Item[]) => Promise<readonly PromiseSettledResult<Outcome>[]>;
  /** Most items in one batch. */
  maxBatch: number;
  /** Most batches of one key in flight at once; more items wait for one to finish. */
  lanes: number;
  /**
   * Items with the same conflict key never share a batch (e.g. two acks of one message,
   * whose single result row could not say which of them it answers).
   */
  conflictKey?: (item: Item) => string;
}

interface Waiter<Item, Outcome> {
  item: Item;
  resolve: (outcome: Outcome) => void;
  reject: (error: unknown) => void;
}

interface Group<Item, Outcome> {
  pending: Waiter<Item, Outcome>[];
  inFlight: number;
}

/**
 * Group commit for single operations: calls that arrive while `lanes` statements of their
 * key are already in flight wait, and go together in the next statement, each caller still
 * answered for its own item. A call that finds a free lane runs at once, alone, so a lone
 * caller pays no delay; under concurrency the statements grow with the arrival rate and
 * the round trips, writes and commits per operation fall (profiled: a round trip to
 * PostgreSQL, its socket write above all, is most of the service's CPU for a single ack or
 * send). In memory, per process; holds nothing when idle.
 */
export class Coalescer<Item, Outcome> {
  private readonly groups = new Map<string, Group<Item, Outcome>>();

  constructor(private readonly options: CoalescerOptions<Item, Outcome>) {}

  /** Runs `item` in a batch of its key's items; resolves with its own outcome. */
  submit(key: string, item: Item): Promise<Outcome> {
    let group = this.groups.get(key);
    if (group === undefined) {
      group = { pending: [], inFlight: 0 };
      this.groups.set(key, group);
    }
    const promise = new Promise<Outcome>((resolve, reject) => {
      group.pending.push({ item, resolve, reject });
    });
    if (group.inFlight < this.options.lanes) this.flush(key, group);
    return promise;
  }

  private flush(key: string, group: Group<Item, Outcome>): void {
    const batch = this.take(group);
    group.inFlight++;
    let settled: Promise<void>;
    try {
      settled = this.options
        .run(
          key,
          batch.map((w) => w.item),
        )
        .then(
          (outcomes) =>
            batch.forEach((w, i) => {
              const outcome = outcomes[i]!;
              if (outcome.status === 'fulfilled') w.resolve(outcome.value);
              else w.reject(outcome.reason);
            }),
          (error: unknown) => batch.forEach((w) => w.reject(error)),
        );
    } catch (error) {
      batch.forEach((w) => w.reject(error));
      settled = Promise.resolve();
    }
    void settled.finally(() => {
      group.inFlight--;
      if (group.pending.length > 0) this.flush(key, group);
      else if (group.inFlight === 0) this.groups.delete(key);
    });
  }

  /** The next batch: pending items in arrival order, none sharing a conflict key. */
  private take(group: Group<Item, Outcome>): Waiter<Item, Outcome>[] {
    const { maxBatch, conflictKey } = this.options;
    if (conflictKey === undefined) return group.pending.splice(0, maxBatch);
    const batch: Waiter<Item, Outcome>[] = [];
    const left: Waiter<Item, Outcome>[] = [];
    const taken = new Set<string>();
    for (const waiter of group.pending) {
      const conflict = conflictKey(waiter.item);
      if (batch.length < maxBatch && !taken.has(conflict)) {
        taken.add(conflict);
        batch.push(waiter);
      } else {
        left.push(waiter);
      }
    }
    group.pending = left;
    return batch;
  }
}
