import { defineConfig } from 'vitest/config';

/**
 * Three groups, one after the other. Most files wait on child processes and servers rather than
 * compute, so on two cores several run at once; the files that measure rates or time failovers
 * run last, two at a time, so that others' load cannot skew what they measure. Every file
 * owns its database and Redis prefix (test/support), so files of one group never share state.
 */

/** Files whose assertions measure time: a fleet's row rate, a replica's lag, a failover. */
const TIMED = [
  'test/gentle.test.ts',
  'test/throttles.test.ts',
  'test/redis-ha.test.ts',
  // The adaptive throttle's signal is a commit latency; the stream cap's slot returns in time.
  'test/adaptive-throttle.test.ts',
  'test/stream-cap.test.ts',
  // A chunk behind DDL must fail after SWEEP_LOCK_TIMEOUT and be retried within a bound.
  'test/worker-timeouts.test.ts',
];

/** Files that start `audit-sweeper` processes or private servers (PostgreSQL, Redis, Chromium, Prometheus). */
const PROCESSES = [
  'test/alert-metrics.test.ts',
  'test/browser-csp.test.ts',
  'test/browser-operator.test.ts',
  'test/browser.test.ts',
  'test/config.test.ts',
  'test/dashboard-cli.test.ts',
  'test/deploy.test.ts',
  'test/fleet-processes.test.ts',
  'test/dry-run.test.ts',
  'test/headroom.test.ts',
  'test/last-resort.test.ts',
  'test/migrate.test.ts',
  'test/monitoring-files.test.ts',
  'test/operator-cli.test.ts',
  'test/prometheus-alertmanager.test.ts',
  'test/read-replica.test.ts',
  'test/redis-cluster-down.test.ts',
  'test/redis-credentials.test.ts',
  'test/redis-sentinel-reconnect.test.ts',
  'test/runtime-edges.test.ts',
  'test/secrets.test.ts',
  'test/simulate.test.ts',
  'test/start.test.ts',
  'test/sweep-partition.test.ts',
  'test/sweeper-outages.test.ts',
  'test/sweeper-processes.test.ts',
  'test/worker-shutdown.test.ts',
];

export default defineConfig({
  test: {
    pool: 'forks',
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // expect.poll waits out processes and servers: long enough for a drain, at a modest pace
    // (a tight poll steals a core from what it waits for).
    expect: { poll: { timeout: 90_000, interval: 250 } },
    reporters: ['default', 'json'],
    outputFile: { json: 'test-artifacts/vitest.json' },
    globalSetup: ['test/support/build-dist.ts'],
    projects: [
      {
        extends: true,
        test: {
          name: 'in-process',
          include: ['test/**/*.test.ts'],
          exclude: [...TIMED, ...PROCESSES],
          maxWorkers: 3,
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: {
          name: 'processes',
          include: PROCESSES,
          maxWorkers: 4,
          sequence: { groupOrder: 1 },
        },
      },
      {
        extends: true,
        test: {
          name: 'timed',
          include: TIMED,
          maxWorkers: 2,
          sequence: { groupOrder: 2 },
        },
      },
    ],
  },
});
