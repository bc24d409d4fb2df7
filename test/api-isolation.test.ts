import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Dashboard, startDashboard } from './support/dashboard-harness.ts';
import { seed } from './support/seed.ts';

/**
 * The audit-log API under more load than it can take does not take the rest of the dashboard
 * down: readiness and the overview keep answering from their own connections, requests beyond
 * what the API admits get 503 with Retry-After at once, and API_STATEMENT_TIMEOUT bounds every
 * API query (here, one stuck behind a lock).
 */

let d: Dashboard;
const WIDE = '/v1/audit-log?start_time=2020-01-01T00:00:00Z';

beforeAll(async () => {
  d = await startDashboard('api_isolation', {
    LIST_SAFETY_MARGIN: '2s',
    API_POOL_SIZE: '2',
    API_MAX_QUEUED: '2',
    API_MAX_WAIT: '200ms',
    API_STATEMENT_TIMEOUT: '1s',
  });
  await seed(d.db.pool, { kind: 'completed', count: 20_000, tag: 'iso' });
  await d.db.pool.query('ANALYZE audit_log');
});

afterAll(async () => {
  await d?.close();
});

type Answer = { status: number; retryAfter: string | null; body: string };
const answer = async (res: Response): Promise<Answer> => ({
  status: res.status,
  retryAfter: res.headers.get('retry-after'),
  body: await res.text(),
});

function expectBusy(a: Answer) {
  expect(a.status, a.body).toBe(503);
  expect(a.retryAfter).toMatch(/^\d+$/);
  expect(JSON.parse(a.body)).toEqual({ error: { message: expect.stringMatching(/retry later/) } });
  expect(a.body).not.toMatch(/SELECT|audit_log|statement|127\.0\.0\.1/i);
}

/** Probes /readyz and /api/overview one after the other until `stop` resolves. */
async function probeUntil(stop: Promise<unknown>) {
  let stopped = false;
  void stop.finally(() => {
    stopped = true;
  });
  const statuses: { path: string; status: number }[] = [];
  while (!stopped) {
    for (const path of ['/readyz', '/api/overview']) {
      statuses.push({ path, status: (await d.get(path)).status });
    }
  }
  return statuses;
}

describe('the audit-log API under load', () => {
  it('a query stuck behind a lock: readiness stays up, the excess is turned away at once, the statement timeout frees the rest', async () => {
    // Another session holds the table: every API query waits for it. The overview reads the
    // table too, so here only readiness is probed; the burst below probes the overview.
    const locker = new pg.Client({ connectionString: d.db.url });
    await locker.connect();
    try {
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE audit_log IN ACCESS EXCLUSIVE MODE');
      // The page-token key is read once per process; read it before the lock matters.
      const requests = Array.from({ length: 10 }, () => d.get(`${WIDE}&limit=10`).then(answer));
      const settled: Answer[] = [];
      for (const r of requests) void r.then((a) => settled.push(a));

      // 2 run (and wait for the lock), 2 wait for a slot for 200 ms, 6 are turned away at once;
      // all 8 answer while the lock is still held.
      await expect
        .poll(() => settled.length, { message: '8 answers while the table is locked' })
        .toBe(8);
      const blocked = await locker.query(
        `SELECT count(*)::int AS n FROM pg_stat_activity
          WHERE application_name = 'audit-sweeper api' AND wait_event_type = 'Lock'`,
      );
      expect(blocked.rows[0].n).toBe(2);
      for (const a of settled) expectBusy(a);

      // Readiness answers from the dashboard's own pool throughout.
      for (let i = 0; i < 5; i++) {
        const ready = await fetch(`${d.origin}/readyz`);
        expect(ready.status).toBe(200);
      }

      // The lock is still held: API_STATEMENT_TIMEOUT (1 s) ends the two queries waiting for it.
      const all = await Promise.all(requests);
      for (const a of all) expectBusy(a);
      const stillHeld = await locker.query(
        `SELECT count(*)::int AS n FROM pg_locks WHERE pid = pg_backend_pid() AND mode = 'AccessExclusiveLock' AND granted`,
      );
      expect(stillHeld.rows[0].n).toBeGreaterThan(0);
      expect(d.logs.join('\n')).toMatch(/canceling statement due to statement timeout/);
    } finally {
      await locker.query('ROLLBACK').catch(() => {});
      await locker.end();
    }

    // The API serves again at once.
    const after = await d.get(`${WIDE}&limit=10`);
    expect(after.status).toBe(200);
    expect((await after.json()).items).toHaveLength(10);
  });

  it('a burst of 200 requests: readiness and the overview answer 200, the API 200 or 503 with Retry-After, never 500', async () => {
    const burst = Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        d.get(`${WIDE}&limit=500&sort=${i % 2 ? 'ascending' : 'descending'}`).then(answer),
      ),
    );
    const probes = await probeUntil(burst);
    const answers = await burst;

    expect(probes.filter((p) => p.status !== 200)).toEqual([]);
    expect(probes.length).toBeGreaterThanOrEqual(2);
    const statuses = new Set(answers.map((a) => a.status));
    expect([...statuses].sort()).toEqual([200, 503]);
    for (const a of answers.filter((x) => x.status === 503)) expectBusy(a);
    for (const a of answers.filter((x) => x.status === 200))
      expect(JSON.parse(a.body).items).toHaveLength(500);

    // Operators see the rejections.
    const metrics = await (await d.get('/metrics')).text();
    expect(metrics).toMatch(
      /audit_sweeper_api_requests_rejected_total\{reason="queue_full"\} [1-9]/,
    );
  });
});
