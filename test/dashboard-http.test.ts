import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bullBoardErrorAnswer } from '../dashboard/bull-board.ts';
import { PARTITION_QUEUE, SWEEP_QUEUE } from '../src/queue/jobs.ts';
import { backlogByRange } from '../src/sql/backlog.ts';
import { partitionRange } from '../src/sweep/partitions.ts';
import {
  AUTH,
  backdate,
  basic,
  type Dashboard,
  initEntries,
  PASSWORD,
  startDashboard,
  USER,
} from './support/dashboard-harness.ts';
import { explain, planNodes } from './support/explain.ts';

/**
 * Every route of the dashboard over real HTTP, served under a base path as behind a reverse
 * proxy: who may call it (Basic auth, same-origin writes) and what it answers.
 */

let d: Dashboard;
const today = new Date().toISOString().slice(0, 10);

const PROTECTED: [method: string, path: string, status: number][] = [
  ['GET', '/', 200],
  ['GET', '/api/overview', 200],
  ['GET', '/assets/overview.js', 200],
  ['GET', '/assets/overview.css', 200],
  ['GET', '/metrics', 200],
  ['GET', '/queues', 200],
  ['GET', '/queues/api/queues', 200],
  ['GET', `/v1/audit-log?start_time=${today}T00:00:00Z`, 200],
  ['POST', '/api/sweeps', 202],
  ['GET', '/api/sweeps/1', 200],
  ['GET', '/no-such-page', 404],
];

beforeAll(async () => {
  d = await startDashboard('dashboard_http', {
    DASHBOARD_BASE_PATH: '/ops/audit',
    DASHBOARD_TRUSTED_PROXIES: '1',
    STALE_AFTER: '1h',
    SWEEP_PARTITIONS: '4',
  });
});

afterAll(async () => {
  await d?.close();
});

const call = (method: string, path: string, headers: Record<string, string>) =>
  fetch(`${d.origin}${d.base}${path}`, { method, headers });

describe('authentication', () => {
  it.each(PROTECTED)('%s %s: 401 without credentials', async (method, path) => {
    const res = await call(method, path, {});
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(/^Basic realm="audit-sweeper"/);
    expect(await res.json()).toEqual({ error: { message: 'authentication required' } });
  });

  // Each failed login from an address of its own (through the trusted proxy's
  // X-Forwarded-For): the login back-off (test/dashboard-roles.test.ts) holds back an address
  // after a few failures, and these are not about it.
  let addresses = 0;
  const elsewhere = () => ({ 'x-forwarded-for': `192.0.2.${++addresses}` });

  it.each(PROTECTED)('%s %s: 401 with a wrong password or user', async (method, path) => {
    for (const authorization of [
      basic(USER, `${PASSWORD}x`),
      basic('admin', PASSWORD),
      `Bearer ${PASSWORD}`,
      'Basic !!!',
    ]) {
      const res = await call(method, path, { authorization, ...elsewhere() });
      expect(res.status, authorization).toBe(401);
    }
  });

  it.each([
    basic(USER, PASSWORD.slice(0, -1)),
    basic(USER, ''),
    basic('', PASSWORD),
    basic(USER.toUpperCase(), PASSWORD),
  ])('401 with %s', async (authorization) => {
    const res = await call('GET', '/api/overview', { authorization, ...elsewhere() });
    expect(res.status).toBe(401);
  });

  it.each(PROTECTED)('%s %s: answers with the right credentials', async (method, path) => {
    const res = await call(method, path, { authorization: AUTH });
    expect(res.status).toBe(method === 'POST' ? 202 : path === '/no-such-page' ? 404 : 200);
  });

  it('a password containing ":" is read whole', async () => {
    // Basic splits user and password at the first ":" only.
    const res = await call('GET', '/api/overview', {
      authorization: basic(`${USER}:`, PASSWORD),
      ...elsewhere(),
    });
    expect(res.status).toBe(401);
  });

  it.each(['/healthz', '/readyz'])('%s is open', async (path) => {
    const res = await call('GET', path, {});
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: 'ok' });
  });

  it('serves nothing outside the base path', async () => {
    const res = await fetch(`${d.origin}/healthz`);
    expect(res.status).toBe(404);
  });
});

describe('same-origin writes', () => {
  const post = (path: string, headers: Record<string, string>) =>
    call('POST', path, { authorization: AUTH, ...headers });

  it.each([
    [{ 'sec-fetch-site': 'cross-site' }],
    [{ 'sec-fetch-site': 'same-site' }],
    [{ origin: 'https://evil.example' }],
    [{ origin: 'null' }],
    [{ origin: 'http://127.0.0.1:1' }],
    [{ 'sec-fetch-site': 'cross-site', origin: 'same' }],
  ])('refuses a cross-site POST %j with 403', async (headers) => {
    const h = Object.fromEntries(
      Object.entries(headers).map(([k, v]) => [k, v === 'same' ? d.origin : v]),
    );
    const res = await post('/api/sweeps', h);
    expect(res.status).toBe(403);
    expect((await res.json()).error.message).toMatch(/cross-origin request refused/);
  });

  it.each([
    [{}],
    [{ 'sec-fetch-site': 'same-origin', origin: 'same' }],
    [{ 'sec-fetch-site': 'none' }],
    [{ origin: 'same' }],
  ])('accepts a same-origin or non-browser POST %j', async (headers) => {
    const h = Object.fromEntries(
      Object.entries(headers).map(([k, v]) => [k, v === 'same' ? d.origin : v]),
    );
    const res = await post('/api/sweeps', h);
    expect(res.status).toBe(202);
  });

  it("guards Bull Board's own write actions", async () => {
    const pause = `/queues/api/queues/${SWEEP_QUEUE}/pause`;
    const refused = await call('PUT', pause, {
      authorization: AUTH,
      'sec-fetch-site': 'cross-site',
      origin: 'https://evil.example',
    });
    expect(refused.status).toBe(403);
    expect(await d.sq.queue.isPaused()).toBe(false);

    const unauthenticated = await call('PUT', pause, {});
    expect(unauthenticated.status).toBe(401);
    expect(await d.sq.queue.isPaused()).toBe(false);

    const allowed = await call('PUT', pause, {
      authorization: AUTH,
      'sec-fetch-site': 'same-origin',
      origin: d.origin,
    });
    expect(allowed.status).toBe(200);
    expect(await d.sq.queue.isPaused()).toBe(true);
    const resumed = await call('PUT', `/queues/api/queues/${SWEEP_QUEUE}/resume`, {
      authorization: AUTH,
    });
    expect(resumed.status).toBe(200);
    expect(await d.sq.queue.isPaused()).toBe(false);
  });

  it('Pause and Resume: refused cross-origin and unauthenticated, shown in the overview once done', async () => {
    const overview = async () => (await (await d.get('/api/overview')).json()).control;
    const attempts: Record<string, string>[] = [
      { authorization: AUTH, 'sec-fetch-site': 'cross-site' },
      { authorization: AUTH, origin: 'https://evil.example' },
      {},
    ];
    for (const headers of attempts) {
      const res = await call('POST', '/api/pause', {
        ...headers,
        'content-type': 'application/json',
      });
      expect(res.status, JSON.stringify(headers)).toBe('authorization' in headers ? 403 : 401);
    }
    expect((await overview()).pause).toBeNull();

    const bad = await d.get('/api/pause', {
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: d.origin },
      body: JSON.stringify({ for: 'soon' }),
    });
    expect(bad.status).toBe(400);
    // Beyond any date (this answered 500), or longer than a year: a 400 naming `for`.
    for (const forText of ['99999999999d', '366d', '0s'])
      for (const headers of [{ origin: d.origin }, {}] as Record<string, string>[]) {
        const tooLong = await d.get('/api/pause', {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...headers },
          body: JSON.stringify({ for: forText }),
        });
        expect(tooLong.status, forText).toBe(400);
        expect((await tooLong.json()).error).toEqual({
          parameter: 'for',
          message: 'must be from 1s to 365d',
        });
      }
    expect((await bad.json()).error.parameter).toBe('for');

    const paused = await d.get('/api/pause', {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        origin: d.origin,
        'sec-fetch-site': 'same-origin',
      },
      body: JSON.stringify({ for: '30m', reason: 'database maintenance' }),
    });
    expect(paused.status).toBe(200);
    const control = await overview();
    expect(control.state).toBe('paused');
    expect(control.pause).toMatchObject({
      by: `dashboard user ${USER}`,
      reason: 'database maintenance',
    });
    expect(Date.parse(control.pause.until) - Date.now()).toBeGreaterThan(29 * 60_000);
    const page = await (await d.get('/')).text();
    expect(page).toContain('data-testid="control-state">paused<');
    expect(page).toContain('database maintenance');
    const metrics = await (await d.get('/metrics')).text();
    expect(metrics).toMatch(/^audit_sweeper_paused 1$/m);
    expect(metrics).toMatch(/^audit_sweeper_throttled_seconds_total\{reason="replica_lag"\} 0$/m);

    const refused = await call('POST', '/api/resume', {
      authorization: AUTH,
      'sec-fetch-site': 'cross-site',
    });
    expect(refused.status).toBe(403);
    expect((await overview()).state).toBe('paused');
    const resumed = await d.get('/api/resume', { method: 'POST', headers: { origin: d.origin } });
    expect(resumed.status).toBe(200);
    expect(await resumed.json()).toMatchObject({ resumed: true });
    expect((await overview()).state).toBe('running');
  });

  it('GET stays allowed cross-site (it changes nothing)', async () => {
    const res = await call('GET', '/api/overview', {
      authorization: AUTH,
      'sec-fetch-site': 'cross-site',
    });
    expect(res.status).toBe(200);
  });
});

describe('pages and data', () => {
  it('Bull Board is served under the base path: runs and partition jobs in two queues, a link back, UTC', async () => {
    const page = await d.get('/queues');
    const html = await page.text();
    // The UI finds its API and assets through this base path: it must be what the browser sees.
    expect(html).toContain('/ops/audit/queues/');
    // Its header links back to the overview, and it formats times in UTC (24-hour clock).
    const uiConfig = JSON.parse(/id="__UI_CONFIG__"[^>]*>(.*?)<\/script>/s.exec(html)?.[1] ?? '{}');
    expect(uiConfig.miscLinks).toEqual([{ text: 'Back to the overview', url: '/ops/audit/' }]);
    for (const format of ['short', 'common', 'full'])
      expect(uiConfig.dateFormats[format]).toMatchObject({ timeZone: 'UTC', hourCycle: 'h23' });
    const api = await (await d.get('/queues/api/queues')).json();
    const queues = api.queues.map((q: { name: string; displayName?: string }) => [
      q.name,
      q.displayName,
    ]);
    expect(queues).toEqual([
      [SWEEP_QUEUE, 'Runs'],
      [PARTITION_QUEUE, 'Partition jobs'],
    ]);
  });

  it("Bull Board's errors: a retry that lost a race is a 409, its own 4xx kept, the rest passed on", () => {
    // The race (two operators retrying at once) cannot be timed over HTTP; BullMQ's words for it:
    const lost = new Error('Job rmx1-p3 is not in the failed state. reprocessJob');
    expect(bullBoardErrorAnswer(lost)).toEqual({
      status: 409,
      body: {
        error: { message: 'job rmx1-p3 is no longer failed: it moved on meanwhile; refresh' },
      },
    });
    const notFound = Object.assign(new Error('Queue x not found'), { statusCode: 404 as const });
    expect(bullBoardErrorAnswer(notFound).status).toBe(404);
    // Anything else (Redis away, say) goes on to the dashboard's handler: 503 or 500, logged.
    expect(() => bullBoardErrorAnswer(new Error("Stream isn't writeable"))).toThrow(/writeable/);
  });

  it('the overview shows the backlog, per partition too, as HTML and JSON', async () => {
    const stale = await initEntries(d.store, 7);
    await backdate(d, stale);
    await initEntries(d.store, 3, 100);

    const overview = await (await d.get('/api/overview')).json();
    expect(overview.backlog).toMatchObject({ stale: 7, inFlight: 3 });
    expect(overview.backlog.oldestAgeMs).toBeGreaterThan(7_000_000);
    expect(overview.partitions).toHaveLength(4);
    const perPartition = overview.partitions.map((p: { stale: number }) => p.stale);
    expect(perPartition.reduce((a: number, b: number) => a + b, 0)).toBe(7);
    for (const p of overview.partitions) {
      const { rows } = await d.db.pool.query(
        `SELECT count(*) FILTER (WHERE time_started < now() - interval '1 hour')::int AS stale,
                count(*)::int AS all
           FROM audit_log WHERE time_completed IS NULL AND id BETWEEN $1 AND $2`,
        [p.low, p.high],
      );
      expect({ stale: p.stale, inFlight: p.inFlight }).toEqual({
        stale: rows[0].stale,
        inFlight: rows[0].all - rows[0].stale,
      });
    }

    const res = await d.get('/');
    expect(res.headers.get('content-type')).toMatch(/text\/html/);
    expect(res.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
    const html = await res.text();
    expect(html).toMatch(/data-testid="stale">7</);
    expect(html).toMatch(/data-testid="in-flight">3</);
    expect(html).toContain('data-testid="sweep-now"');
    expect(html).toContain('src="/ops/audit/assets/overview.js"');
    expect(html).toContain('href="/ops/audit/queues"');
  });

  it('backlog per partition reads only the partial index of incomplete entries', async () => {
    // Many completed rows, a few incomplete ones: a plan that read the table would show here.
    await d.db.pool.query(
      `INSERT INTO audit_log (id, time_started, request_id, request_uri, operation_id, source_ip,
         actor_kind, time_completed, result_kind, http_status_code)
       SELECT gen_random_uuid(), now() - interval '1 day', 'r-' || g, '/v1/x', 'x_view',
              '10.0.0.1', 'unauthenticated', now() - interval '1 day', 'success', 200
         FROM generate_series(1, 20000) AS g`,
    );
    await d.db.pool.query('ANALYZE audit_log');
    const ranges = Array.from({ length: 4 }, (_, i) => partitionRange(i, 4));
    const plan = await explain(d.db.pool, 'COSTS OFF', (db) =>
      backlogByRange(db, { ranges, staleAfterMs: 3_600_000 }),
    );
    const scans = planNodes(plan).filter((n) => n['Relation Name'] === 'audit_log');
    expect(scans.map((n) => [n['Node Type'], n['Index Name'], n['Index Cond']])).toEqual([
      ['Index Only Scan', 'audit_log_incomplete_by_id', '((id >= p.low) AND (id <= p.high))'],
    ]);
  });

  it('/metrics is Prometheus text with the sweeper metrics', async () => {
    const res = await d.get('/metrics');
    expect(res.headers.get('content-type')).toMatch(/text\/plain/);
    const text = await res.text();
    for (const name of [
      'audit_sweeper_rows_finalized_total',
      'audit_sweeper_sweep_runs_total',
      'audit_sweeper_partition_sweeps_total',
      'audit_sweeper_partition_sweep_duration_seconds_bucket',
      'audit_sweeper_lock_contention_total',
      'audit_sweeper_oldest_incomplete_age_seconds',
    ]) {
      expect(text).toContain(name);
    }
    expect(text).toMatch(/audit_sweeper_backlog_rows\{state="stale"\} \d+/);
  });

  it('a sweep request answers with the tick job id and a status URL', async () => {
    const res = await d.get('/api/sweeps', { method: 'POST' });
    expect(res.status).toBe(202);
    const body = await res.json();
    expect(body.tickJobId).toMatch(/^\w+$/);
    expect(body.statusUrl).toBe(`/ops/audit/api/sweeps/${body.tickJobId}`);
    expect(res.headers.get('location')).toBe(body.statusUrl);
    // No worker runs in this file: the tick waits.
    const status = await (await d.get(`/api/sweeps/${body.tickJobId}`)).json();
    expect(status).toMatchObject({ tickJobId: body.tickJobId, runId: null, done: false });
    expect(['waiting', 'prioritized', 'delayed']).toContain(status.tickState);
  });

  it('an unknown or malformed sweep id is 404 or 400', async () => {
    expect((await d.get('/api/sweeps/no-such-job')).status).toBe(404);
    const bad = await d.get('/api/sweeps/a:b');
    expect(bad.status).toBe(400);
    expect((await bad.json()).error.parameter).toBe('tickJobId');
  });
});
