import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.ts';
import { silentLogger } from '../src/log.ts';
import { connectProducer, type RedisClient } from '../src/queue/connection.ts';
import { PARTITION_QUEUE, SchedulerId, SWEEP_QUEUE } from '../src/queue/jobs.ts';
import { closeSweepQueue, createSweepQueue, type SweepQueue } from '../src/queue/sweep-queue.ts';
import { readRecentRunsFromRedis } from '../src/run-history/redis.ts';
import { type CliProcess, runCli } from './support/cli.ts';
import { basic } from './support/dashboard-harness.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';
import { isAlive, processFleet } from './support/harness.ts';
import { type PrivateRedisCluster, startPrivateRedisCluster } from './support/redis-cluster.ts';
import { command } from './support/redis-nodes.ts';
import { type PrivateSentinel, startPrivateSentinel } from './support/redis-sentinel.ts';
import { rowsDigest, seed } from './support/seed.ts';

/**
 * The sweeper on highly available Redis, as it runs in production: two real `audit-sweeper
 * worker` processes, `status`, the dashboard, on a private 3-master/3-replica Redis Cluster and
 * on a primary/replica pair under three Sentinels. The primary holding the queue is SIGKILLed in
 * the middle of a drain: its replica takes over, and the drain must finish with every stale row
 * timed out exactly once (a trigger records every finalizing write) and nothing else touched.
 */

const STALE = "request_id LIKE 'stale-%'";
const DONE = "request_id LIKE 'done-%'";
const COUNTS = { done: 440_000, stale: 50_000, recent: 10_000 };
const PASSWORD = 'correct horse battery staple';

/** Every write that finalizes a row, recorded by the database itself. */
const RECORD_FINALIZING_WRITES = `
  CREATE TABLE finalized_log (id uuid NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp());
  CREATE FUNCTION record_finalized() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN INSERT INTO finalized_log (id) VALUES (NEW.id); RETURN NULL; END $$;
  CREATE TRIGGER record_finalized AFTER UPDATE ON audit_log FOR EACH ROW
    WHEN (OLD.time_completed IS NULL AND NEW.time_completed IS NOT NULL)
    EXECUTE FUNCTION record_finalized();
  -- Each sweep statement takes 40 ms longer, so that a drain lasts long enough (10 s or so) for
  -- a failover to happen in its middle on any machine.
  CREATE FUNCTION slow_statement() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN PERFORM pg_sleep(0.04); RETURN NULL; END $$;
  CREATE TRIGGER slow_statement AFTER UPDATE ON audit_log FOR EACH STATEMENT
    EXECUTE FUNCTION slow_statement();`;

type Topology = {
  name: string;
  url: string;
  /** Kills the primary of the queue's keys; resolves once a replica has taken over. */
  failover: (prefix: string) => Promise<{ killedAt: number; promotedAt: number }>;
};

const fleet = processFleet();
const start = (args: string[], env: Record<string, string>) => fleet.start(args, env);
const alive = isAlive;

type Ctx = { db: TestDatabase; sq: SweepQueue; redis: RedisClient; env: Record<string, string> };
let ctx: Ctx | undefined;

/** Where the queues stood: printed when a test fails. */
async function queueState(): Promise<string> {
  if (!ctx) return '';
  const { sq } = ctx;
  const parts = await Promise.all(
    [sq.queue, sq.partitions].map(async (q) => {
      const counts = await q.getJobCounts();
      const active = (await q.getJobs(['active', 'waiting-children'])).map(
        (j) =>
          `${j.id} ${j.name} attempts ${j.attemptsMade} since ${j.processedOn ? new Date(j.processedOn).toISOString() : '-'}`,
      );
      return `--- ${q.name}: ${JSON.stringify(counts)}\n${active.join('\n')}`;
    }),
  ).catch((err) => [String(err)]);
  return parts.join('\n');
}

afterEach(async (context) => {
  await fleet.cleanup(context, queueState);
  if (ctx) {
    await closeSweepQueue(ctx.sq);
    ctx.redis.disconnect();
    await ctx.db.drop();
    ctx = undefined;
  }
});

/** The JSON log lines of a process whose message matches. */
const logged = (p: CliProcess, msg: RegExp) =>
  p
    .output()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { msg: string; level: number })
    .filter((l) => msg.test(l.msg));

async function drain(topology: Topology, label: string, options: { kill: boolean }) {
  const db = await createTestDatabase(label);
  await db.pool.query(RECORD_FINALIZING_WRITES);
  await seed(db.pool, { kind: 'completed', count: COUNTS.done, tag: 'done' });
  await seed(db.pool, { kind: 'incomplete', count: COUNTS.stale, tag: 'stale' });
  await seed(db.pool, { kind: 'incomplete', count: COUNTS.recent, tag: 'recent', ageMs: 0 });
  const done = await rowsDigest(db.pool, DONE);
  const prefix = `{${label}-${Date.now().toString(36)}}`;
  const env = {
    DATABASE_URL: db.url,
    REDIS_URL: topology.url,
    QUEUE_PREFIX: prefix,
    STALE_AFTER: '1h',
    // The schedule drives the drain (its first tick fires at once); later ticks join the run
    // under way or start the next one if it left a partition behind.
    SWEEP_EVERY: '2s',
    SWEEP_CHUNK_SIZE: '200',
    SWEEP_TIME_BUDGET: '1s',
    SWEEP_LOCK_TTL: '4s',
    RETENTION: '90d',
    WORKER_METRICS_PORT: '0',
    DASHBOARD_PORT: '0',
    DASHBOARD_PASSWORD: PASSWORD,
    LOG_LEVEL: 'info',
  };
  const config = loadConfig(env);
  const redis = await connectProducer(config, silentLogger);
  const sq = createSweepQueue(redis, config.QUEUE_PREFIX);
  ctx = { db, sq, redis, env };

  const finalized = async () =>
    (await db.pool.query('SELECT count(*)::int AS n FROM finalized_log')).rows[0].n as number;
  const workers = [start(['worker'], env), start(['worker'], env)];
  await Promise.all(workers.map((w) => w.waitForOutput(/"msg":"sweep worker started"/)));

  let failover:
    | {
        killedAt: number;
        promotedAt: number;
        firstChunkAfterMs: number;
        /** What the two workers logged at warn level or above, by message: for the report. */
        warnings?: Record<string, number>;
      }
    | undefined;
  if (options.kill) {
    // Mid-drain: some rows done, most not.
    await expect.poll(finalized, { interval: 100, timeout: 120_000 }).toBeGreaterThanOrEqual(2_000);
    const { killedAt, promotedAt } = await topology.failover(prefix);
    const leftAtPromotion = COUNTS.stale - (await finalized());
    expect(leftAtPromotion, 'the failover ended before the drain did').toBeGreaterThan(0);
    // The first chunk committed after the promotion (database clock and ours agree on loopback).
    const firstAfter = async () =>
      (
        await db.pool.query(
          'SELECT extract(epoch FROM min(at)) * 1000 AS first FROM finalized_log WHERE at > to_timestamp($1 / 1000.0)',
          [promotedAt],
        )
      ).rows[0].first as number | null;
    await expect.poll(firstAfter, { interval: 100, timeout: 120_000 }).not.toBeNull();
    const first = await firstAfter();
    failover = {
      killedAt,
      promotedAt,
      firstChunkAfterMs: Math.round(Number(first) - killedAt),
    };
  }

  await expect
    .poll(
      async () =>
        (
          await db.pool.query(
            `SELECT count(*)::int AS n FROM audit_log WHERE ${STALE} AND time_completed IS NULL`,
          )
        ).rows[0].n,
      { timeout: 180_000, interval: 1_000 },
    )
    .toBe(0);

  // Exactly once: one finalizing write per stale row, none for any other row.
  const { rows } = await db.pool.query(
    `SELECT count(*)::int AS writes, count(DISTINCT f.id)::int AS rows,
            count(*) FILTER (WHERE a.request_id NOT LIKE 'stale-%')::int AS others,
            count(*) FILTER (WHERE a.result_kind <> 'timeout')::int AS not_timeout
       FROM finalized_log f JOIN audit_log a USING (id)`,
  );
  expect(rows[0]).toEqual({ writes: COUNTS.stale, rows: COUNTS.stale, others: 0, not_timeout: 0 });
  expect(await rowsDigest(db.pool, DONE)).toEqual(done);
  const recentUntouched = await db.pool.query(
    `SELECT count(*)::int AS n FROM audit_log WHERE request_id LIKE 'recent-%' AND time_completed IS NULL`,
  );
  expect(recentUntouched.rows[0].n).toBe(COUNTS.recent);

  // The schedulers survived and still tick: a scheduled run finishes after the drain.
  // Polled: this test's own producer connection may still be reconnecting after the failover
  // (a producer fails fast instead of queueing commands). It must get there: CI once saw it
  // answer "Connection is closed." for good, the race test/redis-sentinel-reconnect.test.ts pins.
  await expect
    .poll(async () => (await sq.queue.getJobSchedulers()).map((s) => s.key).sort())
    .toEqual([SchedulerId.retention, SchedulerId.sweep]);
  const drainedAt = Date.now();
  await expect
    .poll(
      async () =>
        (await readRecentRunsFromRedis(sq, redis)).some(
          (r) => r.trigger === 'schedule' && Date.parse(r.finishedAt) > drainedAt,
        ),
      { timeout: 60_000, interval: 500 },
    )
    .toBe(true);

  // status and the dashboard answer on this topology.
  const status = await runCli(['status', '--json'], { ...env, LOG_LEVEL: 'warn' });
  expect(status.code, status.output).toBe(0);
  const report = JSON.parse(status.output.trim().split('\n').at(-1) ?? '');
  expect(report.backlog.stale).toBe(0);
  expect(report.schedulers.map((s: { id: string }) => s.id).sort()).toEqual(['retention', 'sweep']);
  const dashboard = start(['dashboard'], env);
  const { port } = JSON.parse(await dashboard.waitForOutput(/dashboard listening/));
  const get = (path: string) =>
    fetch(`http://127.0.0.1:${port}${path}`, {
      headers: { authorization: basic('admin', PASSWORD) },
    });
  // The dashboard serves at once and connects to Redis in the background: ready, then asked.
  await expect.poll(async () => (await get('/readyz')).status, { timeout: 30_000 }).toBe(200);
  const overview = await get('/api/overview');
  expect(overview.status).toBe(200);
  const body = await overview.json();
  expect(body.backlog.stale).toBe(0);
  expect(body.recentRuns.length).toBeGreaterThan(0);
  expect((await get('/queues')).status).toBe(200);
  const queues = await (await get('/queues/api/queues')).json();
  expect(queues.queues.map((q: { name: string }) => q.name).sort()).toEqual(
    [PARTITION_QUEUE, SWEEP_QUEUE].sort(),
  );
  expect((await get('/readyz')).status).toBe(200);

  // During the failover each worker logged its Redis trouble once per change of state, not a
  // flood of MOVED / connection errors.
  if (failover)
    failover.warnings = Object.fromEntries(
      workers
        .flatMap((w) => logged(w, /./).filter((l) => l.level >= 40))
        .map((l) => l.msg)
        .reduce((m, msg) => m.set(msg, (m.get(msg) ?? 0) + 1), new Map<string, number>()),
    );
  for (const w of workers) {
    expect(alive(w), 'the worker is still running').toBe(true);
    const down = logged(w, /^Redis connection error/).length;
    expect(down).toBeLessThanOrEqual(options.kill ? 2 : 0);
    expect(logged(w, /worker error/)).toEqual([]);
    expect(w.output()).not.toMatch(/MOVED|READONLY/);
    // Nothing printed outside the JSON log (BullMQ prints errors nobody listens to).
    expect(
      w
        .output()
        .split('\n')
        .filter((l) => l && !l.startsWith('{')),
    ).toEqual([]);
  }
  return failover;
}

const failoverTimes: Record<string, number[]> = { cluster: [], sentinel: [] };
afterAll(() => {
  console.log(
    `failover, kill to first chunk committed after it (ms): ${JSON.stringify(failoverTimes)}`,
  );
});

describe('on a Redis Cluster (3 masters, 3 replicas)', () => {
  let cluster: PrivateRedisCluster;
  let topology: Topology;
  beforeAll(async () => {
    cluster = await startPrivateRedisCluster();
    topology = {
      name: 'cluster',
      url: cluster.url,
      failover: async (prefix) => {
        const slot = Number(
          await command(cluster.nodes[1]?.port ?? 0, ['CLUSTER', 'KEYSLOT', prefix]),
        );
        const { port, killedAt } = await cluster.killMasterOf(slot);
        await cluster.waitForFailover(slot, port);
        return { killedAt, promotedAt: Date.now() };
      },
    };
  }, 120_000);
  afterAll(async () => {
    await cluster?.destroy();
  });

  it('two workers drain 50k stale rows among 500k; schedulers tick; status and the dashboard answer', async () => {
    await drain(topology, 'ha_cluster', { kill: false });
  }, 400_000);

  it('the master of the queue slot SIGKILLed mid-drain: its replica takes over, every stale row is timed out exactly once', async () => {
    const f = await drain(topology, 'ha_cluster_kill', { kill: true });
    failoverTimes.cluster?.push(f?.firstChunkAfterMs ?? -1);
    console.log('cluster failover, worker warnings:', JSON.stringify(f?.warnings));
  }, 400_000);

  it('a plain redis:// URL at a cluster node is refused with one line naming REDIS_URL and redis+cluster://', async () => {
    for (const verb of ['worker', 'status']) {
      const { code, output } = await runCli([verb], {
        REDIS_URL: cluster.nodeUrl(),
        LOG_LEVEL: 'warn',
      });
      expect(code, output).toBe(2);
      const lines = output.trim().split('\n');
      expect(lines, output).toHaveLength(1);
      expect(lines[0]).toMatch(/REDIS_URL .*Redis Cluster.*REDIS_URL=redis\+cluster:\/\//);
    }
  }, 60_000);

  it('a prefix without a hash tag is refused on a cluster', async () => {
    const { code, output } = await runCli(['status'], {
      REDIS_URL: cluster.url,
      QUEUE_PREFIX: 'audit',
    });
    expect(code, output).toBe(2);
    expect(output.trim().split('\n')).toHaveLength(1);
    expect(output).toMatch(/QUEUE_PREFIX.*hash tag/);
  });
});

describe('on Sentinel (a primary, a replica, three sentinels)', () => {
  let sentinel: PrivateSentinel;
  let topology: Topology;
  beforeAll(async () => {
    sentinel = await startPrivateSentinel('audit');
    topology = {
      name: 'sentinel',
      url: sentinel.url,
      failover: async () => {
        const { port, killedAt } = await sentinel.killPrimary();
        await sentinel.waitForNewPrimary(port);
        return { killedAt, promotedAt: Date.now() };
      },
    };
  }, 120_000);
  afterAll(async () => {
    await sentinel?.destroy();
  });

  it('an unknown master name and a plain URL at the replica are refused with one line naming REDIS_URL', async () => {
    const unknown = await runCli(['worker'], {
      REDIS_URL: sentinel.url.replace(/\/audit$/, '/nope'),
      LOG_LEVEL: 'warn',
    });
    expect(unknown.code, unknown.output).toBe(2);
    expect(unknown.output.trim().split('\n')).toHaveLength(1);
    expect(unknown.output).toMatch(/REDIS_URL names master "nope".*monitor: audit/);
    const replicaPort = sentinel.replica.port;
    const replica = await runCli(['status'], {
      REDIS_URL: `redis://127.0.0.1:${replicaPort}`,
      LOG_LEVEL: 'warn',
    });
    expect(replica.code, replica.output).toBe(2);
    expect(replica.output.trim().split('\n')).toHaveLength(1);
    expect(replica.output).toMatch(/REDIS_URL points at a read-only replica/);
  }, 60_000);

  it('the primary SIGKILLed mid-drain: Sentinel promotes the replica, every stale row is timed out exactly once', async () => {
    const f = await drain(topology, 'ha_sentinel_kill', { kill: true });
    failoverTimes.sentinel?.push(f?.firstChunkAfterMs ?? -1);
    console.log('sentinel failover, worker warnings:', JSON.stringify(f?.warnings));
  }, 400_000);
});
