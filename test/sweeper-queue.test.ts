import { setTimeout as sleep } from 'node:timers/promises';
import type { Job, JobType } from 'bullmq';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { type Config, loadConfig } from '../src/config.ts';
import { silentLogger } from '../src/log.ts';
import { connectProducer } from '../src/queue/connection.ts';
import { currentRunKey } from '../src/queue/current-run.ts';
import { newRunId, runJobId } from '../src/queue/job-ids.ts';
import { JobName, type PartitionData, SchedulerId, type StartedTick } from '../src/queue/jobs.ts';
import { requestSweep, waitForSweep } from '../src/queue/request-sweep.ts';
import { addRunFlow } from '../src/queue/run-flow.ts';
import {
  closeSweepQueue,
  createSweepQueue,
  partitionJobOptions,
  type SweepQueue,
} from '../src/queue/sweep-queue.ts';
import type { RedisClient } from '../src/redis-client.ts';
import { readRecentRunsFromRedis } from '../src/run-history/redis.ts';
import { partitionOf } from '../src/sweep/partitions.ts';
import type { SweepStatus } from '../src/sweep/status.ts';
import { type SweepWorker, startSweepWorker } from '../workers/sweep-worker.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';
import { sweeperEnv } from './support/harness.ts';
import { createTestPrefix, TEST_REDIS_URL } from './support/redis.ts';

/**
 * The sweeper through the queue, with real BullMQ workers in this process (the child-process
 * tests are elsewhere): re-triggers never overlap two sweeps of one partition, a poison row fails
 * only its partition, the partition count can change between runs, time budgets continue at once
 * in the same run, and ticks join an unfinished run.
 */

/**
 * Every sweep activation, as the partition job runs it: sweepPartition is called after the
 * partition lock is taken and returns before it is released, so its [start, end] is the interval
 * the sweep held the partition. Recorded by wrapping the real function.
 */
type Held = {
  partition: number;
  partitions: number;
  start: number;
  end: number;
  finalized: number;
};
const recorded = vi.hoisted(() => ({ sweeps: [] as Held[] }));
vi.mock('../src/sweep/sweep-partition.ts', async (importOriginal) => {
  const real = await importOriginal<typeof import('../src/sweep/sweep-partition.ts')>();
  return {
    ...real,
    sweepPartition: async (...args: Parameters<typeof real.sweepPartition>) => {
      const start = performance.now();
      const status = await real.sweepPartition(...args);
      recorded.sweeps.push({
        partition: args[1].partition,
        partitions: args[1].partitions,
        start,
        end: performance.now(),
        finalized: status.finalized,
      });
      return status;
    },
  };
});

const HOUR = 3_600_000;
let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase('sweeper_queue');
  // Every UPDATE of audit_log is logged with its transaction and the database clock, so a row
  // written twice, or a chunk of one partition running alongside another, cannot hide.
  await db.pool.query(`
    CREATE TABLE test_updates (
      id uuid NOT NULL, result_kind text, txid bigint NOT NULL, began timestamptz NOT NULL,
      at timestamptz NOT NULL);
    CREATE FUNCTION test_log_updates() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      INSERT INTO test_updates
        VALUES (NEW.id, NEW.result_kind::text, txid_current(), now(), clock_timestamp());
      RETURN NEW;
    END $$;
    CREATE TRIGGER test_log_updates AFTER UPDATE ON audit_log
      FOR EACH ROW EXECUTE FUNCTION test_log_updates();`);
});

afterAll(async () => {
  await db?.drop();
});

/** What one test started; afterEach closes all of it. */
type Harness = {
  prefix: string;
  cleanup: () => Promise<void>;
  producer: RedisClient;
  sq: SweepQueue;
  config: Config;
  workers: SweepWorker[];
};
let harnesses: Harness[] = [];

afterEach(async () => {
  for (const h of harnesses.reverse()) {
    await Promise.allSettled(h.workers.map((w) => w.close()));
    await closeSweepQueue(h.sq);
    h.producer.disconnect();
    await h.cleanup();
  }
  harnesses = [];
  recorded.sweeps.length = 0;
  await db.pool.query('DROP TRIGGER IF EXISTS test_poison ON audit_log');
  await db.pool.query('DROP SEQUENCE IF EXISTS test_poison_seq');
  await db.pool.query('TRUNCATE audit_log, test_updates');
});

function configFor(prefix: string, env: Record<string, string>): Config {
  // Only the tests' triggers sweep: the schedule's first tick is waited out (see start).
  return loadConfig(sweeperEnv({ databaseUrl: db.url, prefix }, { LOG_LEVEL: 'silent', ...env }));
}

/**
 * Starts `workers` in-process workers on a fresh prefix (or the given one), removes the schedule
 * they upserted and waits until its first tick is done, so that the test's triggers are the
 * only ones.
 */
async function start(
  workers: number,
  env: Record<string, string>,
  existing?: { prefix: string },
): Promise<Harness> {
  const own = existing ? { prefix: existing.prefix, cleanup: async () => {} } : null;
  const { prefix, cleanup } = own ?? createTestPrefix('sweeper-queue');
  const config = configFor(prefix, env);
  const producer = await connectProducer(config, silentLogger);
  const sq = createSweepQueue(producer, config.QUEUE_PREFIX);
  const h: Harness = { prefix, cleanup, producer, sq, config, workers: [] };
  harnesses.push(h);
  for (let i = 0; i < workers; i++) h.workers.push(await startSweepWorker(config, silentLogger));
  await sq.queue.removeJobScheduler(SchedulerId.sweep);
  await waitIdle(sq);
  return h;
}

/** Waits until both queues have nothing waiting, running, delayed (retries) or awaiting children. */
async function waitIdle(sq: SweepQueue): Promise<void> {
  const busy: JobType[] = ['waiting', 'active', 'delayed', 'waiting-children', 'prioritized'];
  const idle = Object.fromEntries(busy.map((state) => [state, 0]));
  await expect
    .poll(
      async () => ({
        runs: await sq.queue.getJobCounts(...busy),
        partitions: await sq.partitions.getJobCounts(...busy),
      }),
      { interval: 100 },
    )
    .toEqual({ runs: idle, partitions: idle });
}

/** A tick job's result once it has run (it starts or joins a run). */
async function tickResult(sq: SweepQueue, id: string): Promise<StartedTick> {
  await expect.poll(() => sq.queue.getJobState(id), { interval: 50 }).toBe('completed');
  return (await sq.queue.getJob(id))?.returnvalue as StartedTick;
}

/** `count` rows at once: incomplete ones started `ageMs` ago or earlier, or completed ones. */
async function insertMany(o: {
  count: number;
  ageMs: number;
  tag: string;
  completed?: boolean;
}): Promise<void> {
  await db.pool.query(
    `INSERT INTO audit_log (id, time_started, request_id, request_uri, operation_id, source_ip,
       actor_kind, time_completed, result_kind, http_status_code)
     SELECT gen_random_uuid(), now() - make_interval(secs => ($2::float8 + g) / 1000),
            $4 || '-' || g, '/v1/instances', 'instance_list', '198.51.100.1', 'unauthenticated',
            CASE WHEN $3 THEN now() - make_interval(secs => ($2::float8 + g) / 2000) END,
            CASE WHEN $3 THEN 'success'::audit_log_result_kind END,
            CASE WHEN $3 THEN 200 END
       FROM generate_series(1, $1::int) AS g`,
    [o.count, o.ageMs, o.completed ?? false, o.tag],
  );
}

/** Per tag: rows, incomplete rows, timed-out rows. */
async function tally(tag: string) {
  const { rows } = await db.pool.query(
    `SELECT count(*)::int AS total,
            count(*) FILTER (WHERE time_completed IS NULL)::int AS incomplete,
            count(*) FILTER (WHERE result_kind = 'timeout')::int AS timeout
       FROM audit_log WHERE request_id LIKE $1 || '-%'`,
    [tag],
  );
  return rows[0] as { total: number; incomplete: number; timeout: number };
}

/** A digest of every column of the tag's rows: equal means unchanged. */
async function digest(tag: string): Promise<string> {
  const { rows } = await db.pool.query(
    `SELECT md5(string_agg(a::text, '|' ORDER BY a.id)) AS d FROM audit_log a
      WHERE request_id LIKE $1 || '-%'`,
    [tag],
  );
  return rows[0].d;
}

/** Rows updated more than once, and rows of a tag never updated or updated to something else. */
async function updateAnomalies(staleTag: string) {
  const { rows } = await db.pool.query(
    `SELECT
       (SELECT count(*)::int FROM (SELECT id FROM test_updates GROUP BY id HAVING count(*) > 1) d)
         AS twice,
       (SELECT count(*)::int FROM audit_log a WHERE request_id LIKE $1 || '-%'
          AND NOT EXISTS (SELECT 1 FROM test_updates u WHERE u.id = a.id AND u.result_kind = 'timeout'))
         AS never,
       (SELECT count(*)::int FROM test_updates u JOIN audit_log a USING (id)
          WHERE a.request_id NOT LIKE $1 || '-%') AS others`,
    [staleTag],
  );
  return rows[0] as { twice: number; never: number; others: number };
}

/** Asserts that no two recorded intervals of the same partition overlap; returns how many. */
function expectNoOverlap<T extends { key: string; start: number; end: number }>(intervals: T[]) {
  const byKey = new Map<string, T[]>();
  for (const i of intervals) byKey.set(i.key, [...(byKey.get(i.key) ?? []), i]);
  for (const [key, list] of byKey) {
    const sorted = [...list].sort((a, b) => a.start - b.start);
    for (let i = 1; i < sorted.length; i++) {
      const prev = sorted[i - 1] as T;
      const cur = sorted[i] as T;
      expect(
        cur.start >= prev.end,
        `partition ${key}: [${prev.start}, ${prev.end}] overlaps [${cur.start}, ${cur.end}]`,
      ).toBe(true);
    }
  }
  return byKey.size;
}

async function counterValue(workers: SweepWorker[], name: 'lockContention') {
  let total = 0;
  for (const w of workers) {
    const metric = await w.metrics[name].get();
    total += metric.values.reduce((n, v) => n + v.value, 0);
  }
  return total;
}

describe('sweeps through the queue', () => {
  it('100 concurrent re-triggers, "Run now" ticks and duplicated partition jobs never overlap two sweeps of one partition; every stale row is timed out once', async () => {
    const PARTITIONS = 4;
    const h = await start(3, {
      SWEEP_PARTITIONS: String(PARTITIONS),
      SWEEP_CONCURRENCY: '4',
      SWEEP_CHUNK_SIZE: '100',
      SWEEP_TIME_BUDGET: '250ms',
      // The partition lock is what is tested: every duplicate may run at once, as with the
      // fleet-wide stream cap off (with it, at most 2 sweeps run and they rarely meet).
      SWEEP_MAX_STREAMS: 'off',
    });
    const { sq } = h;
    await insertMany({ count: 40_000, ageMs: 2 * HOUR, tag: 'stale' });
    await insertMany({ count: 2_000, ageMs: 60_000, tag: 'recent' });
    await insertMany({ count: 5_000, ageMs: 10 * HOUR, tag: 'done', completed: true });
    const doneBefore = await digest('done');
    const recentBefore = await digest('recent');

    // The backlog is being swept...
    const first = await requestSweep(sq);
    const { runId } = await tickResult(sq, first);
    while ((await tally('stale')).timeout === 0) await sleep(20);

    // ...when everyone re-triggers at once.
    const operatorCopies = Array.from({ length: 3 * PARTITIONS }, (_, i) => i % PARTITIONS);
    await Promise.all([
      ...Array.from({ length: 100 }, () => requestSweep(sq)),
      // Bull Board's "Run now": a plain tick, no deduplication.
      ...Array.from({ length: 20 }, () =>
        sq.queue.add(JobName.tick, { trigger: 'manual' }, { removeOnComplete: 1_000 }),
      ),
      // An operator duplicating partition jobs: same data as the run's, no parent, new ids.
      ...operatorCopies.map((partition, i) =>
        sq.partitions.add(
          JobName.partition,
          { runId, partition, partitions: PARTITIONS, continuation: 0 } satisfies PartitionData,
          { ...partitionJobOptions(h.config), jobId: `copy${i}` },
        ),
      ),
      // ...and the same with data of a run of its own.
      ...operatorCopies.map((partition, i) =>
        sq.partitions.add(
          JobName.partition,
          { runId: `op${i}`, partition, partitions: PARTITIONS, continuation: 0 },
          partitionJobOptions(h.config),
        ),
      ),
    ]);
    await waitIdle(sq);
    // Nothing is left for a later tick: whoever held a partition last drained it or continued.
    expect((await tally('stale')).incomplete).toBe(0);

    // Every sweep activation of a partition held it alone.
    const sweeps = recorded.sweeps;
    expect(sweeps.every((s) => s.partitions === PARTITIONS)).toBe(true);
    expectNoOverlap(sweeps.map((s) => ({ ...s, key: String(s.partition) })));
    expect(sweeps.reduce((n, s) => n + s.finalized, 0)).toBe(40_000);
    // The lock was really contended: jobs found their partition taken and did nothing.
    expect(await counterValue(h.workers, 'lockContention')).toBeGreaterThan(0);

    // The database's own record agrees: no two chunk transactions of one partition overlapped
    // (each from its start, now(), to its last row written).
    const { rows } = await db.pool.query(
      `SELECT txid, array_agg(DISTINCT id::text) AS ids,
              extract(epoch FROM min(began)) * 1e6 AS start, extract(epoch FROM max(at)) * 1e6 AS end
         FROM test_updates GROUP BY txid`,
    );
    const chunks = rows.map((r) => {
      const partitions = new Set((r.ids as string[]).map((id) => partitionOf(id, PARTITIONS)));
      expect(partitions.size, `transaction ${r.txid} spans partitions`).toBe(1);
      return { key: String([...partitions][0]), start: Number(r.start), end: Number(r.end) };
    });
    expect(expectNoOverlap(chunks)).toBe(PARTITIONS);

    expect(await tally('stale')).toEqual({ total: 40_000, incomplete: 0, timeout: 40_000 });
    expect(await updateAnomalies('stale')).toEqual({ twice: 0, never: 0, others: 0 });
    expect(await digest('recent')).toBe(recentBefore);
    expect(await digest('done')).toBe(doneBefore);
    // 100 deduplicated requests and 20 plain ticks joined runs; they did not start 120 of them.
    const runs = await readRecentRunsFromRedis(sq, h.producer, 500);
    expect(runs.length).toBeLessThanOrEqual(3);
    expect(runs.every((r) => r.failedPartitions.length === 0)).toBe(true);
  });

  it('a poison row fails its partition visibly after its retries; the other partitions finish', async () => {
    const PARTITIONS = 4;
    const h = await start(2, {
      SWEEP_PARTITIONS: String(PARTITIONS),
      SWEEP_CONCURRENCY: '3',
      SWEEP_CHUNK_SIZE: '50',
      SWEEP_ATTEMPTS: '2',
    });
    await insertMany({ count: 4_000, ageMs: 2 * HOUR, tag: 'stale' });
    const { rows } = await db.pool.query(
      `SELECT id FROM audit_log WHERE request_id LIKE 'stale-%' ORDER BY random() LIMIT 1`,
    );
    const poison: string = rows[0].id;
    const bad = partitionOf(poison, PARTITIONS);
    await db.pool.query(`
      CREATE OR REPLACE FUNCTION test_poison() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.id = '${poison}' THEN RAISE EXCEPTION 'cannot finalize %', NEW.id; END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER test_poison BEFORE UPDATE ON audit_log
        FOR EACH ROW EXECUTE FUNCTION test_poison();`);

    const tick = await requestSweep(h.sq);
    const summary = await waitForSweep(h.sq, tick, {
      redisUrl: TEST_REDIS_URL,
      timeoutMs: 90_000,
      logger: silentLogger,
    });
    expect(summary.failedPartitions).toHaveLength(1);
    expect(summary.failedPartitions[0]?.partition).toBe(bad);
    expect(summary.failedPartitions[0]?.error).toContain(`cannot finalize ${poison}`);
    expect(summary.skippedPartitions).toEqual([]);

    const failedJob = await h.sq.partitions.getJob(`${summary.runId}-p${bad}`);
    expect(await failedJob?.getState()).toBe('failed');
    expect(failedJob?.attemptsMade).toBe(2);
    expect(failedJob?.failedReason).toContain(`cannot finalize ${poison}`);
    const failed = await h.sq.partitions.getFailed();
    expect(failed.map((j) => j.id)).toEqual([`${summary.runId}-p${bad}`]);
    // The run itself completed, in the runs' queue, apart from its partition jobs.
    expect(await h.sq.queue.getFailedCount()).toBe(0);
    expect(await h.sq.queue.getJobState(runJobId(summary.runId))).toBe('completed');

    // Every other partition's stale rows are timed out; the poison row is still incomplete.
    const { rows: left } = await db.pool.query(
      `SELECT id FROM audit_log WHERE time_completed IS NULL AND request_id LIKE 'stale-%'`,
    );
    const leftIds = left.map((r) => r.id as string);
    expect(leftIds).toContain(poison);
    expect(leftIds.every((id) => partitionOf(id, PARTITIONS) === bad)).toBe(true);
    const { rows: done } = await db.pool.query(
      `SELECT count(*)::int AS n FROM audit_log WHERE result_kind = 'timeout'`,
    );
    expect(summary.finalized).toBe(done[0].n);
    expect(done[0].n).toBe(4_000 - leftIds.length);
    for (let p = 0; p < PARTITIONS; p++) {
      if (p === bad) continue;
      const job = await h.sq.partitions.getJob(`${summary.runId}-p${p}`);
      expect(await job?.getState()).toBe('completed');
      expect((job?.returnvalue as SweepStatus | undefined)?.drained).toBe(true);
    }
    expect(await updateAnomalies('stale')).toMatchObject({ twice: 0, others: 0 });
  });

  it('a partition that fails once after committing chunks is retried; the run counts every row', async () => {
    const PARTITIONS = 2;
    const h = await start(1, {
      SWEEP_PARTITIONS: String(PARTITIONS),
      SWEEP_CHUNK_SIZE: '20',
      SWEEP_ATTEMPTS: '2',
    });
    await insertMany({ count: 1_000, ageMs: 2 * HOUR, tag: 'stale' });
    // The row in the middle of a partition fails only the first time (a sequence is not rolled
    // back with the failed chunk): the first attempt commits some chunks, then fails.
    const { rows } = await db.pool.query(
      `SELECT id FROM audit_log WHERE request_id LIKE 'stale-%' ORDER BY id OFFSET 250 LIMIT 1`,
    );
    const flaky: string = rows[0].id;
    const bad = partitionOf(flaky, PARTITIONS);
    await db.pool.query(`
      CREATE SEQUENCE IF NOT EXISTS test_poison_seq;
      CREATE OR REPLACE FUNCTION test_poison() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.id = '${flaky}' AND nextval('test_poison_seq') = 1 THEN
          RAISE EXCEPTION 'transient failure at %', NEW.id;
        END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER test_poison BEFORE UPDATE ON audit_log
        FOR EACH ROW EXECUTE FUNCTION test_poison();`);

    const summary = await waitForSweep(h.sq, await requestSweep(h.sq), {
      redisUrl: TEST_REDIS_URL,
      timeoutMs: 90_000,
      logger: silentLogger,
    });
    expect(summary).toMatchObject({ finalized: 1_000, failedPartitions: [] });
    const job = await h.sq.partitions.getJob(`${summary.runId}-p${bad}`);
    expect(job?.attemptsMade).toBe(2);
    const { rows: inPartition } = await db.pool.query('SELECT id FROM audit_log');
    const expected = inPartition.filter((r) => partitionOf(r.id, PARTITIONS) === bad).length;
    // The job's status counts what both attempts timed out: more than the last attempt's
    // chunks of 20 could hold.
    const status = job?.returnvalue as SweepStatus | undefined;
    expect(status?.finalized).toBe(expected);
    expect(status?.finalized).toBeGreaterThan((status?.chunks ?? Number.POSITIVE_INFINITY) * 20);
    expect(await updateAnomalies('stale')).toEqual({ twice: 0, never: 0, others: 0 });
  });

  it('the partition count can change between runs: everything is finalized, nothing twice', async () => {
    await insertMany({ count: 2_000, ageMs: 60_000, tag: 'recent' });
    await insertMany({ count: 2_000, ageMs: 10 * HOUR, tag: 'done', completed: true });
    const doneBefore = await digest('done');
    const env = { SWEEP_CHUNK_SIZE: '100', SWEEP_CONCURRENCY: '4' };
    const sweep = async (h: Harness) =>
      waitForSweep(h.sq, await requestSweep(h.sq), {
        redisUrl: TEST_REDIS_URL,
        timeoutMs: 90_000,
        logger: silentLogger,
      });

    // Rows are added after each start, when the schedule's first tick is done.
    const four = await start(2, { ...env, SWEEP_PARTITIONS: '4' });
    await insertMany({ count: 3_000, ageMs: 2 * HOUR, tag: 'stale-a' });
    const run4 = await sweep(four);
    expect(run4).toMatchObject({ partitions: 4, finalized: 3_000, failedPartitions: [] });
    await Promise.all(four.workers.map((w) => w.close()));
    four.workers = [];

    // Redeployed with 7 partitions, on the same queue.
    const seven = await start(2, { ...env, SWEEP_PARTITIONS: '7' }, four);
    await insertMany({ count: 3_000, ageMs: 3 * HOUR, tag: 'stale-b' });
    const run7 = await sweep(seven);
    expect(run7).toMatchObject({ partitions: 7, finalized: 3_000, failedPartitions: [] });

    // A rolling deploy: workers of both counts at once, each adding runs of its own count.
    const mixed = await start(1, { ...env, SWEEP_PARTITIONS: '4' }, four);
    await insertMany({ count: 6_000, ageMs: 4 * HOUR, tag: 'stale-c' });
    await Promise.all([
      ...Array.from({ length: 4 }, (_, partition) =>
        mixed.sq.partitions.add(JobName.partition, {
          runId: 'old',
          partition,
          partitions: 4,
          continuation: 0,
        }),
      ),
      ...Array.from({ length: 7 }, (_, partition) =>
        seven.sq.partitions.add(JobName.partition, {
          runId: 'new',
          partition,
          partitions: 7,
          continuation: 0,
        }),
      ),
    ]);
    await waitIdle(seven.sq);
    const { rows } = await db.pool.query(
      `SELECT count(*)::int AS n FROM audit_log WHERE time_completed IS NULL
          AND request_id LIKE 'stale-c-%'`,
    );
    // Partition i of 4 and partition i of 7 share a lock key although their ranges differ, so
    // a job may be skipped and leave rows to the next run; the next run takes them.
    if (rows[0].n > 0) await sweep(seven);

    for (const tag of ['stale-a', 'stale-b', 'stale-c']) {
      const t = await tally(tag);
      expect(t.incomplete, tag).toBe(0);
      expect(t.timeout, tag).toBe(t.total);
    }
    const { rows: anomalies } = await db.pool.query(
      `SELECT
         (SELECT count(*)::int FROM (SELECT id FROM test_updates GROUP BY id HAVING count(*) > 1) d)
           AS twice,
         (SELECT count(*)::int FROM test_updates u JOIN audit_log a USING (id)
            WHERE a.request_id NOT LIKE 'stale-%') AS others,
         (SELECT count(*)::int FROM test_updates) AS updates`,
    );
    expect(anomalies[0]).toEqual({ twice: 0, others: 0, updates: 12_000 });
    expect((await tally('recent')).incomplete).toBe(2_000);
    expect(await digest('done')).toBe(doneBefore);
  });

  it('a spent time budget continues at once in continuation jobs of the same run', async () => {
    const h = await start(1, {
      SWEEP_PARTITIONS: '2',
      SWEEP_CONCURRENCY: '2',
      SWEEP_CHUNK_SIZE: '10',
      SWEEP_TIME_BUDGET: '100ms',
    });
    await insertMany({ count: 6_000, ageMs: 2 * HOUR, tag: 'stale' });
    const summary = await waitForSweep(h.sq, await requestSweep(h.sq), {
      redisUrl: TEST_REDIS_URL,
      timeoutMs: 90_000,
      logger: silentLogger,
    });
    expect(summary).toMatchObject({
      partitions: 2,
      finalized: 6_000,
      failedPartitions: [],
      skippedPartitions: [],
    });
    expect((await tally('stale')).incomplete).toBe(0);

    const jobs = (await h.sq.partitions.getJobs(['completed'], 0, -1)).filter(
      (j) => j.name === JobName.partition && j.data.runId === summary.runId,
    ) as Job<PartitionData, SweepStatus>[];
    let chunks = 0;
    for (const partition of [0, 1]) {
      const chain = jobs
        .filter((j) => j.data.partition === partition)
        .sort((a, b) => a.data.continuation - b.data.continuation);
      // The first job and at least one continuation, numbered without gaps, all in this run.
      expect(chain.length).toBeGreaterThan(1);
      expect(chain.map((j) => j.id)).toEqual(
        chain.map((_, c) => `${summary.runId}-p${partition}${c ? `-c${c}` : ''}`),
      );
      for (const [c, j] of chain.entries()) {
        expect(j.parentKey).toBe(`${h.prefix}:audit-sweep:${runJobId(summary.runId)}`);
        expect(j.opts.delay ?? 0).toBe(0);
        // Every job but the last ran out of budget; the last drained its partition.
        expect(j.returnvalue.drained).toBe(c === chain.length - 1);
        chunks += j.returnvalue.chunks;
      }
    }
    expect(jobs.reduce((n, j) => n + j.returnvalue.finalized, 0)).toBe(6_000);
    expect(summary.chunks).toBe(chunks);
    expect(await updateAnomalies('stale')).toEqual({ twice: 0, never: 0, others: 0 });
  });

  it('ticks join an unfinished run: two requests while a run is under way make one run', async () => {
    // Enough slots for the ticks while both partition jobs wait on the table lock.
    const h = await start(1, { SWEEP_PARTITIONS: '2', SWEEP_CONCURRENCY: '4' });
    const earlierRuns = await readRecentRunsFromRedis(h.sq, h.producer);
    await insertMany({ count: 100, ageMs: 2 * HOUR, tag: 'stale' });
    // Hold the run open: its chunks wait for this table lock.
    const blocker = await db.pool.connect();
    let summaryRunId: string;
    try {
      await blocker.query('BEGIN');
      await blocker.query('LOCK TABLE audit_log IN EXCLUSIVE MODE');
      const firstTick = await requestSweep(h.sq);
      const first = await tickResult(h.sq, firstTick);
      expect(first.joined).toBeUndefined();
      expect(first.partitions).toBe(2);

      const secondTick = await requestSweep(h.sq);
      expect(secondTick).not.toBe(firstTick);
      const second = await tickResult(h.sq, secondTick);
      expect(second).toEqual({ runId: first.runId, partitions: 2, joined: true });
      // Bull Board's "Run now" (a plain tick) joins it too.
      const runNow = await h.sq.queue.add(JobName.tick, { trigger: 'manual' });
      expect(await tickResult(h.sq, runNow.id as string)).toMatchObject({
        runId: first.runId,
        joined: true,
      });
      expect(await (await h.sq.queue.getJob(runJobId(first.runId)))?.getState()).toBe(
        'waiting-children',
      );
      await blocker.query('ROLLBACK');

      const summary = await waitForSweep(h.sq, secondTick, {
        redisUrl: TEST_REDIS_URL,
        timeoutMs: 90_000,
        logger: silentLogger,
      });
      expect(summary).toMatchObject({ runId: first.runId, finalized: 100, failedPartitions: [] });
      summaryRunId = summary.runId;
    } finally {
      await blocker.query('ROLLBACK').catch(() => {});
      blocker.release();
    }
    await waitIdle(h.sq);
    expect((await readRecentRunsFromRedis(h.sq, h.producer)).map((r) => r.runId)).toEqual([
      summaryRunId,
      ...earlierRuns.map((r) => r.runId),
    ]);

    // Once it has finished, the next request starts a new run.
    const next = await tickResult(h.sq, await requestSweep(h.sq));
    expect(next.joined).toBeUndefined();
    expect(next.runId).not.toBe(summaryRunId);
  });

  it('a tick that meets a run claimed but not yet added waits for its flow, so the run it names exists', async () => {
    // The gap between a claim and its flow (the claimer reads PostgreSQL in between): a
    // "Sweep now" taken beside a worker's first scheduled tick met it, and the bench found no
    // job for the run its tick named.
    const h = await start(1, { SWEEP_PARTITIONS: '2' });
    await insertMany({ count: 50, ageMs: 2 * HOUR, tag: 'stale' });
    const runId = newRunId(Date.now(), 'c1a1c1a1');
    await h.producer.set(currentRunKey(h.sq), runId);
    const tick = await requestSweep(h.sq);
    await expect.poll(() => h.sq.queue.getJobState(tick), { interval: 50 }).toBe('active');
    await sleep(500);
    expect(await h.sq.queue.getJobState(tick)).toBe('active');

    // Held open by a table lock, so that it is still under way when the tick looks again.
    const blocker = await db.pool.connect();
    try {
      await blocker.query('BEGIN');
      await blocker.query('LOCK TABLE audit_log IN EXCLUSIVE MODE');
      await addRunFlow(h.sq, { runId, trigger: 'manual', partitions: 2 }, h.config);
      expect(await tickResult(h.sq, tick)).toEqual({ runId, partitions: 2, joined: true });
    } finally {
      await blocker.query('ROLLBACK');
      blocker.release();
    }
    const summary = await waitForSweep(h.sq, tick, {
      redisUrl: TEST_REDIS_URL,
      timeoutMs: 90_000,
      logger: silentLogger,
    });
    expect(summary).toMatchObject({ runId, finalized: 50, failedPartitions: [] });

    // A claim whose claimer died before adding its flow is taken over once its grace is over.
    const dead = newRunId(Date.now() - 61_000, 'dead0000');
    await h.producer.set(currentRunKey(h.sq), dead);
    const next = await tickResult(h.sq, await requestSweep(h.sq));
    expect(next.joined).toBeUndefined();
    expect(next.runId).not.toBe(dead);
    expect(await h.sq.queue.getJob(runJobId(next.runId))).toBeDefined();
  });
});
