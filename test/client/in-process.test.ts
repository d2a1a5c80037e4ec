import { afterAll, beforeAll } from 'vitest';
import { createInProcessClient } from '../../src/index.ts';
import type { InProcessClient } from '../../src/index.ts';
import { createTestDatabase } from '../helpers/database.ts';
import type { TestDatabase } from '../helpers/database.ts';
import { silentLogger } from '../helpers/factories.ts';
import { defineClientSuite } from './client-suite.ts';
import type { SuiteTarget } from './support.ts';
import { defineWorkerSuite } from './worker-suite.ts';

let t: TestDatabase;
let client: InProcessClient;

beforeAll(async () => {
  t = await createTestDatabase();
  // The reaper runs often so that expired leases come back within the tests' budgets.
  client = await createInProcessClient({
    connectionString: t.url,
    reaper: { intervalMs: 100 },
    logger: silentLogger(),
  });
});
afterAll(async () => {
  await client.close();
  await t.drop();
});

const target = (): SuiteTarget => ({
  mode: 'in-process',
  t,
  client,
  fixtureEnv: { HOLDLINE_MODE: 'in-process', DATABASE_URL: t.url },
});

defineClientSuite(target);
defineWorkerSuite(target);
