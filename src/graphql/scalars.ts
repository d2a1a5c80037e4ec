import { GraphQLScalarType, Kind, valueFromASTUntyped } from 'graphql';
import type { ValueNode } from 'graphql';
import { lastTwoMemo } from '../last-two-memo.ts';
import { badUserInput } from './errors.ts';

/**
 * `JSON`: any JSON value, passed through as parsed. Literals in a query are read as JSON
 * (objects, lists, strings, numbers, booleans, null; variables inside are substituted).
 * Whether a value is acceptable (a payload must not be null, headers must be an object) is
 * the engine's call, so the rules live in one place.
 */
export const JSONScalar = new GraphQLScalarType({
  name: 'JSON',
  description: 'Any JSON value.',
  serialize: (value) => value,
  parseValue: (value) => value,
  parseLiteral: (node: ValueNode, variables) => valueFromASTUntyped(node, variables),
});

/** RFC 3339 date-time with a time zone (Z or ±hh:mm), fractions of a second optional. */
const DATE_TIME_PATTERN =
  /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/;

function parseDateTime(value: unknown): Date {
  if (typeof value !== 'string' || !DATE_TIME_PATTERN.test(value)) {
    throw badUserInput(
      'DateTime must be an RFC 3339 date-time with a time zone, e.g. "2030-01-01T12:00:00Z"',
    );
  }
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) throw badUserInput(`DateTime "${value}" is not a real date`);
  return date;
}

/**
 * Date#toISOString with the last two instants remembered. A receive's deliveries share one
 * lease expiry and, sent in a batch, one creation time (and run time): without the memo a
 * receive of 1,000 formatted 3,000 dates, about 1.5 µs of the service's CPU per delivery
 * (docs/performance.md). The text is a function of the instant alone.
 */
const isoTextOf = lastTwoMemo((time: number) => new Date(time).toISOString());
function dateTimeText(date: Date): string | undefined {
  const time = date.getTime();
  return Number.isNaN(time) ? undefined : isoTextOf(time);
}

/**
 * `DateTime`: input as an RFC 3339 string with a time zone, parsed to a Date; output as an
 * ISO 8601 UTC string with milliseconds. A zone is required on input because a bare local
 * time would mean different instants on the client and the server.
 */
export const DateTimeScalar = new GraphQLScalarType<Date, string>({
  name: 'DateTime',
  description: 'An RFC 3339 date-time string with a time zone.',
  // The engine hands out Dates (pg parses timestamptz); anything else is a bug to surface.
  serialize: (value) => {
    const text = value instanceof Date ? dateTimeText(value) : undefined;
    if (text !== undefined) return text;
    throw new TypeError(`DateTime cannot represent ${typeof value}`);
  },
  parseValue: parseDateTime,
  parseLiteral: (node) => {
    if (node.kind !== Kind.STRING) throw badUserInput('DateTime must be given as a string');
    return parseDateTime(node.value);
  },
});
