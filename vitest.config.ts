import { defineConfig } from 'vitest/config';

/**
 * The tests that start nothing (no MariaDB, PostgreSQL, emulator, child process, HTTP listener or CDK synth): the
 * `unit` project, `npm run test:unit`, seconds. Every other test file is in the `integration` project and starts the
 * real servers it needs itself. test/projects.test.ts keeps this list honest in both directions: a file here that
 * imports a server-starting helper fails it, and so does a test file left out of it that starts nothing. Entries are
 * paths or globs (a folder that holds only pure tests, like test/shared/, is listed whole).
 */
export const UNIT_TEST_FILES: readonly string[] = [
  'test/architecture/*.test.ts',
  'test/bench/kpl-aggregate.test.ts',
  'test/bench/plots.test.ts',
  'test/shared/*.test.ts',
  'test/cli/cli-logic.test.ts',
  'test/cli/preflight-checks.test.ts',
  'test/cli/producer-state.test.ts',
  'test/infra/config.test.ts',
  'test/infra/construct-props.test.ts',
  'test/local/dashboard-metrics.test.ts',
  'test/local/firehose-dead-letters.test.ts',
  'test/merge/stage-csv.test.ts',
  'test/merge/date-values.test.ts',
  'test/merge/merge-config.test.ts',
  'test/merge/redshift-grammar.test.ts',
  'test/merge/redshift-plan.test.ts',
  'test/merge/text-values.test.ts',
  'test/merge/type-table-doc.test.ts',
  'test/merge/value-limits.test.ts',
  'test/producer/ddl-events.test.ts',
  'test/producer/encode-worker.test.ts',
  'test/producer/event-assembly.test.ts',
  'test/producer/in-flight-checkpoints.test.ts',
  'test/producer/log-level.test.ts',
  'test/producer/write-config.test.ts',
  'test/producer/snapshot-logic.test.ts',
  'test/producer/start-position-logic.test.ts',
  'test/producer/table-quarantine-logic.test.ts',
  'test/producer/value-types.test.ts',
  'test/projects.test.ts',
];

// One runner for every layer, as two projects. `npm test` runs both in one pool, two files at a time (CI machines have
// 2 cores); maxWorkers is set here, once, and both projects inherit it. Integration files run each in its own process
// (they start and stop servers); unit files share worker threads and their module cache (isolate: false), which cuts
// the CPU time of `npm run test:unit` by half: they only call pure modules (test/projects.test.ts keeps servers out).
export default defineConfig({
  test: {
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 120_000,
    hookTimeout: 180_000,
    reporters: ['default'],
    projects: [
      { extends: true, test: { name: 'unit', include: [...UNIT_TEST_FILES], pool: 'threads', isolate: false } },
      { extends: true, test: { name: 'integration', include: ['test/**/*.test.ts'], exclude: [...UNIT_TEST_FILES] } },
    ],
  },
});
