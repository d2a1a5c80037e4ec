import { EventEmitter } from 'node:events';
import pg from 'pg';
import type { Logger } from 'pino';
import { CONNECTION_TIMEOUT_MS_DEFAULT } from './pool.ts';

/** Options for {@link Listener}. */
export interface ListenerOptions {
  /** A direct connection (not through a transaction-mode pooler: LISTEN is session state). */
  connectionString: string;
  /** Channel to LISTEN on. */
  channel: string;
  logger: Logger;
  /** First reconnect delay; doubles up to {@link RECONNECT_MAX_DELAY_MS}. Default 100 ms. */
  reconnectInitialDelayMs?: number;
}

export const RECONNECT_INITIAL_DELAY_MS_DEFAULT = 100;
export const RECONNECT_MAX_DELAY_MS = 5_000;

interface ListenerEvents {
  notification: [payload: string];
  /** The connection is (re)established and listening; anything sent meanwhile was missed. */
  connected: [pid: number];
  disconnected: [];
}

/**
 * One dedicated LISTEN connection per process, reconnecting on its own with capped
 * exponential backoff. After every (re)connect it emits `connected`, so users re-check
 * what they may have missed while it was down: NOTIFY is a hint, never the only signal.
 * Lifecycle: start() once, stop() any number of times.
 */
export class Listener extends EventEmitter<ListenerEvents> {
  private client: pg.Client | undefined;
  private stopped = false;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private readonly initialDelayMs: number;
  private delayMs: number;
  private backendPid = 0;

  constructor(private readonly options: ListenerOptions) {
    super();
    this.initialDelayMs = options.reconnectInitialDelayMs ?? RECONNECT_INITIAL_DELAY_MS_DEFAULT;
    this.delayMs = this.initialDelayMs;
  }

  /** Backend pid of the live connection, or undefined while disconnected. */
  get pid(): number | undefined {
    return this.client === undefined ? undefined : this.backendPid;
  }

  /** True while connected and listening. */
  get connected(): boolean {
    return this.client !== undefined;
  }

  /** Connects and listens; rejects if the first connection fails. */
  async start(): Promise<void> {
    this.stopped = false;
    await this.connect();
  }

  /** Closes the connection and stops reconnecting. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    const client = this.client;
    this.client = undefined;
    if (client !== undefined) await client.end().catch(() => undefined);
  }

  /**
   * Runs a statement on the listening connection, whose pid identifies this process's
   * waiting consumers. Rejects while disconnected.
   */
  async query(text: string, values: unknown[]): Promise<pg.QueryResult> {
    const client = this.client;
    if (client === undefined) throw new Error('listener is not connected');
    return client.query(text, values);
  }

  private async connect(): Promise<void> {
    const client = new pg.Client({
      connectionString: this.options.connectionString,
      application_name: 'holdline-listener',
      // A host that does not answer fails this attempt (and schedules the next) instead of
      // leaving the listener connecting for the OS's TCP timeout.
      connectionTimeoutMillis: CONNECTION_TIMEOUT_MS_DEFAULT,
    });
    client.on('notification', (message) => {
      if (message.channel === this.options.channel)
        this.emit('notification', message.payload ?? '');
    });
    client.on('error', (error) => this.lost(client, error));
    client.on('end', () => this.lost(client, undefined));
    try {
      await client.connect();
      await client.query(`LISTEN ${client.escapeIdentifier(this.options.channel)}`);
      const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      this.backendPid = rows[0]?.pid ?? 0;
    } catch (error) {
      client.removeAllListeners('end');
      await client.end().catch(() => undefined);
      throw error;
    }
    if (this.stopped) {
      await client.end().catch(() => undefined);
      return;
    }
    this.client = client;
    this.delayMs = this.initialDelayMs;
    this.options.logger.info({ pid: this.backendPid }, 'listener connected');
    this.emit('connected', this.backendPid);
  }

  private lost(client: pg.Client, error: Error | undefined): void {
    if (this.client !== client) return;
    this.client = undefined;
    client.removeAllListeners('end');
    client.end().catch(() => undefined);
    if (this.stopped) return;
    this.options.logger.warn({ err: error }, 'listener connection lost');
    this.emit('disconnected');
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    const delay = this.delayMs * (0.5 + Math.random() / 2);
    this.delayMs = Math.min(this.delayMs * 2, RECONNECT_MAX_DELAY_MS);
    this.reconnectTimer = setTimeout(() => {
      this.connect().catch((error: unknown) => {
        this.options.logger.warn({ err: error }, 'listener reconnect failed');
        if (!this.stopped) this.scheduleReconnect();
      });
    }, delay);
  }
}
