// schema.sql is the schema as the migrations leave it. This dumps a freshly migrated
// database (the run's template, cloned) the way `npm run schema:dump` does and fails when
// the checked-in file differs: a migration landed without regenerating the dump.
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SCHEMA_DUMP_FILE, dumpSchema } from '../../scripts/schema-dump.ts';
import { createTestDatabase } from '../helpers/database.ts';
import type { TestDatabase } from '../helpers/database.ts';

let t: TestDatabase;
beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(async () => {
  await t.drop();
});

describe('schema.sql', () => {
  it('is what the migrations leave (run `npm run schema:dump` after adding one)', async () => {
    const checkedIn = await readFile(SCHEMA_DUMP_FILE, 'utf8');
    const dumped = await dumpSchema(t.url);
    // Compared as text: a difference shows as a diff of the two dumps.
    expect(dumped).toBe(checkedIn);
  });

  it('holds every object the migrations create, the SQL contract among them', async () => {
    const checkedIn = await readFile(SCHEMA_DUMP_FILE, 'utf8');
    for (const object of [
      'CREATE TABLE holdline.messages',
      'CREATE TABLE holdline.queues',
      'CREATE FUNCTION holdline.receive(',
      'CREATE FUNCTION holdline.send(',
      'CREATE FUNCTION holdline.ack(',
      'CREATE FUNCTION holdline.ack_batch(',
      'CREATE FUNCTION holdline.extend_lease(',
      'CREATE VIEW holdline.queue_stats',
    ]) {
      expect(checkedIn).toContain(object);
    }
  });
});
