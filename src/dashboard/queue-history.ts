import type { QueueHistoryPoint } from '../contract.ts';
import type { Request } from './graphql-api.ts';

/** One step of a queue's history, as the API's queueHistory returns it (times as text). */
export type HistoryPoint = Omit<QueueHistoryPoint, 'at'> & { at: string };

/** A span of history the charts show: its length and the width of one step, in seconds. */
export interface HistoryRange {
  label: string;
  seconds: number;
  stepSeconds: number;
}

/** The ranges the queue page offers: the last hour by minute, the last day by 5 minutes. */
export const HISTORY_RANGES: readonly HistoryRange[] = [
  { label: 'Last hour', seconds: 3_600, stepSeconds: 60 },
  { label: 'Last day', seconds: 86_400, stepSeconds: 300 },
];

/** Queues asked for in one request: each history is a list, and the API bounds a request's cost. */
const QUEUES_PER_REQUEST = 10;

const POINT_FIELDS = `at sent delivered acked nacked deadLettered leaseExpired depth oldestReadyAgeSeconds
  deliveryLatencyP50Seconds deliveryLatencyP95Seconds deliveryLatencyP99Seconds`;

/**
 * The history of each of `queues` over `range`, ending now, several queues per request (as
 * aliases). Errors as ApiError.
 */
export async function fetchHistories(
  request: Request,
  queues: readonly string[],
  range: HistoryRange,
): Promise<Map<string, HistoryPoint[]>> {
  const to = new Date();
  const from = new Date(to.getTime() - range.seconds * 1000);
  const histories = new Map<string, HistoryPoint[]>();
  for (let start = 0; start < queues.length; start += QUEUES_PER_REQUEST) {
    const chunk = queues.slice(start, start + QUEUES_PER_REQUEST);
    const variables: Record<string, unknown> = {
      from: from.toISOString(),
      to: to.toISOString(),
      step: range.stepSeconds,
    };
    const fields = chunk.map((queue, i) => {
      variables[`q${i}`] = queue;
      return `h${i}: queueHistory(queue: $q${i}, from: $from, to: $to, step: $step) { ${POINT_FIELDS} }`;
    });
    const declarations = chunk.map((_, i) => `$q${i}: String!`).join(', ');
    const data = await request<Record<string, HistoryPoint[]>>(
      `query History(${declarations}, $from: DateTime!, $to: DateTime!, $step: Int!) { ${fields.join(' ')} }`,
      variables,
    );
    chunk.forEach((queue, i) => histories.set(queue, data[`h${i}`] ?? []));
  }
  return histories;
}

/**
 * The points whose step has ended: the step under way has only part of its counts, and
 * would read as a drop at the end of every chart and rate.
 */
export function completePoints(
  points: readonly HistoryPoint[],
  stepSeconds: number,
  now = Date.now(),
): HistoryPoint[] {
  return points.filter((point) => Date.parse(point.at) + stepSeconds * 1000 <= now);
}

/** Seconds since the epoch of each point (the charts' time axis). */
export function pointTimes(points: readonly HistoryPoint[]): number[] {
  return points.map((point) => Date.parse(point.at) / 1000);
}

/**
 * Messages per second over the last `steps` complete steps of a history (sent: in, acked:
 * out); the step still under way is left out, as it would read low. Null when there is none.
 */
export function recentRate(
  points: readonly HistoryPoint[],
  field: 'sent' | 'acked',
  stepSeconds: number,
  steps = 5,
): number | null {
  const recent = completePoints(points, stepSeconds).slice(-steps);
  if (recent.length === 0) return null;
  return recent.reduce((sum, point) => sum + point[field], 0) / (recent.length * stepSeconds);
}
