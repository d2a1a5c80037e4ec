import { defineConfig } from 'vitest/config';

/**
 * `npm run test:reliability`: every fault scenario of test/reliability, the slow ones
 * (`*.slow.test.ts`, left out of `npm test`) included. One file at a time, so that the
 * figures each scenario prints are not skewed by the others' load.
 */
export default defineConfig({
  test: {
    include: ['test/reliability/**/*.test.ts'],
    globalSetup: ['test/setup/global-setup.ts'],
    pool: 'forks',
    fileParallelism: false,
    testTimeout: 600_000,
    hookTimeout: 120_000,
    teardownTimeout: 60_000,
  },
});
