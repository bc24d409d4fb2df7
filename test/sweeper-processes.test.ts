import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.ts';
import { type RunSummary, SWEEP_QUEUE } from '../src/queue/jobs.ts';
import { closeSweepQueue, createSweepQueue, type SweepQueue } from '../src/queue/sweep-queue.ts';
import { readRecentRunsFromRedis } from '../src/run-history/redis.ts';
import { type CliProcess, runCli } from './support/cli.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';
import { isAlive, processFleet, sweeperEnv } from './support/harness.ts';
import { createTestPrefix, TEST_REDIS_URL } from './support/redis.ts';
import { rowsDigest, seed } from './support/seed.ts';

/**
 * The sweeper as it runs in production: real `audit-sweeper worker` processes (from the TS
 * sources), on the shared PostgreSQL and Redis, each test with its own database and key prefix.
 * Processes are killed (SIGKILL), stopped (SIGTERM) and frozen (SIGSTOP) for real.
 *
 * Row sets are told apart by request_id: `stale-<n>` started 2 h ago (STALE_AFTER is 1 h),
 * `recent-<n>` incomplete but started in the last moments, `done-<n>` completed long ago with
 * success or error results.
 */

const STALE = "request_id LIKE 'stale-%'";
const RECENT = "request_id LIKE 'recent-%'";
const DONE = "request_id LIKE 'done-%'";

type Ctx = {
  db: TestDatabase;
  env: Record<string, string>;
  sq: SweepQueue;
  redis: Redis;
  cleanupPrefix: () => Promise<void>;
  /** Lock keys of the partition locks (`<prefix>:audit-sweep:partition-lock:<n>`). */
  lockKeys: () => Promise<string[]>;
};

const fleet = processFleet();
const start = fleet.start;
const alive = isAlive;
let ctx: Ctx | undefined;

/** Where the queues stood: printed, with each process's output, when a test fails. */
async function queueDiagnostics(c: Ctx | undefined): Promise<string> {
  if (!c) return '';
  const counts = await Promise.all([c.sq.queue.getJobCounts(), c.sq.partitions.getJobCounts()])
    .then(([runs, partitions]) => ({ runs, partitions }))
    .catch((err) => String(err));
  const left = await staleLeft(c).catch((err) => String(err));
  const locks = await c.lockKeys().catch((err) => String(err));
  return `--- job counts ${JSON.stringify(counts)}; stale left ${left}; locks ${locks}`;
}

afterEach(async (context) => {
  const c = ctx;
  await fleet.cleanup(context, () => queueDiagnostics(c));
  if (ctx) {
    const c = ctx;
    ctx = undefined;
    await closeSweepQueue(c.sq);
    c.redis.disconnect();
    await c.cleanupPrefix();
    await c.db.drop();
  }
});

async function setup(label: string, settings: Record<string, string>): Promise<Ctx> {
  const db = await createTestDatabase(label);
  const { prefix, cleanup } = createTestPrefix(label);
  const env = sweeperEnv({ databaseUrl: db.url, prefix }, settings);
  const redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: 1 });
  const sq = createSweepQueue(redis, loadConfig(env).QUEUE_PREFIX);
  const lockKeys = async () => {
    const keys: string[] = [];
    let cursor = '0';
    do {
      const [next, found] = await redis.scan(
        cursor,
        'MATCH',
        `${prefix}:${SWEEP_QUEUE}:partition-lock:*`,
        'COUNT',
        1000,
      );
      cursor = next;
      keys.push(...found);
    } while (cursor !== '0');
    return keys;
  };
  ctx = { db, env, sq, redis, cleanupPrefix: cleanup, lockKeys };
  return ctx;
}

/** Starts workers and waits until each has started and the schedule's first run is over. */
async function startWorkers(c: Ctx, count: number): Promise<CliProcess[]> {
  const workers = Array.from({ length: count }, () => start(['worker'], c.env));
  await Promise.all(workers.map((w) => w.waitForOutput(/"msg":"sweep worker started"/)));
  return workers;
}

/** The database clock now, as text (exact to the microsecond). */
async function dbNow(c: Ctx): Promise<string> {
  return (await c.db.pool.query('SELECT now()::text AS now')).rows[0].now;
}

async function staleLeft(c: Ctx): Promise<number> {
  const { rows } = await c.db.pool.query(
    `SELECT count(*)::int AS n FROM audit_log WHERE ${STALE} AND time_completed IS NULL`,
  );
  return rows[0].n;
}

async function timedOutIds(c: Ctx): Promise<string[]> {
  const { rows } = await c.db.pool.query(
    `SELECT id FROM audit_log WHERE result_kind = 'timeout' ORDER BY id`,
  );
  return rows.map((r) => r.id as string);
}

/**
 * The outcome the sweeper must reach: every stale row timed out (by time_completed from the
 * database clock, at or after `since`) with no status fields, no other row timed out, every
 * recent incomplete row untouched, and the completed rows byte-for-byte as before.
 */
async function expectDrained(
  c: Ctx,
  expected: { stale: number; recent: number; done: { rows: number; md5: string }; since: string },
) {
  const { rows } = await c.db.pool.query(
    `SELECT
       count(*) FILTER (WHERE ${STALE})::int AS stale,
       count(*) FILTER (WHERE ${STALE} AND result_kind = 'timeout'
                          AND time_completed >= $1::timestamptz AND time_completed <= now()
                          AND http_status_code IS NULL AND error_code IS NULL
                          AND error_message IS NULL)::int AS stale_timed_out,
       count(*) FILTER (WHERE result_kind = 'timeout')::int AS timed_out,
       count(*) FILTER (WHERE ${RECENT})::int AS recent,
       count(*) FILTER (WHERE ${RECENT} AND time_completed IS NULL AND result_kind IS NULL
                          AND http_status_code IS NULL AND error_code IS NULL
                          AND error_message IS NULL)::int AS recent_untouched
     FROM audit_log`,
    [expected.since],
  );
  expect(rows[0]).toEqual({
    stale: expected.stale,
    stale_timed_out: expected.stale,
    timed_out: expected.stale,
    recent: expected.recent,
    recent_untouched: expected.recent,
  });
  expect(await rowsDigest(c.db.pool, DONE)).toEqual(expected.done);
}

/** The JSON line `audit-sweeper sweep --wait --json` printed. */
function parseSummary(output: string): RunSummary {
  const line = output
    .split('\n')
    .reverse()
    .find((l) => l.startsWith('{') && l.includes('"runId"') && !l.includes('"level"'));
  if (!line) throw new Error(`no run summary in the output:\n${output}`);
  return JSON.parse(line) as RunSummary;
}

/** The JSON log lines of a process. */
function logLines(p: CliProcess): Record<string, unknown>[] {
  return p
    .output()
    .split('\n')
    .filter((l) => l.startsWith('{"level"'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

const PARTITION_WORK = 'timed out audit log entries whose completion was lost';

/** Rows this process's partition jobs report having timed out (from their warn logs). */
function finalizedBy(p: CliProcess): number {
  return logLines(p)
    .filter((l) => l.msg === PARTITION_WORK)
    .reduce((n, l) => n + ((l.status as { finalized: number }).finalized ?? 0), 0);
}

/**
 * Seeds the three row sets (completed `done`, `stale`, in-flight `recent`) and returns the
 * digest of the completed rows, which no sweep may change.
 */
async function seedBacklog(c: Ctx, counts: { done: number; stale: number; recent: number }) {
  await seed(c.db.pool, { kind: 'completed', count: counts.done, tag: 'done' });
  await seed(c.db.pool, { kind: 'incomplete', count: counts.stale, tag: 'stale' });
  await seed(c.db.pool, { kind: 'incomplete', count: counts.recent, tag: 'recent', ageMs: 0 });
  await c.db.pool.query('ANALYZE audit_log');
  return rowsDigest(c.db.pool, DONE);
}

/** Waits until the first run (the scheduler fires at once) is over, so the table can be seeded. */
async function firstRunOver(c: Ctx) {
  await expect.poll(async () => (await readRecentRunsFromRedis(c.sq, c.redis, 1)).length).toBe(1);
}

describe('worker processes', () => {
  it('three workers drain 50k stale rows among 500k: each timed out once, nothing else touched', async () => {
    const c = await setup('procs_three', {
      SWEEP_PARTITIONS: '16',
      SWEEP_CHUNK_SIZE: '1000',
      SWEEP_CONCURRENCY: '2',
      // The work is shared between processes: with the fleet-wide cap of 2, one process with
      // 2 slots may take every partition (the cap itself: test/stream-cap.test.ts).
      SWEEP_MAX_STREAMS: 'off',
    });
    const since = await dbNow(c);
    const workers = await startWorkers(c, 3);
    await firstRunOver(c);

    const done = await seedBacklog(c, { done: 430_000, stale: 50_000, recent: 20_000 });
    expect(done.rows).toBe(430_000);
    expect(await staleLeft(c)).toBe(50_000);

    const sweep = await runCli(['sweep', '--wait', '--json'], { ...c.env, LOG_LEVEL: 'warn' });
    expect(sweep.code, sweep.output).toBe(0);
    const summary = parseSummary(sweep.output);
    expect(summary).toMatchObject({ partitions: 16, failedPartitions: [], skippedPartitions: [] });

    await expectDrained(c, { stale: 50_000, recent: 20_000, done, since });
    // Exactly once, from the jobs' side: the run totals and every run so far add up to the
    // stale set, and so do the partition jobs' own reports in the three processes' logs.
    expect(summary.finalized).toBe(50_000);
    const runs = await readRecentRunsFromRedis(c.sq, c.redis, 100);
    expect(runs.reduce((n, r) => n + r.finalized, 0)).toBe(50_000);
    const perWorker = workers.map(finalizedBy);
    expect(perWorker.reduce((a, b) => a + b, 0)).toBe(50_000);
    // The work was shared: more than one process swept partitions.
    expect(perWorker.filter((n) => n > 0).length, `rows per worker: ${perWorker}`).toBeGreaterThan(
      1,
    );
    for (const w of workers) expect(alive(w)).toBe(true);
  }, 300_000);

  it('a worker SIGKILLed mid-drain: the others finish it; nothing lost or overwritten', async () => {
    const c = await setup('procs_kill', {
      SWEEP_PARTITIONS: '8',
      SWEEP_CHUNK_SIZE: '10',
      // Several partition jobs in the victim's hands when it dies.
      SWEEP_CONCURRENCY: '4',
      SWEEP_TIME_BUDGET: '500ms',
      SWEEP_LOCK_TTL: '2s',
      // Every worker takes partition jobs: with the fleet-wide cap of 2 the other worker could
      // hold both slots and this one none (the cap with a SIGKILL: test/stream-cap.test.ts).
      SWEEP_MAX_STREAMS: 'off',
    });
    const since = await dbNow(c);
    const [victim, survivor] = (await startWorkers(c, 2)) as [CliProcess, CliProcess];
    await firstRunOver(c);

    const done = await seedBacklog(c, { done: 20_000, stale: 30_000, recent: 2_000 });

    const sweep = start(['sweep', '--wait', '--json'], { ...c.env, LOG_LEVEL: 'warn' });
    // The victim has swept chunks and goes on sweeping: kill it without warning.
    await victim.waitForOutput(new RegExp(PARTITION_WORK), 90_000);
    victim.child.kill('SIGKILL');
    expect(await victim.exited).toBe('SIGKILL');

    const left = await staleLeft(c);
    expect(left, 'the drain was over before the kill').toBeGreaterThan(0);
    const before = await timedOutIds(c);
    expect(before.length).toBeGreaterThan(0);
    const beforeDigest = await rowsDigest(c.db.pool, 'id = ANY($1::uuid[])', [before]);

    // The run completes: the jobs the victim held are taken over once their locks expire.
    expect(await sweep.exited, sweep.output()).toBe(0);
    const summary = parseSummary(sweep.output());
    expect(summary.failedPartitions).toEqual([]);
    // Drained when the run ends, not at the next tick: a re-run of a dead worker's job must not
    // find its predecessor's partition lock still alive and skip the partition. (A skip is
    // fine when the victim died after handing its partition on to a continuation job.)
    await expectDrained(c, { stale: 30_000, recent: 2_000, done, since });
    // The rows timed out before the kill kept their timestamps: none was finalized twice.
    expect(await rowsDigest(c.db.pool, 'id = ANY($1::uuid[])', [before])).toEqual(beforeDigest);
    expect(finalizedBy(survivor)).toBeGreaterThan(0);
    expect(alive(survivor)).toBe(true);
  }, 300_000);

  it('SIGTERM during a drain: the worker exits 0, releases its locks, leaves nothing half-done; another finishes', async () => {
    const c = await setup('procs_term', {
      SWEEP_PARTITIONS: '4',
      SWEEP_CHUNK_SIZE: '10',
      SWEEP_CONCURRENCY: '2',
      SWEEP_TIME_BUDGET: '500ms',
      SWEEP_LOCK_TTL: '2s',
      // Every worker takes partition jobs: with the fleet-wide cap of 2 the other worker could
      // hold both slots and this one none (the cap with a SIGKILL: test/stream-cap.test.ts).
      SWEEP_MAX_STREAMS: 'off',
    });
    const since = await dbNow(c);
    const [first] = (await startWorkers(c, 1)) as [CliProcess];
    await firstRunOver(c);

    const done = await seedBacklog(c, { done: 10_000, stale: 30_000, recent: 1_000 });

    const sweep = start(['sweep', '--wait', '--json'], { ...c.env, LOG_LEVEL: 'warn' });
    await first.waitForOutput(new RegExp(PARTITION_WORK), 90_000);
    first.child.kill('SIGTERM');
    // Exits by itself, with 0 (the bound is this test's timeout).
    expect(await first.exited, first.output()).toBe(0);
    expect(first.output()).toContain('"msg":"shut down cleanly"');

    // It was the only worker: every partition lock it held is gone, and none of its jobs is
    // left active (to be found stalled later): they completed and handed the rest on.
    expect(await c.lockKeys()).toEqual([]);
    expect(await c.sq.queue.getActiveCount()).toBe(0);
    expect(await c.sq.partitions.getActiveCount()).toBe(0);
    expect(await c.sq.partitions.getWaitingCount()).toBeGreaterThan(0);
    // Mid-drain, and every stale row is either untouched or fully timed out.
    const { rows } = await c.db.pool.query(
      `SELECT count(*) FILTER (WHERE time_completed IS NULL AND result_kind IS NULL
                                 AND http_status_code IS NULL AND error_code IS NULL
                                 AND error_message IS NULL)::int AS untouched,
              count(*) FILTER (WHERE time_completed >= $1::timestamptz AND result_kind = 'timeout'
                                 AND http_status_code IS NULL AND error_code IS NULL
                                 AND error_message IS NULL)::int AS timed_out
         FROM audit_log WHERE ${STALE}`,
      [since],
    );
    const { untouched, timed_out } = rows[0];
    expect(untouched + timed_out).toBe(30_000);
    expect(untouched, 'the drain was over before SIGTERM').toBeGreaterThan(0);
    expect(timed_out).toBeGreaterThan(0);
    expect(await rowsDigest(c.db.pool, DONE)).toEqual(done);

    // Another worker takes the rest of the same run.
    const [second] = (await startWorkers(c, 1)) as [CliProcess];
    expect(await sweep.exited, sweep.output()).toBe(0);
    await expectDrained(c, { stale: 30_000, recent: 1_000, done, since });
    // Nothing was counted twice or lost between the two: the run's total is the stale set.
    const summary = parseSummary(sweep.output());
    expect(summary).toMatchObject({ finalized: 30_000, failedPartitions: [] });
    expect(finalizedBy(first)).toBe(timed_out);
    expect(finalizedBy(first) + finalizedBy(second)).toBe(30_000);
  }, 300_000);

  it('a frozen worker (SIGSTOP): its locks expire by themselves, another finishes; thawed, it corrupts nothing and shuts down cleanly', async () => {
    const c = await setup('procs_stop', {
      SWEEP_PARTITIONS: '4',
      SWEEP_CHUNK_SIZE: '10',
      SWEEP_CONCURRENCY: '2',
      // Long activations: the frozen worker is sure to hold partition locks when it stops.
      SWEEP_TIME_BUDGET: '5s',
      SWEEP_LOCK_TTL: '2s',
      // Every worker takes partition jobs: with the fleet-wide cap of 2 the other worker could
      // hold both slots and this one none (the cap with a SIGKILL: test/stream-cap.test.ts).
      SWEEP_MAX_STREAMS: 'off',
    });
    const since = await dbNow(c);
    const [frozen] = (await startWorkers(c, 1)) as [CliProcess];
    await firstRunOver(c);

    const done = await seedBacklog(c, { done: 10_000, stale: 30_000, recent: 1_000 });

    const sweep = start(['sweep', '--wait', '--json'], { ...c.env, LOG_LEVEL: 'warn' });
    await expect
      .poll(async () => (await staleLeft(c)) < 30_000 && (await c.lockKeys()).length > 0, {
        message: 'the drain under way',
      })
      .toBe(true);
    frozen.child.kill('SIGSTOP');

    // Its locks carry a TTL of at most SWEEP_LOCK_TTL, and nobody renews them now.
    const held = await c.lockKeys();
    expect(held.length).toBeGreaterThan(0);
    for (const key of held) {
      const ttl = await c.redis.pttl(key);
      // -2: expired between the scan and now.
      expect(ttl === -2 || (ttl > 0 && ttl <= 2_000), `${key} pttl ${ttl}`).toBe(true);
    }
    await expect.poll(async () => (await c.lockKeys()).length).toBe(0);
    expect(await staleLeft(c)).toBeGreaterThan(0);

    // Another worker takes over the frozen one's jobs and finishes the run.
    const [other] = (await startWorkers(c, 1)) as [CliProcess];
    expect(await sweep.exited, sweep.output()).toBe(0);
    expect(parseSummary(sweep.output()).failedPartitions).toEqual([]);
    await expectDrained(c, { stale: 30_000, recent: 1_000, done, since });
    const everything = await rowsDigest(c.db.pool, 'true');

    // Thawed, it finds its locks gone and stops; it changes no row.
    const heardBefore = frozen.output().length;
    frozen.child.kill('SIGCONT');
    await expect.poll(() => frozen.output().length).toBeGreaterThan(heardBefore);
    await sleep(3 * 2_000);
    expect(alive(frozen)).toBe(true);
    expect(await rowsDigest(c.db.pool, 'true')).toEqual(everything);
    await expectDrained(c, { stale: 30_000, recent: 1_000, done, since });

    frozen.child.kill('SIGTERM');
    other.child.kill('SIGTERM');
    expect(await frozen.exited, frozen.output()).toBe(0);
    expect(await other.exited, other.output()).toBe(0);
    expect(await c.lockKeys()).toEqual([]);
    expect(await rowsDigest(c.db.pool, 'true')).toEqual(everything);
  }, 300_000);
});
