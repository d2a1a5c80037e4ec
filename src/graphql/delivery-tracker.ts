import { EventEmitter } from 'node:events';

interface DeliveryTrackerEvents {
  settled: [receipt: string];
}

/**
 * In-process news of deliveries that are no longer outstanding: acked, nacked, or found
 * with a lost lease through this service instance. `deliveries` subscriptions listen, so a
 * subscriber with `prefetch` unacked deliveries gets its next one within milliseconds of an
 * ack made here. An ack made on another instance is not seen here: subscriptions fall back
 * to checking their receipts' messages every poll interval.
 *
 * One per GraphQL handler (created by createGraphQLHandler), never at module scope.
 */
export class DeliveryTracker {
  private readonly events = new EventEmitter<DeliveryTrackerEvents>();

  constructor() {
    // Every open `deliveries` subscription listens; hundreds of them are expected.
    this.events.setMaxListeners(0);
  }

  /** Reports that these receipts' deliveries are finished, whatever the outcome. */
  settle(receipts: Iterable<string>): void {
    for (const receipt of receipts) this.events.emit('settled', receipt);
  }

  /** Calls `listener` with each settled receipt until the returned function is called. */
  onSettled(listener: (receipt: string) => void): () => void {
    this.events.on('settled', listener);
    return () => this.events.off('settled', listener);
  }
}
