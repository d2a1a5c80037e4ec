import pg from 'pg';
import { lastTwoMemo } from '../last-two-memo.ts';

/** PostgreSQL's type oid of `timestamptz`. */
const TIMESTAMPTZ_OID = 1184;

/**
 * pg's timestamptz parser with the last two texts remembered. The rows of one statement
 * often share their times — a receive's deliveries one lease expiry, a batch's messages
 * one creation time — and pg's parser (regular expressions and Date arithmetic, about
 * 0.8 µs) ran three times per delivered message. Each call still returns a Date of its
 * own, so that no caller can change another's.
 */
function rememberingTimestamptzParser(): (text: string) => unknown {
  const parse = lastTwoMemo(
    pg.types.getTypeParser(TIMESTAMPTZ_OID, 'text') as (text: string) => unknown,
  );
  // Each row gets its own Date: callers may change the one they were given.
  return (text) => {
    const value = parse(text);
    return value instanceof Date ? new Date(value.getTime()) : value;
  };
}

/**
 * The type parsers of a pool: pg's own (the process-wide `pg.types`, with whatever an
 * embedder registered there), with timestamptz parsed through a small memo. One per pool.
 */
export function poolTypeParsers(): { getTypeParser: typeof pg.types.getTypeParser } {
  const timestamptz = rememberingTimestamptzParser();
  const getTypeParser = (oid: number, format?: 'text' | 'binary'): unknown =>
    oid === TIMESTAMPTZ_OID && (format === undefined || format === 'text')
      ? timestamptz
      : (pg.types.getTypeParser(oid, format) as unknown);
  return { getTypeParser: getTypeParser as typeof pg.types.getTypeParser };
}
