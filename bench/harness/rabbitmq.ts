/**
 * RabbitMQ as a push-delivery peer (bench/push.ts), driven with amqplib the way its
 * documentation recommends for messages that must not be lost: a durable queue, persistent
 * messages published on confirm channels (a send counts once the broker confirmed it, which
 * for a persistent message on a durable queue means it is on disk), a consumer with manual
 * acks and a prefetch window, one ack per delivery.
 */
import { randomBytes } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { connect } from 'amqplib';
import type { ChannelModel, ConfirmChannel } from 'amqplib';
import { sleep } from './clock.ts';
import type { TimedProducer } from './paced-producer.ts';

/** The broker the benches use when RABBITMQ_URL is not set. */
export const RABBITMQ_URL_DEFAULT = 'amqp://guest:guest@127.0.0.1:5672';

/**
 * How long a connection attempt may take: a refused port fails at once, but a socket that
 * accepts and never speaks AMQP would otherwise hang the bench.
 */
const CONNECT_TIMEOUT_MS = 5_000;

/** RABBITMQ_URL, or {@link RABBITMQ_URL_DEFAULT}. */
export function rabbitMqUrl(): string {
  const given = process.env.RABBITMQ_URL;
  return given === undefined || given === '' ? RABBITMQ_URL_DEFAULT : given;
}

/** The broker's address without credentials, for notes and tables. */
export function rabbitMqAddress(url: string): string {
  const parsed = new URL(url);
  return `${parsed.hostname}:${parsed.port === '' ? '5672' : parsed.port}`;
}

/** Connects to `url`, or rejects after {@link CONNECT_TIMEOUT_MS}. */
export async function connectRabbitMq(url: string): Promise<ChannelModel> {
  const connecting = connect(url, { timeout: CONNECT_TIMEOUT_MS });
  const timedOut = Symbol('timed out');
  const first = await Promise.race([connecting, sleep(CONNECT_TIMEOUT_MS).then(() => timedOut)]);
  if (first === timedOut) {
    // A connection that completes after all is closed, not leaked.
    connecting.then((late) => late.close()).catch(() => undefined);
    throw new Error(`no answer within ${CONNECT_TIMEOUT_MS} ms`);
  }
  return first as ChannelModel;
}

/** A broker that answered: its version, and the durable queue made for this run. */
export interface RabbitMqPeer {
  url: string;
  version: string;
  /** holdline-bench-push-<random hex>: this run's own, so parallel runs do not share one. */
  queue: string;
  /** Empties the queue between runs. */
  purge(): Promise<void>;
  /** Deletes the queue; call once at the end. */
  close(): Promise<void>;
}

/**
 * Connects to the broker at `url` and declares a durable queue of this run's own. Resolves
 * with undefined and the reason when the broker does not answer, so the caller can skip it
 * with a note rather than fail.
 */
export async function openRabbitMq(
  url: string,
): Promise<{ peer: RabbitMqPeer } | { peer: undefined; reason: string }> {
  let admin: ChannelModel;
  try {
    admin = await connectRabbitMq(url);
  } catch (error) {
    return { peer: undefined, reason: error instanceof Error ? error.message : String(error) };
  }
  const channel = await admin.createChannel();
  const queue = `holdline-bench-push-${randomBytes(4).toString('hex')}`;
  await channel.assertQueue(queue, { durable: true });
  const version = admin.connection.serverProperties.version ?? 'unknown';
  return {
    peer: {
      url,
      version,
      queue,
      purge: async () => {
        await channel.purgeQueue(queue);
      },
      close: async () => {
        await channel.deleteQueue(queue);
        await admin.close();
      },
    },
  };
}

/**
 * A paced producer's send for RabbitMQ: each message is published persistent to the queue
 * on one of `channels` confirm channels (round robin) and counts as sent when the broker's
 * confirm for it arrives, the broker's equivalent of a COMMIT having returned. Several
 * channels and several publishes in flight on each, so that confirms, which the broker
 * batches with its disk writes, never hold the producer below its rate.
 */
export async function rabbitMqProducer(
  peer: RabbitMqPeer,
  channels: number,
): Promise<TimedProducer> {
  const connection = await connectRabbitMq(peer.url);
  const confirmChannels: ConfirmChannel[] = [];
  for (let i = 0; i < channels; i++) confirmChannels.push(await connection.createConfirmChannel());
  let next = 0;
  return {
    send: (payload) =>
      new Promise<void>((resolve, reject) => {
        const channel = confirmChannels[next++ % confirmChannels.length]!;
        channel.sendToQueue(
          peer.queue,
          Buffer.from(JSON.stringify(payload)),
          { persistent: true, contentType: 'application/json' },
          (error: unknown) => {
            if (error === null || error === undefined) resolve();
            // amqplib passes an Error when the broker nacks the publish.
            else reject(error instanceof Error ? error : new Error('RabbitMQ nacked a publish'));
          },
        );
      }),
    close: () => connection.close(),
  };
}

/** A running RabbitMQ consumer. */
export interface RabbitMqConsumer {
  /** Cancels the consumer and closes its connection; rethrows a failure it had. */
  stop(): Promise<void>;
}

/**
 * Consumes the peer's queue on a connection of its own: manual acks, at most `prefetch`
 * unacked deliveries (basic.qos), `onPayload` called with each message's parsed JSON, then
 * one basic.ack for that delivery.
 */
export async function startRabbitMqConsumer(
  peer: RabbitMqPeer,
  prefetch: number,
  onPayload: (payload: unknown) => void,
): Promise<RabbitMqConsumer> {
  const connection = await connectRabbitMq(peer.url);
  let failure: { error: unknown } | undefined;
  const channel = await connection.createChannel();
  channel.on('error', (error: unknown) => {
    failure ??= { error };
  });
  await channel.prefetch(prefetch);
  const { consumerTag } = await channel.consume(
    peer.queue,
    (message) => {
      // null: the broker cancelled the consumer (queue deleted).
      if (message === null) {
        failure ??= { error: new Error('RabbitMQ cancelled the consumer') };
        return;
      }
      onPayload(JSON.parse(message.content.toString('utf8')));
      channel.ack(message);
    },
    { noAck: false },
  );
  return {
    async stop() {
      await channel.cancel(consumerTag);
      await connection.close();
      if (failure !== undefined) throw failure.error;
    },
  };
}

/**
 * The pid of a RabbitMQ broker on this machine (the Erlang VM, `beam.smp`), for its CPU
 * time; undefined where there is none to see (another host, another pid namespace, not
 * Linux). The first found when several run.
 */
export async function rabbitMqBrokerPid(): Promise<number | undefined> {
  let entries: string[];
  try {
    entries = await readdir('/proc');
  } catch {
    return undefined;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const comm = (await readFile(`/proc/${entry}/comm`, 'utf8')).trim();
      if (comm === 'beam.smp') return Number(entry);
    } catch {
      // Gone meanwhile, or not ours to read.
    }
  }
  return undefined;
}
