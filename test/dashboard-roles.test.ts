import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SWEEP_QUEUE } from '../src/queue/jobs.ts';
import { AUTH, basic, type Dashboard, startDashboard, USER } from './support/dashboard-harness.ts';

/**
 * Two logins (the operator's for everything, the reader's for the audit log, the overview and
 * the metrics), the back-off after failed logins, and the same-origin check behind a reverse
 * proxy that rewrites Host (DASHBOARD_PUBLIC_URL). The dashboard is told it is behind one
 * proxy, so each request's X-Forwarded-For is the client address the back-off counts.
 */

const READER = 'auditor';
const READER_PASSWORD = 'read only, never write';
const PUBLIC = 'https://ops.example.com';
const today = new Date().toISOString().slice(0, 10);

let d: Dashboard;
let unset: Dashboard;

beforeAll(async () => {
  d = await startDashboard('dashboard_roles', {
    DASHBOARD_READER_USER: READER,
    DASHBOARD_READER_PASSWORD: READER_PASSWORD,
    DASHBOARD_TRUSTED_PROXIES: '1',
    DASHBOARD_PUBLIC_URL: `${PUBLIC}/audit`,
  });
  // No DASHBOARD_READER_PASSWORD, no DASHBOARD_PUBLIC_URL.
  unset = await startDashboard('dashboard_roles_unset');
});

afterAll(async () => {
  await d?.close();
  await unset?.close();
});

const READER_AUTH = basic(READER, READER_PASSWORD);
let addresses = 0;
/** A client address of its own (through the trusted proxy). */
const from = (address = `198.51.100.${++addresses}`) => ({ 'x-forwarded-for': address });

const call = (
  dashboard: Dashboard,
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: unknown,
) =>
  fetch(`${dashboard.origin}${dashboard.base}${path}`, {
    method,
    headers: body === undefined ? headers : { ...headers, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });

describe('the reader login', () => {
  it.each([
    '/',
    '/api/overview',
    '/assets/overview.js',
    '/assets/overview.css',
    '/metrics',
    `/v1/audit-log?start_time=${today}T00:00:00Z`,
  ])('reads GET %s', async (path) => {
    const res = await call(d, 'GET', path, { authorization: READER_AUTH });
    expect(res.status).toBe(200);
  });

  const ACTIONS: [method: string, path: string, body?: unknown][] = [
    ['POST', '/api/sweeps'],
    ['POST', '/api/pause', { for: '15m' }],
    ['POST', '/api/resume'],
    ['POST', '/api/partitions/0/retry'],
    ['GET', '/api/sweeps/1'],
    ['GET', '/queues'],
    ['GET', '/queues/api/queues'],
    ['PUT', `/queues/api/queues/${SWEEP_QUEUE}/pause`],
    ['PUT', `/queues/api/queues/${SWEEP_QUEUE}/clean/completed`],
    ['POST', `/queues/api/queues/${SWEEP_QUEUE}/add`, { name: 'tick', data: {} }],
    // Routes added later (a dry run, say) are the operator's unless listed for the reader.
    ['GET', '/api/dry-run'],
    ['POST', '/api/sweeps/dry-run'],
    ['GET', '/api/anything-new'],
  ];

  it.each(ACTIONS)(
    'gets 403 (JSON) for %s %s, which changes nothing',
    async (method, path, body) => {
      const res = await call(d, method, path, { authorization: READER_AUTH }, body);
      expect(res.status).toBe(403);
      expect(res.headers.get('content-type')).toMatch(/application\/json/);
      expect((await res.json()).error.message).toMatch(/reader login may only read.*operator/);
    },
  );

  it('changed nothing: no sweep requested, not paused, the queue not paused', async () => {
    expect(await d.sq.queue.getJobCounts()).toMatchObject({ waiting: 0, delayed: 0 });
    expect(await d.sq.queue.isPaused()).toBe(false);
    const o = await (await call(d, 'GET', '/api/overview', { authorization: AUTH })).json();
    expect(o.control.pause).toBeNull();
  });

  it('the operator login still does everything', async () => {
    expect((await call(d, 'GET', '/queues/api/queues', { authorization: AUTH })).status).toBe(200);
    expect((await call(d, 'GET', '/api/dry-run', { authorization: AUTH })).status).toBe(200);
    expect((await call(d, 'POST', '/api/sweeps', { authorization: AUTH })).status).toBe(202);
  });

  it("the reader's page shows no action it cannot use, and says why", async () => {
    const reader = await (await call(d, 'GET', '/', { authorization: READER_AUTH })).text();
    const operator = await (await call(d, 'GET', '/', { authorization: AUTH })).text();
    for (const id of ['sweep-now', 'pause', 'resume', 'bull-board-link']) {
      expect(operator).toContain(`data-testid="${id}"`);
      expect(reader).not.toContain(`data-testid="${id}"`);
    }
    expect(reader).toContain('data-testid="read-only"');
    expect(reader).toMatch(/reader login: read-only/);
    expect(operator).not.toContain('data-testid="read-only"');
  });

  it('without DASHBOARD_READER_PASSWORD there is no reader: its login is refused', async () => {
    const res = await call(unset, 'GET', '/api/overview', {
      authorization: basic('reader', READER_PASSWORD),
    });
    expect(res.status).toBe(401);
    expect((await call(unset, 'GET', '/api/overview', { authorization: AUTH })).status).toBe(200);
  });
});

describe('the back-off after failed logins', () => {
  it('holds back an address after 5 failures (429, Retry-After, credentials unchecked), not others', async () => {
    const attacker = from();
    for (let i = 0; i < 5; i++) {
      const res = await call(d, 'GET', '/api/overview', {
        authorization: basic(USER, `guess ${i}`),
        ...attacker,
      });
      expect(res.status).toBe(401);
    }
    // Held back: even the right password is not checked, so the answer tells nothing.
    const held = await call(d, 'GET', '/api/overview', { authorization: AUTH, ...attacker });
    expect(held.status).toBe(429);
    expect(Number(held.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect((await held.json()).error.message).toMatch(/too many failed logins/);
    // Any other address, the operator's included, is not held back.
    expect((await call(d, 'GET', '/api/overview', { authorization: AUTH, ...from() })).status).toBe(
      200,
    );
    expect((await call(d, 'GET', '/api/overview', { authorization: AUTH })).status).toBe(200);
    // The back-off is short: once Retry-After has passed, the right password works again.
    await expect
      .poll(
        async () =>
          (await call(d, 'GET', '/api/overview', { authorization: AUTH, ...attacker })).status,
        { timeout: 10_000, interval: 250 },
      )
      .toBe(200);
  });

  it("holds back a user's name after 20 failures from many addresses, except where that user logged in", async () => {
    // The reader's name: this file's other tests have not failed with it.
    const readersDesk = from();
    expect(
      (await call(d, 'GET', '/api/overview', { authorization: READER_AUTH, ...readersDesk }))
        .status,
    ).toBe(200);
    // A guess spread over 20 addresses, one each: no address is held back on its own count.
    for (let i = 0; i < 20; i++) {
      const res = await call(d, 'GET', '/api/overview', {
        authorization: basic(READER, `spread guess ${i}`),
        ...from(),
      });
      expect(res.status).toBe(401);
    }
    // A new address now waits, whatever password it sends...
    const fresh = await call(d, 'GET', '/api/overview', { authorization: READER_AUTH, ...from() });
    expect(fresh.status).toBe(429);
    // ...but the user is not locked out where they logged in before,
    expect(
      (await call(d, 'GET', '/api/overview', { authorization: READER_AUTH, ...readersDesk }))
        .status,
    ).toBe(200);
    // and the other name has a count of its own.
    expect((await call(d, 'GET', '/api/overview', { authorization: AUTH, ...from() })).status).toBe(
      200,
    );
  });

  it('a request without credentials is a 401 challenge, never held back', async () => {
    const attacker = from();
    for (let i = 0; i < 6; i++)
      await call(d, 'GET', '/', { authorization: basic('nobody', `x${i}`), ...attacker });
    const res = await call(d, 'GET', '/', attacker);
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(/^Basic/);
  });

  it('logs one warning per held-back address, not one per guess', () => {
    const warnings = d.logs.filter((l) => l.includes('failed dashboard logins: backing off'));
    expect(warnings.length).toBeGreaterThan(0);
    // 2 addresses held back above, and the reader's name once.
    expect(warnings.length).toBeLessThanOrEqual(3);
    for (const w of warnings) expect(w).not.toContain('guess');
  });
});

/** A POST as a browser behind a proxy sends it: Host rewritten to the pod, Origin public. */
function proxiedPost(dashboard: Dashboard, origin: string): Promise<number> {
  const url = new URL(`${dashboard.origin}${dashboard.base}/api/sweeps`);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: 'POST',
        headers: {
          host: 'audit-sweeper-dashboard.ops.svc:3000',
          origin,
          'sec-fetch-site': 'same-origin',
          authorization: AUTH,
        },
      },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

describe('the same-origin check behind a proxy that rewrites Host', () => {
  it('accepts the public origin (DASHBOARD_PUBLIC_URL) whatever the Host', async () => {
    expect(await proxiedPost(d, PUBLIC)).toBe(202);
  });

  it('still refuses any other origin', async () => {
    expect(await proxiedPost(d, 'https://evil.example')).toBe(403);
    expect(await proxiedPost(d, 'https://ops.example.com.evil.example')).toBe(403);
    expect(await proxiedPost(d, 'http://ops.example.com')).toBe(403);
  });

  it('without DASHBOARD_PUBLIC_URL the same browser write is refused, naming the setting', async () => {
    expect(await proxiedPost(unset, PUBLIC)).toBe(403);
    const res = await call(unset, 'POST', '/api/sweeps', {
      authorization: AUTH,
      origin: PUBLIC,
    });
    expect((await res.json()).error.message).toMatch(/DASHBOARD_PUBLIC_URL/);
  });
});
