import type { MessageFilterParams } from './router.ts';

/** The API's MessageFilter: JSON containment on payload and headers, keys, a creation window. */
export interface MessageFilter {
  payload?: Record<string, unknown>;
  headers?: Record<string, unknown>;
  groupKey?: string;
  dedupKey?: string;
  createdAfter?: string;
  createdBefore?: string;
}

/** A filter as the API takes it: the state apart (an argument of its own), the rest as MessageFilter. */
export interface ApiFilter {
  state: string | null;
  filter: MessageFilter | null;
}

/** A filter field the operator typed that cannot be sent, and why. */
export class FilterInputError extends Error {
  override name = 'FilterInputError';
}

/**
 * Reads the browser's filter fields into the API's arguments: JSON fields must be objects
 * (containment, PostgreSQL's @>), times are the browser's local time. Throws
 * {@link FilterInputError} naming the field that is wrong; nothing is sent then.
 */
export function toApiFilter(params: MessageFilterParams): ApiFilter {
  const filter: MessageFilter = {};
  for (const field of ['payload', 'headers'] as const) {
    const text = params[field];
    if (text === undefined) continue;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw new FilterInputError(`${field}: not JSON (write an object, e.g. {"region": "eu"})`);
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw new FilterInputError(`${field}: must be a JSON object, e.g. {"region": "eu"}`);
    }
    filter[field] = value as Record<string, unknown>;
  }
  if (params.groupKey !== undefined) filter.groupKey = params.groupKey;
  if (params.dedupKey !== undefined) filter.dedupKey = params.dedupKey;
  for (const field of ['createdAfter', 'createdBefore'] as const) {
    const text = params[field];
    if (text === undefined) continue;
    const time = new Date(text);
    if (Number.isNaN(time.getTime())) throw new FilterInputError(`${field}: not a date and time`);
    filter[field] = time.toISOString();
  }
  return {
    state: params.state ?? null,
    filter: Object.keys(filter).length === 0 ? null : filter,
  };
}
