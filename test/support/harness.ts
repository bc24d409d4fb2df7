import { type TestContext, vi } from 'vitest';
import { type CliProcess, startCli } from './cli.ts';
import { TEST_REDIS_URL } from './redis.ts';

/**
 * What the sweeper tests share: the settings a test's processes run with, and the real child
 * processes they start, cleaned up after each test.
 */

/**
 * Settings for a test's workers (and dashboards) on its own database and key prefix. Only the
 * first tick (BullMQ fires an `every` scheduler at once) comes from the schedule unless the test
 * sets SWEEP_EVERY: the tests ask for their sweeps.
 */
export function sweeperEnv(
  own: { databaseUrl: string; prefix: string; redisUrl?: string },
  overrides: Record<string, string> = {},
): Record<string, string> {
  return {
    DATABASE_URL: own.databaseUrl,
    REDIS_URL: own.redisUrl ?? TEST_REDIS_URL,
    QUEUE_PREFIX: own.prefix,
    STALE_AFTER: '1h',
    SWEEP_EVERY: '1h',
    RETENTION: 'off',
    WORKER_METRICS_PORT: '0',
    LOG_LEVEL: 'info',
    ...overrides,
  };
}

export const isAlive = (p: CliProcess) => p.child.exitCode === null && p.child.signalCode === null;

/**
 * The `audit-sweeper` processes a test file starts. `cleanup` (for afterEach) prints what each
 * process wrote when the test failed, then kills whatever still runs and waits for it to exit.
 */
export function processFleet() {
  const children = new Set<CliProcess>();
  return {
    start(args: string[], env: Record<string, string>): CliProcess {
      const p = startCli(args, env);
      children.add(p);
      return p;
    },
    /** What each process wrote (the last few KB): for a failing test's diagnostics. */
    outputs(): string {
      return [...children]
        .map((p) => {
          const state = p.child.exitCode ?? p.child.signalCode ?? 'running';
          const tail = p
            .output()
            .slice(-6000)
            .split('\n')
            .map((l) => l.slice(0, 600))
            .join('\n');
          return `--- audit-sweeper ${p.child.spawnargs.slice(2).join(' ')} (pid ${p.child.pid}, ${state}):\n${tail}`;
        })
        .join('\n');
    },
    async cleanup(context: TestContext, extra?: () => Promise<string>): Promise<void> {
      if (context.task.result?.state === 'fail')
        console.error([this.outputs(), extra ? await extra() : ''].join('\n'));
      for (const p of children) if (isAlive(p)) p.child.kill('SIGKILL');
      await Promise.all([...children].map((p) => p.exited));
      children.clear();
    },
  };
}

/**
 * The first value `probe` gives that is not undefined: vi.waitFor, which hands the value back
 * (expect.poll only asserts), at the same pace as expect.poll.
 */
export const until = <T>(probe: () => Promise<T | undefined>) =>
  vi.waitFor(
    async () => {
      const value = await probe();
      if (value === undefined) throw new Error('not yet');
      return value;
    },
    { timeout: 90_000, interval: 250 },
  );
