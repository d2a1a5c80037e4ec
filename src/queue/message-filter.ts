import { badInput } from './errors.ts';
import type { MessageSelectionParams } from './sql/index.ts';
import type { MessageFilter, MessageState } from './types.ts';
import { KEY_MAX_LENGTH, containmentFilterJson, validateOptionalDate } from './validation.ts';

const MESSAGE_STATES: readonly MessageState[] = ['READY', 'DELAYED', 'LEASED'];

/**
 * A checked state and filter, as the selecting statements take them (MessageSelectionParams
 * in sql/message.ts): the state, both containment filters as JSON text, the keys and the
 * creation-time bounds, null where not given.
 */
export type MessageSelection = MessageSelectionParams;

/**
 * Checks a state and a filter of live messages: the state one of READY, DELAYED, LEASED;
 * payload and headers JSON objects; the keys 1 to 256 characters; the dates valid and
 * createdAfter not later than createdBefore. BAD_USER_INPUT, naming the part, otherwise.
 */
export function validateMessageSelection(
  state: MessageState | null | undefined,
  filter: MessageFilter | null | undefined,
): MessageSelection {
  if (state != null && !MESSAGE_STATES.includes(state)) {
    throw badInput(`state must be one of ${MESSAGE_STATES.join(', ')}`);
  }
  if (filter != null && (typeof filter !== 'object' || Array.isArray(filter))) {
    throw badInput(
      'filter must be an object of payload, headers, groupKey, dedupKey, createdAfter, createdBefore',
    );
  }
  const createdAfter = validateOptionalDate(filter?.createdAfter, 'filter.createdAfter');
  const createdBefore = validateOptionalDate(filter?.createdBefore, 'filter.createdBefore');
  if (
    createdAfter !== null &&
    createdBefore !== null &&
    createdAfter.getTime() > createdBefore.getTime()
  ) {
    throw badInput(
      `filter.createdAfter (${createdAfter.toISOString()}) must not be later than ` +
        `filter.createdBefore (${createdBefore.toISOString()})`,
    );
  }
  return [
    state ?? null,
    containmentFilterJson(filter?.payload, 'filter.payload'),
    containmentFilterJson(filter?.headers, 'filter.headers'),
    validateKey(filter?.groupKey, 'filter.groupKey'),
    validateKey(filter?.dedupKey, 'filter.dedupKey'),
    createdAfter,
    createdBefore,
  ];
}

function validateKey(value: unknown, what: string): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'string' || value.length === 0 || value.length > KEY_MAX_LENGTH) {
    throw badInput(`${what} must be 1 to ${KEY_MAX_LENGTH} characters`);
  }
  return value;
}
