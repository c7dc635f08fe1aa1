import { defineConfig } from 'vitest/config';

// One runner for every layer. Integration and end-to-end tests start real servers (MariaDB, PostgreSQL, emulators)
// themselves, so files run in separate processes and only two at a time (CI machines have 2 cores).
export default defineConfig({
  test: {
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 120_000,
    hookTimeout: 180_000,
    include: ['test/**/*.test.ts'],
    reporters: ['default'],
  },
});
