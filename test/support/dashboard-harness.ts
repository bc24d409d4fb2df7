import { vi } from 'vitest';
import { startDashboardService } from '../../src/cli/dashboard.ts';
import { type Config, loadConfig } from '../../src/config.ts';
import { silentLogger } from '../../src/log.ts';
import { connectProducer } from '../../src/queue/connection.ts';
import { closeSweepQueue, createSweepQueue, type SweepQueue } from '../../src/queue/sweep-queue.ts';
import type { RedisClient } from '../../src/redis-client.ts';
import { readRecentRunsFromRedis } from '../../src/run-history/redis.ts';
import { AuditLogStore } from '../../src/store/store.ts';
import type { NewEntry } from '../../src/store/types.ts';
import { type SweepWorker, startSweepWorker } from '../../workers/sweep-worker.ts';
import { createTestDatabase, type TestDatabase } from './db.ts';
import { captureLogger } from './logs.ts';
import { createTestPrefix, TEST_REDIS_URL } from './redis.ts';

export const USER = 'operator';
export const PASSWORD = 'correct horse battery staple';

export const basic = (user: string, password: string) =>
  `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
export const AUTH = basic(USER, PASSWORD);

/**
 * A dashboard served as `audit-sweeper dashboard` serves it, on a free port, over this test
 * file's own database and Redis prefix; workers started in the same process on the same
 * settings. `redis` and `sq` are the test's own connection to the same queues.
 */
export type Dashboard = {
  /** http://127.0.0.1:port — the base path is not included. */
  origin: string;
  base: string;
  config: Config;
  env: Record<string, string>;
  db: TestDatabase;
  redis: RedisClient;
  sq: SweepQueue;
  store: AuditLogStore;
  /** Log lines (JSON) the dashboard wrote. */
  logs: string[];
  /** fetch of `${origin}${base}${path}` with the right credentials unless `headers` says otherwise. */
  get: (path: string, init?: RequestInit) => Promise<Response>;
  startWorker: (env?: Record<string, string>) => Promise<SweepWorker>;
  close: () => Promise<void>;
};

export async function startDashboard(
  label: string,
  env: Record<string, string> = {},
  /** Applied after validation: only for showing what a value the settings refuse would do. */
  unchecked: Partial<Config> = {},
): Promise<Dashboard> {
  const db = await createTestDatabase(label);
  const prefix = createTestPrefix(label);
  const baseEnv = {
    DATABASE_URL: db.url,
    REDIS_URL: TEST_REDIS_URL,
    QUEUE_PREFIX: prefix.prefix,
    DASHBOARD_USER: USER,
    DASHBOARD_PASSWORD: PASSWORD,
    RETENTION: 'off',
    LOG_LEVEL: 'info',
    ...env,
  };
  const config = { ...loadConfig(baseEnv), DASHBOARD_PORT: 0, ...unchecked };
  const { logger, lines: logs } = captureLogger();
  const service = await startDashboardService(config, logger);
  const redis = await connectProducer(config, silentLogger);
  const sq = createSweepQueue(redis, config.QUEUE_PREFIX);
  const origin = `http://127.0.0.1:${service.port}`;
  const base = config.DASHBOARD_BASE_PATH;
  const workers: SweepWorker[] = [];
  return {
    origin,
    base,
    config,
    env: baseEnv,
    db,
    redis,
    sq,
    store: new AuditLogStore(db.pool),
    logs,
    get: (path, init = {}) =>
      fetch(`${origin}${base}${path}`, {
        ...init,
        headers: { authorization: AUTH, ...(init.headers as Record<string, string>) },
      }),
    startWorker: async (workerEnv = {}) => {
      const worker = await startSweepWorker(loadConfig({ ...baseEnv, ...workerEnv }), silentLogger);
      workers.push(worker);
      return worker;
    },
    close: async () => {
      await Promise.allSettled(workers.map((w) => w.close()));
      await service.close();
      await closeSweepQueue(sq);
      redis.disconnect();
      await db.drop();
      await prefix.cleanup();
    },
  };
}

/**
 * A worker's scheduler fires its first tick at once; tests that want only their own trigger to
 * sweep wait for that first run to be over before making anything stale.
 */
export async function waitForFirstScheduledRun(d: Dashboard): Promise<void> {
  // vi.waitFor, not expect.poll: this runs in beforeAll hooks too.
  await vi.waitFor(
    async () => {
      if ((await readRecentRunsFromRedis(d.sq, d.redis)).length === 0)
        throw new Error('no run yet');
    },
    { timeout: 90_000, interval: 250 },
  );
}

/**
 * A dashboard with one worker in this process that sweeps only on request: entries are stale
 * after an hour (backdate's two), the schedule is an hour apart, and its first run, which fires
 * at start, is over.
 */
export async function startDashboardWithWorker(
  label: string,
  env: Record<string, string> = {},
): Promise<Dashboard> {
  const d = await startDashboard(label, {
    STALE_AFTER: '1h',
    SWEEP_EVERY: '1h',
    SWEEP_PARTITIONS: '8',
    ...env,
  });
  await d.startWorker();
  await waitForFirstScheduledRun(d);
  return d;
}

export const newEntry = (i: number): NewEntry => ({
  requestId: `req-${i}`,
  requestUri: `/v1/projects/p1/instances/i${i}`,
  operationId: 'instance_create',
  sourceIp: '198.51.100.7',
  userAgent: 'dashboard-test',
  actor: { kind: 'unauthenticated' },
});

/** `n` incomplete entries, written the way applications write them (init, through the store). */
export async function initEntries(store: AuditLogStore, n: number, from = 0): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) ids.push(await store.init(newEntry(from + i)));
  return ids;
}

/** Makes entries look as if they started `hours` ago: stale for any STALE_AFTER below that. */
export async function backdate(d: Dashboard, ids: string[], hours = 2): Promise<void> {
  await d.db.pool.query(
    `UPDATE audit_log SET time_started = now() - make_interval(hours => $2) WHERE id = ANY($1::uuid[])`,
    [ids, hours],
  );
}

/**
 * A stale backlog of `count` entries (numbered from `from`) behind one that can never be
 * finalized: a trigger raises "poisoned row" whenever a sweep sets it to timeout, so its
 * partition fails on every attempt until `curePoison`. Returns the ids, the poisoned one first.
 */
export async function poisonedBacklog(
  d: Dashboard,
  count: number,
  from: number,
): Promise<string[]> {
  await d.db.pool.query(`
    CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF NEW.request_id = 'poison' AND NEW.result_kind = 'timeout' THEN
        RAISE EXCEPTION 'poisoned row';
      END IF;
      RETURN NEW;
    END $$;
    CREATE TRIGGER poison BEFORE UPDATE ON audit_log FOR EACH ROW EXECUTE FUNCTION poison();`);
  const poison = await d.store.init({ ...newEntry(0), requestId: 'poison' });
  const ids = [poison, ...(await initEntries(d.store, count, from))];
  await backdate(d, ids);
  return ids;
}

export async function curePoison(d: Dashboard): Promise<void> {
  await d.db.pool.query('DROP TRIGGER poison ON audit_log');
}
