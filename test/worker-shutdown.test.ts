import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CliProcess, startCli } from './support/cli.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';
import { createTestPrefix, TEST_REDIS_URL } from './support/redis.ts';
import { seed } from './support/seed.ts';

/**
 * A worker asked to stop while its sweep is stuck in the database (a table lock held by someone
 * else) does not hang forever: it gives up after its shutdown bound and exits non-zero, and its
 * job is left for another worker.
 */

let db: TestDatabase;
let prefix: ReturnType<typeof createTestPrefix>;
let worker: CliProcess | undefined;

beforeAll(async () => {
  db = await createTestDatabase('worker_shutdown');
  prefix = createTestPrefix('worker-shutdown');
});

afterAll(async () => {
  if (worker && worker.child.exitCode === null) worker.child.kill('SIGKILL');
  await db?.drop();
  await prefix?.cleanup();
});

describe('worker shutdown', () => {
  it('is bounded even when a sweep hangs in the database', async () => {
    await seed(db.pool, { kind: 'incomplete', count: 100, tag: 'stale' });
    const blocker = await db.pool.connect();
    try {
      await blocker.query('BEGIN');
      await blocker.query('LOCK TABLE audit_log IN ACCESS EXCLUSIVE MODE');
      worker = startCli(['worker'], {
        DATABASE_URL: db.url,
        REDIS_URL: TEST_REDIS_URL,
        QUEUE_PREFIX: prefix.prefix,
        STALE_AFTER: '1h',
        SWEEP_EVERY: '1h',
        SWEEP_PARTITIONS: '1',
        SWEEP_LOCK_TTL: '1s',
        // Longer than the shutdown bound (2 x 1s + 10s), so that the chunk is still waiting.
        SWEEP_LOCK_TIMEOUT: '1h',
        WORKER_METRICS_PORT: '0',
        RETENTION: 'off',
      });
      await worker.waitForOutput(/sweep worker started/);
      // The scheduler's first tick starts a run whose partition sweep now waits on the lock.
      for (let i = 0; i < 100; i++) {
        const { rows } = await db.pool.query(
          `SELECT count(*)::int AS n FROM pg_stat_activity
            WHERE datname = current_database() AND wait_event_type = 'Lock'`,
        );
        if (rows[0].n > 0) break;
        await new Promise((r) => setTimeout(r, 250));
      }
      worker.child.kill('SIGTERM');
      expect(await worker.exited).toBe(1);
      expect(worker.output()).toMatch(/shutdown did not finish in time/);
    } finally {
      await blocker.query('ROLLBACK');
      blocker.release();
    }
    // The chunk's statement reached PostgreSQL whole before the worker gave up, and may run
    // once the table lock is gone, though its worker has exited: harmless, as every row is
    // then timed out exactly as a live worker would have (the write is conditional and takes
    // its time from the database). Nothing is left half-done either way.
    const { rows } = await db.pool.query(
      `SELECT count(*) FILTER (WHERE time_completed IS NULL AND result_kind IS NULL)::int AS untouched,
              count(*) FILTER (WHERE result_kind = 'timeout' AND http_status_code IS NULL
                                 AND error_code IS NULL AND error_message IS NULL)::int AS timed_out
         FROM audit_log`,
    );
    expect([0, 100]).toContain(rows[0].timed_out);
    expect(rows[0].untouched + rows[0].timed_out).toBe(100);
  });
});
