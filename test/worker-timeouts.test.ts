import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.ts';
import { silentLogger } from '../src/log.ts';
import { connectProducer } from '../src/queue/connection.ts';
import { requestSweep, waitForSweep } from '../src/queue/request-sweep.ts';
import { closeSweepQueue, createSweepQueue, type SweepQueue } from '../src/queue/sweep-queue.ts';
import type { RedisClient } from '../src/redis-client.ts';
import { type SweepWorker, startSweepWorker } from '../workers/sweep-worker.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';
import { sweeperEnv } from './support/harness.ts';
import { createTestPrefix } from './support/redis.ts';
import { seed } from './support/seed.ts';

/**
 * A chunk that meets DDL (an ACCESS EXCLUSIVE lock on audit_log, as ALTER TABLE takes) waits
 * at most SWEEP_LOCK_TIMEOUT, fails with an error that says so, lets its partition go and is
 * retried; once the lock is gone the retry sweeps the partition. Without the bound, the chunk
 * would wait as long as the DDL, holding its partition lock all the while.
 */

let db: TestDatabase;
const prefix = createTestPrefix('worker_timeouts');
let worker: SweepWorker | undefined;
let redis: RedisClient;
let sq: SweepQueue;

const env = () =>
  sweeperEnv(
    { databaseUrl: db.url, prefix: prefix.prefix },
    {
      SWEEP_PARTITIONS: '2',
      SWEEP_LOCK_TIMEOUT: '200ms',
      SWEEP_ATTEMPTS: '10',
      // The adaptive throttle reads the commit latency of the whole server, which other test
      // files load at the same time: at its floor it can hold the retries past this test's
      // bound. What is tested here is the lock timeout, so the throttle stands aside.
      SWEEP_IMPACT_TARGET: 'off',
    },
  );

beforeAll(async () => {
  db = await createTestDatabase('worker_timeouts');
  const config = loadConfig(env());
  redis = await connectProducer(config, silentLogger);
  sq = createSweepQueue(redis, config.QUEUE_PREFIX);
});

afterAll(async () => {
  await worker?.close();
  await closeSweepQueue(sq);
  redis?.disconnect();
  await db?.drop();
  await prefix.cleanup();
});

describe('a chunk blocked by DDL', () => {
  it('fails after SWEEP_LOCK_TIMEOUT with a clear error, is retried, and sweeps once the lock goes', async () => {
    const config = loadConfig(env());
    worker = await startSweepWorker(config, silentLogger);
    // The scheduler's first run, over an empty table.
    await expect.poll(async () => (await sq.queue.getCompletedCount()) > 0).toBe(true);
    await seed(db.pool, { kind: 'incomplete', count: 1_000, tag: 'ddl' });

    const ddl = await db.pool.connect();
    try {
      await ddl.query('BEGIN; LOCK TABLE audit_log IN ACCESS EXCLUSIVE MODE');
      const tick = await requestSweep(sq);
      const summary = waitForSweep(sq, tick, {
        redisUrl: config.REDIS_URL,
        timeoutMs: 120_000,
        logger: silentLogger,
      });
      summary.catch(() => {});
      // Both partitions' jobs fail and are retried while the lock is held.
      const retried = async () =>
        (await sq.partitions.getJobs(['delayed', 'failed', 'waiting', 'active'])).filter(
          (j) => j.attemptsMade >= 2,
        );
      await expect.poll(async () => (await retried()).length, { timeout: 60_000 }).toBe(2);
      for (const job of await retried())
        expect(job.failedReason).toMatch(
          /waited longer than SWEEP_LOCK_TIMEOUT for a lock on audit_log.*lock timeout/,
        );
      await ddl.query('COMMIT');

      const run = await summary;
      expect(run.failedPartitions).toEqual([]);
      expect(run.finalized).toBe(1_000);
      const { rows: left } = await db.pool.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM audit_log WHERE time_completed IS NULL',
      );
      expect(left[0]?.n).toBe(0);
    } finally {
      await ddl.query('ROLLBACK').catch(() => {});
      ddl.release();
    }
  });
});
