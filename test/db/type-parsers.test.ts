import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPool } from '../../src/db/pool.ts';
import { poolTypeParsers } from '../../src/db/type-parsers.ts';
import { createTestDatabase } from '../helpers/database.ts';
import type { TestDatabase } from '../helpers/database.ts';

let t: TestDatabase;
beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(async () => {
  await t.drop();
});

describe("a pool's timestamptz parser", () => {
  const pgParse = pg.types.getTypeParser(1184, 'text') as (text: string) => unknown;

  it("answers as pg's own, however texts alternate, with a Date of its own each time", () => {
    const parse = poolTypeParsers().getTypeParser(1184, 'text') as (text: string) => unknown;
    const texts = [
      '2026-12-08 02:13:45.123456+00',
      '2026-12-08 02:13:45.123456+00',
      '2030-01-01 00:00:00+05:30',
      '2026-12-08 02:13:45.123456+00',
      '2030-01-01 00:00:00+05:30',
      '0099-06-01 12:00:00+00',
      'infinity',
      '-infinity',
      '2030-01-01 00:00:00+05:30',
    ];
    let previous: unknown;
    for (const text of texts) {
      const parsed = parse(text);
      expect(parsed).toEqual(pgParse(text));
      if (parsed instanceof Date) expect(parsed).not.toBe(previous);
      previous = parsed;
    }
  });

  it('leaves the other types to pg', () => {
    const parsers = poolTypeParsers();
    for (const oid of [20, 114, 1082, 1114, 3802]) {
      expect(parsers.getTypeParser(oid, 'text')).toBe(pg.types.getTypeParser(oid, 'text'));
    }
  });

  it('parses the rows of a real statement', async () => {
    const pool = createPool({ connectionString: t.url, max: 1 });
    try {
      const { rows } = await pool.query<{ at: Date; again: Date; other: Date }>(
        `SELECT t AS at, t AS again, t + interval '1 ms' AS other
           FROM (VALUES ('2030-01-01 00:00:00.5+00'::timestamptz)) v(t)`,
      );
      const row = rows[0]!;
      expect(row.at.toISOString()).toBe('2030-01-01T00:00:00.500Z');
      expect(row.again).toEqual(row.at);
      expect(row.again).not.toBe(row.at);
      expect(row.other.toISOString()).toBe('2030-01-01T00:00:00.501Z');
    } finally {
      await pool.end();
    }
  });
});
