import type { Server } from 'node:http';
import { createServer, type Socket } from 'node:net';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { createDashboardApp } from '../dashboard/app.ts';
import { closeServer, listen } from '../src/cli/lifecycle.ts';
import { startWorkerService } from '../src/cli/worker.ts';
import { loadConfig } from '../src/config.ts';
import { createPool, createReadinessPool, type Pool } from '../src/db/pool.ts';
import { silentLogger } from '../src/log.ts';
import { createMetrics } from '../src/metrics.ts';
import { connectProducer } from '../src/queue/connection.ts';
import { requestSweep, waitForSweep } from '../src/queue/request-sweep.ts';
import { closeSweepQueue, createSweepQueue } from '../src/queue/sweep-queue.ts';
import { readRecentRunsFromRedis } from '../src/run-history/redis.ts';
import { AUTH, PASSWORD, USER } from './support/dashboard-harness.ts';
import { sweeperEnv } from './support/harness.ts';
import { captureLogger } from './support/logs.ts';
import { TEST_REDIS_URL } from './support/redis.ts';
import { seed } from './support/seed.ts';
import { useTestWorld } from './support/world.ts';

/**
 * /readyz needs no credentials, so anyone who reaches the port can send a flood of them. Each
 * check runs on a connection of its own, one at a time, its answer reused for a second: the
 * flood costs PostgreSQL a query a second, and never queues for the connections that serve
 * the overview or sweep the chunks.
 */

const FLOOD = 300;
const world = useTestWorld('readiness');
const cleanups: (() => Promise<unknown>)[] = [];

afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
});

const flood = (url: string) =>
  Promise.all(Array.from({ length: FLOOD }, () => fetch(url).then((r) => r.status)));

/** A dashboard app over `pool` (the overview's) and `readinessPool`, on a free port. */
async function dashboard(
  pool: Pool,
  readinessPool: Pool,
): Promise<{ origin: string; close: () => Promise<void> }> {
  const config = loadConfig({
    DATABASE_URL: world.db.url,
    REDIS_URL: TEST_REDIS_URL,
    QUEUE_PREFIX: world.prefix,
    DASHBOARD_USER: USER,
    DASHBOARD_PASSWORD: PASSWORD,
  });
  const redis = await connectProducer(config, silentLogger);
  const sq = createSweepQueue(redis, config.QUEUE_PREFIX);
  const app = createDashboardApp({
    config,
    pool,
    apiPool: pool,
    readinessPool,
    redis,
    sq,
    metrics: createMetrics(),
    logins: { operator: { user: USER, password: PASSWORD } },
    logger: silentLogger,
  });
  const server: Server = await listen(app, 0);
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('no port');
  return {
    origin: `http://127.0.0.1:${address.port}`,
    // Its connections end with it: the worker's test counts connections on this database.
    close: async () => {
      await closeServer(server);
      await closeSweepQueue(sq);
      redis.disconnect();
      await Promise.allSettled([pool.end(), readinessPool.end()]);
    },
  };
}

const selectOnes = (spy: { mock: { calls: unknown[][] } }) =>
  spy.mock.calls.filter((c) => c[0] === 'SELECT 1').length;

describe('the dashboard under a flood of /readyz', () => {
  it('checks PostgreSQL once or twice for 300 probes, on its own connection, never the overview pool', async () => {
    const pool = createPool(world.db.url, silentLogger, { max: 2 });
    const readinessPool = createReadinessPool(world.db.url, silentLogger);
    const { origin, close } = await dashboard(pool, readinessPool);
    cleanups.push(close);
    const shared = vi.spyOn(pool, 'query');
    const own = vi.spyOn(readinessPool, 'query');
    const probes = flood(`${origin}/readyz`);
    // The overview answers while the probes are being answered.
    const overview = await fetch(`${origin}/api/overview`, { headers: { authorization: AUTH } });
    expect(overview.status).toBe(200);
    expect((await overview.json()).backlog).toMatchObject({ stale: 0 });
    expect(new Set(await probes)).toEqual(new Set([200]));
    expect(selectOnes(own)).toBeGreaterThanOrEqual(1);
    // One check at a time, its answer reused for a second: a flood cannot multiply it.
    expect(selectOnes(own)).toBeLessThanOrEqual(3);
    expect(selectOnes(shared)).toBe(0);
    await close();
  });

  it('with the check stuck (its database does not answer), the overview is still served', async () => {
    // Takes connections and never answers: every readiness check waits, then fails.
    const held: Socket[] = [];
    const silent = createServer((socket) => void held.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    cleanups.push(async () => {
      for (const s of held) s.destroy();
      silent.close();
    });
    const { port } = silent.address() as { port: number };
    const pool = createPool(world.db.url, silentLogger, { max: 2 });
    const stuck = createReadinessPool(`postgres://root@127.0.0.1:${port}/nowhere`, silentLogger);
    const { origin, close } = await dashboard(pool, stuck);
    cleanups.push(close);
    const probes = flood(`${origin}/readyz`);
    await expect.poll(() => held.length).toBe(1);
    const overview = await fetch(`${origin}/api/overview`, { headers: { authorization: AUTH } });
    expect(overview.status).toBe(200);
    expect((await overview.json()).unavailable.postgres).toBeFalsy();
    expect(new Set(await probes)).toEqual(new Set([503]));
    // One connection attempt for the whole flood.
    expect(held.length).toBe(1);
    await close();
  });
});

describe('a worker under a flood of /readyz', () => {
  it("keeps sweeping, and the probes never run on the chunks' connections", async () => {
    const env = sweeperEnv({ databaseUrl: world.db.url, prefix: world.prefix });
    const config = loadConfig({ ...env, SWEEP_CONCURRENCY: '1', SWEEP_CHUNK_SIZE: '200' });
    const { logger, records } = captureLogger();
    const worker = await startWorkerService(config, logger);
    cleanups.push(() => worker.close());
    const listening = records().find((r) => r.msg === 'probes and metrics listening');
    const url = `http://127.0.0.1:${listening?.port}/readyz`;
    const redis = await connectProducer(config, silentLogger);
    const sq = createSweepQueue(redis, config.QUEUE_PREFIX);
    cleanups.push(async () => {
      await closeSweepQueue(sq);
      redis.disconnect();
    });
    // The worker's scheduler fires a run at start: seeded while it ran, the rows could fall to
    // partitions it had already swept, and the tick below would join that run.
    await expect.poll(async () => (await readRecentRunsFromRedis(sq, redis, 1)).length).toBe(1);
    await seed(world.db.pool, { kind: 'incomplete', count: 20_000, tag: 'flood' });

    const tick = await requestSweep(sq);
    const probes: Promise<number[]>[] = [];
    const sampled: { readiness: number; selectOnWorker: number }[] = [];
    const summary = waitForSweep(sq, tick, {
      redisUrl: config.REDIS_URL,
      timeoutMs: 120_000,
      logger: silentLogger,
    });
    let done = false;
    summary.finally(() => {
      done = true;
    });
    // Floods while the run sweeps, and what PostgreSQL sees of them.
    while (!done) {
      probes.push(flood(url));
      const { rows } = await world.db.pool.query<{ readiness: number; selectOnWorker: number }>(
        `SELECT count(*) FILTER (WHERE application_name = 'audit-sweeper readiness')::int AS readiness,
                count(*) FILTER (WHERE application_name = 'audit-sweeper worker'
                                   AND query = 'SELECT 1')::int AS "selectOnWorker"
           FROM pg_stat_activity WHERE datname = current_database()`,
      );
      sampled.push(rows[0] as { readiness: number; selectOnWorker: number });
      await Promise.race([probes.at(-1), summary.catch(() => {})]);
    }
    const run = await summary;
    expect(run.finalized).toBe(20_000);
    expect(run.failedPartitions).toEqual([]);
    const answers = (await Promise.all(probes)).flat();
    expect(answers.length).toBeGreaterThanOrEqual(FLOOD);
    expect(new Set(answers)).toEqual(new Set([200]));
    // The probes' one connection, and never a probe on the worker's pool.
    expect(Math.max(...sampled.map((s) => s.readiness))).toBeLessThanOrEqual(1);
    expect(sampled.every((s) => s.selectOnWorker === 0)).toBe(true);
  });
});
