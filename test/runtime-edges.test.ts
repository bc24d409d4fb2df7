import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startDashboardService } from '../src/cli/dashboard.ts';
import { loadConfig } from '../src/config.ts';
import { migrate } from '../src/db/migrate.ts';
import { silentLogger } from '../src/log.ts';
import { type CliProcess, startCli } from './support/cli.ts';
import { AUTH, PASSWORD, USER } from './support/dashboard-harness.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';
import { captureLogger } from './support/logs.ts';
import {
  type PrivatePostgres,
  type PrivateRedis,
  startPrivatePostgres,
  startPrivateRedis,
} from './support/private-servers.ts';
import { createTestPrefix, TEST_REDIS_URL } from './support/redis.ts';

/**
 * What a pod sees when a dependency is away: a worker started during a Redis outage is alive at
 * once (its liveness probe answers) and stops cleanly on SIGTERM whether or not Redis ever
 * answered; the unauthenticated probes never show a driver's error text; /metrics never shows a
 * stack trace, and serves the process's counters even when the database cannot be read.
 * Outages are private servers of this file's own, stopped and started by the test.
 */

const LISTENING = /"msg":"probes and metrics listening"/;
const children = new Set<CliProcess>();

function startWorker(env: Record<string, string>): CliProcess {
  const p = startCli(['worker'], {
    STALE_AFTER: '1h',
    SWEEP_EVERY: '1h',
    RETENTION: 'off',
    WORKER_METRICS_PORT: '0',
    LOG_LEVEL: 'info',
    ...env,
  });
  children.add(p);
  return p;
}

async function probePort(worker: CliProcess): Promise<string> {
  const line = await worker.waitForOutput(LISTENING, 30_000);
  return `http://127.0.0.1:${JSON.parse(line).port}`;
}

async function expectGenericReadiness(res: Response, unavailable: 'postgres' | 'redis') {
  expect(res.status).toBe(503);
  const text = await res.text();
  expect(JSON.parse(text)).toEqual({
    status: 'unavailable',
    postgres: unavailable === 'postgres' ? 'unavailable' : 'ok',
    redis: unavailable === 'redis' ? 'unavailable' : 'ok',
  });
}

afterEach(async (context) => {
  if (context.task.result?.state === 'fail') {
    for (const p of children) console.error(`--- worker output:\n${p.output().slice(-4000)}`);
  }
  for (const p of children) {
    if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
  }
  await Promise.all([...children].map((p) => p.exited));
  children.clear();
});

describe('a worker started while Redis is down', () => {
  let redis: PrivateRedis;
  let db: TestDatabase;
  const prefix = createTestPrefix('edges_redis');

  beforeAll(async () => {
    redis = await startPrivateRedis();
    db = await createTestDatabase('edges_redis');
  });
  afterAll(async () => {
    await redis?.destroy();
    await db?.drop();
    await prefix.cleanup();
  });

  it('serves /healthz at once, reports not ready in generic words, and exits 0 on SIGTERM', async () => {
    await redis.kill();
    const worker = startWorker({ DATABASE_URL: db.url, REDIS_URL: redis.url, QUEUE_PREFIX: '{e}' });
    const origin = await probePort(worker);
    const health = await fetch(`${origin}/healthz`);
    expect(health.status).toBe(200);
    await expectGenericReadiness(await fetch(`${origin}/readyz`), 'redis');
    // The details are in the log, for the operator.
    await worker.waitForOutput(/"dependency":"redis".*"msg":"readiness check failed"/);
    expect(worker.output()).not.toMatch(/"msg":"sweep worker started"/);

    worker.child.kill('SIGTERM');
    expect(await worker.exited).toBe(0);
    expect(worker.output()).toMatch(/"msg":"shut down cleanly"/);
  });

  it('becomes ready when Redis comes back, and still exits 0 on SIGTERM', async () => {
    await redis.kill();
    const worker = startWorker({ DATABASE_URL: db.url, REDIS_URL: redis.url, QUEUE_PREFIX: '{e}' });
    const origin = await probePort(worker);
    expect((await fetch(`${origin}/healthz`)).status).toBe(200);
    await redis.start();
    await worker.waitForOutput(/"msg":"sweep worker started"/);
    await expect.poll(async () => (await fetch(`${origin}/readyz`)).status).toBe(200);
    worker.child.kill('SIGTERM');
    expect(await worker.exited).toBe(0);
  });

  it('a SIGTERM right after start, before anything answered, exits 0', async () => {
    await redis.kill();
    const worker = startWorker({ DATABASE_URL: db.url, REDIS_URL: redis.url, QUEUE_PREFIX: '{e}' });
    await probePort(worker);
    worker.child.kill('SIGTERM');
    expect(await worker.exited).toBe(0);
  });
});

describe('PostgreSQL down', () => {
  let pg: PrivatePostgres;
  let url: string;
  const prefix = createTestPrefix('edges_pg');

  beforeAll(async () => {
    pg = await startPrivatePostgres();
    url = pg.url('audit_sweeper_edges');
    await migrate(url, silentLogger);
  });
  afterAll(async () => {
    await pg?.destroy();
    await prefix.cleanup();
  });

  it("the worker's /metrics serves its counters as Prometheus text, never a stack trace; /readyz is generic", async () => {
    const worker = startWorker({
      DATABASE_URL: url,
      REDIS_URL: TEST_REDIS_URL,
      QUEUE_PREFIX: prefix.prefix,
    });
    const origin = await probePort(worker);
    await worker.waitForOutput(/"msg":"sweep worker started"/);
    await pg.stop('fast');

    const metrics = await fetch(`${origin}/metrics`);
    const text = await metrics.text();
    expect(metrics.status, text).toBe(200);
    expect(metrics.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(text).toMatch(/^audit_sweeper_rows_finalized_total 0$/m);
    expect(text).toMatch(/^audit_sweeper_backlog_rows\{state="stale"\} NaN$/im);
    expect(text).not.toMatch(/<html|<pre|at .*\.ts:\d+|ECONNREFUSED/i);
    await expectGenericReadiness(await fetch(`${origin}/readyz`), 'postgres');
    await worker.waitForOutput(/"msg":"backlog gauges could not be read"/);

    worker.child.kill('SIGTERM');
    expect(await worker.exited).toBe(0);
  });

  it("the dashboard's /metrics serves its counters while the gauges cannot be read", async () => {
    await pg.stop('fast').catch(() => {}); // down already unless run alone
    const config = loadConfig({
      DATABASE_URL: url,
      REDIS_URL: TEST_REDIS_URL,
      QUEUE_PREFIX: prefix.prefix,
      DASHBOARD_USER: USER,
      DASHBOARD_PASSWORD: PASSWORD,
      DASHBOARD_PORT: '0',
    });
    const { logger, lines } = captureLogger();
    const dashboard = await startDashboardService(config, logger);
    dashboard.metrics.rowsFinalized.inc(7);
    try {
      const origin = `http://127.0.0.1:${dashboard.port}`;
      const res = await fetch(`${origin}/metrics`, { headers: { authorization: AUTH } });
      const text = await res.text();
      expect(res.status, text).toBe(200);
      expect(text).toMatch(/^audit_sweeper_rows_finalized_total 7$/m);
      expect(text).toMatch(/^audit_sweeper_oldest_incomplete_age_seconds NaN$/im);

      const ready = await fetch(`${origin}/readyz`);
      await expectGenericReadiness(ready, 'postgres');
      expect(lines.join('\n')).toMatch(
        /"dependency":"postgres","error":"PostgreSQL at [^"]*connect ECONNREFUSED.*readiness check failed/,
      );
    } finally {
      await dashboard.close();
    }
  });
});
