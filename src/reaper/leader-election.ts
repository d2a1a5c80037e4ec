import { EventEmitter } from 'node:events';
import pg from 'pg';
import type { Logger } from 'pino';
import { QueueMaintenance } from '../queue/index.ts';
import { PeriodicService } from './periodic-service.ts';

/** Advisory lock of the leader: namespace 'HLQU', key 1. */
const LEADER_LOCK = [1212961868, 1] as const;

/** Options for {@link LeaderElection}. */
export interface LeaderElectionOptions {
  /** For the lock's session: a direct connection, not a transaction-mode pooler. */
  connectionString: string;
  logger: Logger;
  /** How often a standby tries to take over, in ms. */
  intervalMs: number;
}

interface LeaderElectionEvents {
  leadership: [leader: boolean];
}

/**
 * Exactly one leader among the processes that run one: leadership is a session advisory
 * lock on a dedicated connection, so it is released the moment the leader's connection or
 * process dies, and a standby takes over at its next try (within intervalMs). stop() gives
 * leadership up by ending the session.
 */
export class LeaderElection extends PeriodicService {
  readonly events = new EventEmitter<LeaderElectionEvents>();
  private lockClient: pg.Client | undefined;
  private readonly options: LeaderElectionOptions;

  constructor(options: LeaderElectionOptions) {
    super(options.logger, options.intervalMs);
    this.options = options;
  }

  /** True while this process holds the leader lock. */
  get isLeader(): boolean {
    return this.lockClient !== undefined;
  }

  override async stop(): Promise<void> {
    await super.stop();
    await this.resign();
  }

  protected override async runOnce(): Promise<void> {
    await this.lead();
  }

  /** Holds or tries to take the leader lock; true when this process leads. */
  private async lead(): Promise<boolean> {
    if (this.lockClient !== undefined) return true;
    const client = new pg.Client({
      connectionString: this.options.connectionString,
      application_name: 'holdline-reaper',
    });
    client.on('error', () => this.lostLock(client));
    client.on('end', () => this.lostLock(client));
    try {
      await client.connect();
      const locked = await QueueMaintenance.tryLeaderLock(client, LEADER_LOCK);
      // A stop() that began meanwhile waits for this run: do not take leadership then.
      if (!locked || !this.isStarted) {
        client.removeAllListeners('end');
        await client.end();
        return false;
      }
    } catch (error) {
      client.removeAllListeners('end');
      await client.end().catch(() => undefined);
      throw error;
    }
    this.lockClient = client;
    this.logger.info('reaper leadership taken');
    this.events.emit('leadership', true);
    return true;
  }

  private lostLock(client: pg.Client): void {
    if (this.lockClient !== client) return;
    this.lockClient = undefined;
    client.end().catch(() => undefined);
    this.logger.warn('reaper leadership lost with its connection');
    this.events.emit('leadership', false);
  }

  private async resign(): Promise<void> {
    const client = this.lockClient;
    if (client === undefined) return;
    this.lockClient = undefined;
    client.removeAllListeners('end');
    // Ending the session releases the lock.
    await client.end().catch(() => undefined);
    this.events.emit('leadership', false);
  }
}
