import { setTimeout as sleep } from 'node:timers/promises';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../src/db/migrate.ts';
import { createPool, type Pool } from '../src/db/pool.ts';
import { silentLogger } from '../src/log.ts';
import { SchedulerId, SWEEP_QUEUE } from '../src/queue/jobs.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';
import { isAlive, processFleet } from './support/harness.ts';
import {
  type PrivatePostgres,
  type PrivateRedis,
  startPrivatePostgres,
  startPrivateRedis,
} from './support/private-servers.ts';
import { createTestPrefix, TEST_REDIS_URL } from './support/redis.ts';
import { rowsDigest, seed } from './support/seed.ts';

/**
 * Outages, for real: a worker process keeps running while its Redis or its PostgreSQL goes away
 * and comes back, and must resume by itself. Both servers are private to this file (started,
 * killed and restarted by the test on free ports); the shared ones are never touched.
 */

const STARTED = /"msg":"sweep worker started"/;

const fleet = processFleet();
const startWorker = (env: Record<string, string>) => fleet.start(['worker'], env);
const alive = isAlive;
const count = (text: string, pattern: RegExp) =>
  text.split('\n').filter((l) => pattern.test(l)).length;

afterEach((context) => fleet.cleanup(context));

/** Incomplete rows of a tag, and how many of them are timed out with no status fields. */
async function tagState(pool: Pool, tag: string) {
  const { rows } = await pool.query(
    `SELECT count(*)::int AS total,
            count(*) FILTER (WHERE time_completed IS NULL)::int AS incomplete,
            count(*) FILTER (WHERE result_kind = 'timeout' AND http_status_code IS NULL
                               AND error_code IS NULL AND error_message IS NULL)::int AS timed_out
       FROM audit_log WHERE request_id LIKE $1`,
    [`${tag}-%`],
  );
  return rows[0] as { total: number; incomplete: number; timed_out: number };
}

const workerSettings = {
  STALE_AFTER: '1h',
  SWEEP_EVERY: '1s',
  SWEEP_PARTITIONS: '4',
  SWEEP_LOCK_TTL: '2s',
  RETENTION: 'off',
  WORKER_METRICS_PORT: '0',
  LOG_LEVEL: 'info',
};

describe('Redis restarted with its data lost', () => {
  let redisServer: PrivateRedis;
  let db: TestDatabase;
  const prefix = '{audit}';

  beforeAll(async () => {
    redisServer = await startPrivateRedis();
    db = await createTestDatabase('outage_redis');
  });
  afterAll(async () => {
    await redisServer?.destroy();
    await db?.drop();
  });

  /** The job schedulers in the private Redis, read with a connection of our own. */
  async function schedulerIds(): Promise<string[]> {
    const connection = new Redis(redisServer.url, {
      maxRetriesPerRequest: 1,
      retryStrategy: () => null,
    });
    connection.on('error', () => {});
    const queue = new Queue(SWEEP_QUEUE, { connection, prefix });
    try {
      return (await queue.getJobSchedulers()).map((s) => s.key);
    } finally {
      await queue.close();
      connection.disconnect();
    }
  }

  async function serverRunId(): Promise<string> {
    const client = new Redis(redisServer.url, { maxRetriesPerRequest: 1 });
    try {
      return /run_id:(\w+)/.exec(await client.info('server'))?.[1] ?? '';
    } finally {
      client.disconnect();
    }
  }

  it('the worker stays up, the schedule comes back in the new Redis, and sweeps resume', async () => {
    const worker = startWorker({
      ...workerSettings,
      DATABASE_URL: db.url,
      REDIS_URL: redisServer.url,
      QUEUE_PREFIX: prefix,
    });
    await worker.waitForOutput(STARTED);
    await seed(db.pool, { kind: 'completed', count: 2_000, tag: 'done' });
    const done = await rowsDigest(db.pool, "request_id LIKE 'done-%'");
    await seed(db.pool, { kind: 'incomplete', count: 1_000, tag: 'before' });

    // The schedule sweeps them (nobody asks for a sweep in this test).
    expect(await schedulerIds()).toContain(SchedulerId.sweep);
    // expect.poll retries a probe that throws: the servers go away and come back here.
    await expect.poll(() => tagState(db.pool, 'before')).toMatchObject({ incomplete: 0 });
    expect(await tagState(db.pool, 'before')).toEqual({
      total: 1_000,
      incomplete: 0,
      timed_out: 1_000,
    });

    // Redis dies; everything it held is gone. A new, empty one comes up on the same port.
    const oldRunId = await serverRunId();
    const heardBefore = worker.output().length;
    await redisServer.kill();
    await expect.poll(() => worker.output().slice(heardBefore)).toMatch(/Redis connection error/);
    await sleep(2_000);
    expect(alive(worker)).toBe(true);
    await redisServer.start();
    expect(await serverRunId()).not.toBe(oldRunId);

    // The worker put the schedule back by itself, and the schedule sweeps new stale rows.
    await expect.poll(schedulerIds).toContain(SchedulerId.sweep);
    await seed(db.pool, { kind: 'incomplete', count: 1_000, tag: 'after' });
    await expect.poll(() => tagState(db.pool, 'after')).toMatchObject({ incomplete: 0 });
    expect(await tagState(db.pool, 'after')).toEqual({
      total: 1_000,
      incomplete: 0,
      timed_out: 1_000,
    });
    expect(await rowsDigest(db.pool, "request_id LIKE 'done-%'")).toEqual(done);

    // The same process all along: it never exited or restarted.
    expect(alive(worker)).toBe(true);
    expect(count(worker.output(), STARTED)).toBe(1);
    expect(worker.output()).toContain('Redis connection restored');
    // Through the outage, everything it wrote was a structured (JSON) log line.
    const unstructured = worker
      .output()
      .split('\n')
      .filter((l) => l.trim() && !l.startsWith('{"level"'));
    expect(unstructured).toEqual([]);

    worker.child.kill('SIGTERM');
    expect(await worker.exited, worker.output().slice(-3000)).toBe(0);
  }, 300_000);
});

describe('PostgreSQL going away and coming back', () => {
  let pgServer: PrivatePostgres;
  let url: string;
  let pool: Pool | undefined;
  const { prefix, cleanup } = createTestPrefix('outage_pg');

  beforeAll(async () => {
    pgServer = await startPrivatePostgres();
    url = pgServer.url('audit_sweeper_outage');
    await migrate(url, silentLogger);
    pool = createPool(url, silentLogger, { max: 4 });
  });
  afterAll(async () => {
    await pool?.end();
    await pgServer?.destroy();
    await cleanup();
  });

  it('the worker stays up and logs errors while PostgreSQL is down, then finalizes the stale rows', async () => {
    const db = pool as Pool;
    const worker = startWorker({
      ...workerSettings,
      DATABASE_URL: url,
      REDIS_URL: TEST_REDIS_URL,
      QUEUE_PREFIX: prefix,
    });
    await worker.waitForOutput(STARTED);
    await seed(db, { kind: 'completed', count: 2_000, tag: 'done' });
    const done = await rowsDigest(db, "request_id LIKE 'done-%'");
    await seed(db, { kind: 'incomplete', count: 500, tag: 'before' });
    await expect.poll(() => tagState(db, 'before')).toMatchObject({ incomplete: 0 });

    // Rows that become stale a few seconds from now, while the database is down (rows already
    // stale would be swept before it goes: the schedule fires every second).
    await seed(db, { kind: 'incomplete', count: 2_000, tag: 'outage', ageMs: 3_600_000 - 10_000 });
    const seeded = Date.now();
    expect(await tagState(db, 'outage')).toMatchObject({ total: 2_000, incomplete: 2_000 });
    await pool?.end();
    pool = undefined;

    const heardBefore = worker.output().length;
    await pgServer.stop('fast');
    // Same host, same clock as the server's now(): rows finalized after this were finalized
    // after the outage began.
    const down = new Date();
    // Down past the moment every such row is stale, and long enough for several ticks.
    await expect
      .poll(() => worker.output().slice(heardBefore))
      .toMatch(/"name":"partition".*"msg":"job failed"/);
    await sleep(Math.max(0, seeded + 14_000 - Date.now()));
    const duringOutage = worker.output().slice(heardBefore);
    expect(alive(worker)).toBe(true);
    expect(count(worker.output(), STARTED)).toBe(1);
    expect(duringOutage).toMatch(
      /ECONNREFUSED|terminating connection|Connection terminated|shutting down/,
    );
    // The same error is logged once per change, not once per job attempt (a tick a second
    // and a partition job per partition each fail over and over), and names PostgreSQL.
    const failures = duringOutage.split('\n').filter((l) => l.includes('"msg":"job failed"'));
    expect(failures.length).toBeGreaterThan(0);
    expect(failures.length, failures.join('\n')).toBeLessThanOrEqual(10);
    expect(failures.join('\n')).toContain('PostgreSQL');
    expect(failures.join('\n')).toContain('DATABASE_URL');

    await pgServer.start();
    pool = createPool(url, silentLogger, { max: 4 });
    const back = pool;
    await expect.poll(() => tagState(back, 'outage')).toMatchObject({ incomplete: 0 });
    expect(await tagState(back, 'outage')).toEqual({
      total: 2_000,
      incomplete: 0,
      timed_out: 2_000,
    });
    const late = await back.query(
      `SELECT count(*)::int AS n FROM audit_log
        WHERE request_id LIKE 'outage-%' AND time_completed > $1::timestamptz`,
      [down],
    );
    expect(late.rows[0].n, 'rows swept before the outage began').toBe(2_000);
    // Once it works again, one line says how often the error repeated (a restarting server may
    // first answer "starting up", a different error, which closes the count the same way).
    expect(worker.output().slice(heardBefore)).toMatch(
      /partition jobs: the error above happened \d+ times in a row; (recovered|a different error follows)/,
    );
    expect(await tagState(back, 'before')).toEqual({ total: 500, incomplete: 0, timed_out: 500 });
    expect(await rowsDigest(back, "request_id LIKE 'done-%'")).toEqual(done);
    const { rows } = await back.query(
      "SELECT count(*)::int AS n FROM audit_log WHERE result_kind = 'timeout'",
    );
    expect(rows[0].n).toBe(2_500);

    // Never restarted.
    expect(alive(worker)).toBe(true);
    expect(count(worker.output(), STARTED)).toBe(1);
    worker.child.kill('SIGTERM');
    expect(await worker.exited, worker.output().slice(-3000)).toBe(0);
  }, 300_000);
});
