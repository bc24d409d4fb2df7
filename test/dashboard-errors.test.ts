import type { Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDashboardApp } from '../dashboard/app.ts';
import { closeServer, listen } from '../src/cli/lifecycle.ts';
import { loadConfig } from '../src/config.ts';
import { createPool, type Pool } from '../src/db/pool.ts';
import { createMetrics } from '../src/metrics.ts';
import { connectProducer } from '../src/queue/connection.ts';
import { closeSweepQueue, createSweepQueue, type SweepQueue } from '../src/queue/sweep-queue.ts';
import { AUTH, PASSWORD, USER } from './support/dashboard-harness.ts';
import { ADMIN_URL } from './support/db.ts';
import { captureLogger } from './support/logs.ts';
import { createTestPrefix, TEST_REDIS_URL } from './support/redis.ts';

/**
 * When PostgreSQL fails, the dashboard answers 500 or 503 with a generic message and logs the
 * details: no SQL, no database name, no address reaches the client.
 */

const prefix = createTestPrefix('dashboard_errors');
const servers: { server: Server; pool: Pool; sq: SweepQueue; disconnect: () => void }[] = [];
/** Every server here logs to the same place. */
const { logger, lines: logs } = captureLogger();
let missingDb = '';
let unreachable = '';

async function serve(databaseUrl: string): Promise<string> {
  const config = loadConfig({
    DATABASE_URL: databaseUrl,
    REDIS_URL: TEST_REDIS_URL,
    QUEUE_PREFIX: prefix.prefix,
    DASHBOARD_PASSWORD: PASSWORD,
    DASHBOARD_USER: USER,
  });
  const redis = await connectProducer(config, logger);
  const sq = createSweepQueue(redis, config.QUEUE_PREFIX);
  const pool = createPool(databaseUrl, logger, { max: 2 });
  const metrics = createMetrics();
  const logins = { operator: { user: USER, password: PASSWORD } };
  const app = createDashboardApp({
    config,
    pool,
    apiPool: pool,
    readinessPool: pool,
    redis,
    sq,
    metrics,
    logins,
    logger,
  });
  const server = await listen(app, 0);
  servers.push({ server, pool, sq, disconnect: () => redis.disconnect() });
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('no port');
  return `http://127.0.0.1:${address.port}`;
}

beforeAll(async () => {
  const missing = new URL(ADMIN_URL);
  missing.pathname = '/audit_sweeper_no_such_database';
  missingDb = await serve(missing.toString());
  // Port 1: nothing listens there, so every connection is refused.
  unreachable = await serve('postgres://root@127.0.0.1:1/audit_sweeper');
});

afterAll(async () => {
  for (const s of servers) {
    await closeServer(s.server);
    await closeSweepQueue(s.sq);
    await s.pool.end();
    s.disconnect();
  }
  await prefix.cleanup();
});

const get = (origin: string, path: string) =>
  fetch(`${origin}${path}`, { headers: { authorization: AUTH } });

describe('database failures', () => {
  it('/v1/audit-log: 500 without internals when the database does not exist', async () => {
    const before = logs.length;
    const res = await get(missingDb, '/v1/audit-log?start_time=2024-01-01T00:00:00Z');
    expect(res.status).toBe(500);
    const text = await res.text();
    expect(JSON.parse(text)).toEqual({ error: { message: 'internal error' } });
    expect(text).not.toMatch(/audit_sweeper_no_such_database|SELECT|postgres/i);
    const logged = logs.slice(before).join('');
    expect(logged).toContain('request failed');
    expect(logged).toContain('audit_sweeper_no_such_database');
  });

  it.each([
    [() => missingDb, 'the database does not exist'],
    [() => unreachable, 'connection refused'],
  ])(
    'the overview still answers with the queue side and names the outage, without internals',
    async (origin, kind) => {
      const before = logs.length;
      const res = await get(origin(), '/api/overview');
      expect(res.status).toBe(200);
      const overview = await res.json();
      // The outage is named by kind only: the error's text (addresses, names) stays in the log.
      const said = JSON.stringify([overview.unavailable, overview.health]);
      expect(said).not.toMatch(/audit_sweeper_no_such_database|SELECT|127\.0\.0\.1|ECONNREFUSED/);
      expect(overview.unavailable).toEqual({ postgres: kind });
      expect(overview.backlog).toBeNull();
      expect(overview.health.state).not.toBe('healthy');
      expect(overview.schedulers).toEqual([]);
      const page = await get(origin(), '/');
      expect(page.status).toBe(200);
      const html = await page.text();
      expect(html).toContain('data-testid="outage-postgres"');
      expect(html).not.toMatch(/ECONNREFUSED|does not exist"/);
      expect(logs.slice(before).join('')).toContain('overview: PostgreSQL does not answer');
    },
  );

  it('an outage is logged once, not once per refresh, naming PostgreSQL and DATABASE_URL', async () => {
    // `/` and /api/overview of this dashboard were read above; an open page refreshes every 5 s.
    for (let i = 0; i < 5; i++) expect((await get(unreachable, '/')).status).toBe(200);
    const logged = logs.filter(
      (l) => l.includes('overview: PostgreSQL does not answer') && l.includes('127.0.0.1:1/'),
    );
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatch(/PostgreSQL at 127\.0\.0\.1:1\/audit_sweeper .*DATABASE_URL/);
  });

  it('readiness reports the database and liveness stays up', async () => {
    const ready = await fetch(`${unreachable}/readyz`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toMatchObject({ status: 'unavailable', redis: 'ok' });
    expect((await fetch(`${unreachable}/healthz`)).status).toBe(200);
  });
});
