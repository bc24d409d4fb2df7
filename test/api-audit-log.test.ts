import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sweepPartition } from '../src/sweep/sweep-partition.ts';
import { type Dashboard, initEntries, startDashboard } from './support/dashboard-harness.ts';

/**
 * GET /v1/audit-log over HTTP: every bad parameter is a 400 that names it, timed-out entries
 * read as `unknown`, and the cursor pages through the log in both orders.
 */

let d: Dashboard;
let start: string;
const outcomes = new Map<string, 'success' | 'error' | 'unknown'>();

type Wire = {
  id: string;
  time_completed: string;
  result: { kind: string; http_status_code?: number; error_message?: string };
};

beforeAll(async () => {
  d = await startDashboard('api_audit_log', { LIST_SAFETY_MARGIN: '2s' });
  start = new Date(Date.now() - 60_000).toISOString();
  const ids = await initEntries(d.store, 12);
  for (const [i, id] of ids.slice(0, 8).entries()) {
    if (i % 2 === 0) {
      await d.store.complete(id, { kind: 'success', httpStatusCode: 200 });
      outcomes.set(id, 'success');
    } else {
      await d.store.complete(id, {
        kind: 'error',
        httpStatusCode: 503,
        errorCode: 'ServiceUnavailable',
        errorMessage: 'try again',
      });
      outcomes.set(id, 'error');
    }
  }
  // The other four lost their completion: the sweeper times them out.
  const status = await sweepPartition(d.db.pool, {
    partition: 0,
    partitions: 1,
    staleAfterMs: 0,
    chunkSize: 100,
    timeBudgetMs: 10_000,
  });
  expect(status.finalized).toBe(4);
  for (const id of ids.slice(8)) outcomes.set(id, 'unknown');
  // The API lists entries once they are LIST_SAFETY_MARGIN (at least 2 s) old.
  await sleep(2_100);
});

afterAll(async () => {
  await d?.close();
});

const list = (query: string) => d.get(`/v1/audit-log?${query}`);

async function expectBadParameter(query: string, parameter: string, message?: RegExp) {
  const res = await list(query);
  expect(res.status, query).toBe(400);
  const body = await res.json();
  expect(body, query).toEqual({ error: { parameter, message: expect.any(String) } });
  // The client's own names, never the store's.
  expect(body.error.message).not.toMatch(/startTime|endTime|pageToken/);
  if (message) expect(body.error.message, query).toMatch(message);
}

describe('bad parameters', () => {
  it('start_time is required', async () => {
    await expectBadParameter('', 'start_time', /required/);
    await expectBadParameter('sort=ascending', 'start_time', /required/);
  });

  it.each([
    'yesterday',
    '2024-01-01',
    '2024-01-01T00:00:00',
    '2024-13-01T00:00:00Z',
    '0000-01-01T00:00:00Z',
    '2024-01-01T00:00:00Z%00',
  ])('start_time=%s', async (value) => {
    await expectBadParameter(`start_time=${value}`, 'start_time');
  });

  it('a "+" offset sent unencoded is explained', async () => {
    await expectBadParameter('start_time=2024-01-01T00:00:00+01:00', 'start_time', /%2B/);
    const res = await list('start_time=2024-01-01T00:00:00%2B01:00');
    expect(res.status).toBe(200);
  });

  it.each(['soon', '2024-02-30T00:00:00Z', '1700000000'])('end_time=%s', async (value) => {
    await expectBadParameter(`start_time=${start}&end_time=${value}`, 'end_time');
  });

  it('end_time before or at start_time', async () => {
    await expectBadParameter(
      'start_time=2024-01-02T00:00:00Z&end_time=2024-01-01T00:00:00Z',
      'end_time',
      /later than start_time/,
    );
    await expectBadParameter(
      'start_time=2024-01-02T00:00:00Z&end_time=2024-01-02T00:00:00Z',
      'end_time',
      /later than start_time/,
    );
  });

  it.each(['sideways', 'ASC', 'asc'])('sort=%s', async (value) => {
    await expectBadParameter(
      `start_time=${start}&sort=${value}`,
      'sort',
      /ascending or descending/,
    );
  });

  it.each(['0', '1001', 'abc', '1.5', '-1', '1e3', '0x10', '%201'])('limit=%s', async (value) => {
    await expectBadParameter(`start_time=${start}&limit=${value}`, 'limit', /1 to 1000/);
  });

  it('a forged, altered or foreign page_token', async () => {
    await expectBadParameter(`start_time=${start}&page_token=forged`, 'page_token', /malformed/);
    const first = await (await list(`start_time=${start}&limit=2`)).json();
    const token: string = first.next_page_token;
    expect(token).toEqual(expect.any(String));
    const [body, signature] = token.split('.') as [string, string];
    const payload = JSON.parse(Buffer.from(body, 'base64url').toString());
    const moved = Buffer.from(
      JSON.stringify({ ...payload, id: '00000000-0000-0000-0000-000000000000' }),
    ).toString('base64url');
    await expectBadParameter(
      `start_time=${start}&page_token=${moved}.${signature}`,
      'page_token',
      /not issued by this service/,
    );
    // Replayed against another query: the token is bound to sort, start_time and end_time.
    await expectBadParameter(
      `start_time=${start}&sort=descending&page_token=${token}`,
      'page_token',
      /different query/,
    );
    await expectBadParameter(
      `start_time=${start}&end_time=2999-01-01T00:00:00Z&page_token=${token}`,
      'page_token',
      /different query/,
    );
  });

  it('an unknown parameter', async () => {
    await expectBadParameter(`start_time=${start}&order=descending`, 'order', /unknown parameter/);
    await expectBadParameter(`start_time=${start}&startTime=${start}`, 'startTime', /unknown/);
  });

  it('a parameter given twice, or empty', async () => {
    await expectBadParameter(`start_time=${start}&start_time=${start}`, 'start_time', /once/);
    await expectBadParameter(`start_time=${start}&limit=1&limit=2`, 'limit', /once/);
    await expectBadParameter(`start_time=${start}&end_time=`, 'end_time', /empty/);
    await expectBadParameter(`start_time=${start}&page_token=`, 'page_token', /empty/);
  });
});

describe('listing', () => {
  it('lists completed entries, timed-out ones as unknown, in snake_case', async () => {
    const res = await list(`start_time=${start}`);
    expect(res.status).toBe(200);
    expect(res.headers.get('audit-log-safety-margin')).toBe('2s');
    const page = await res.json();
    // All of it fits in one page; the token is where a later read resumes.
    expect(page.next_page_token).toEqual(expect.any(String));
    const items: Wire[] = page.items;
    expect(new Map(items.map((e) => [e.id, e.result.kind]))).toEqual(outcomes);
    const unknown = items.find((e) => e.result.kind === 'unknown');
    expect(unknown?.result).toEqual({ kind: 'unknown' });
    const error = items.find((e) => e.result.kind === 'error');
    expect(error?.result).toEqual({
      kind: 'error',
      http_status_code: 503,
      error_code: 'ServiceUnavailable',
      error_message: 'try again',
    });
    expect(Object.keys(items[0] ?? {}).sort()).toEqual(
      [
        'actor',
        'auth',
        'id',
        'operation_id',
        'request_id',
        'request_uri',
        'result',
        'source_ip',
        'time_completed',
        'time_started',
        'user_agent',
      ].sort(),
    );
    // Ordered by (time_completed, id).
    const keys = items.map((e) => `${e.time_completed} ${e.id}`);
    expect(keys).toEqual([...keys].sort());
  });

  it.each(['ascending', 'descending'])(
    'pages through everything with the cursor (%s)',
    async (sort) => {
      const seen: Wire[] = [];
      let token: string | null = null;
      let pages = 0;
      let size = 0;
      do {
        const after: string = token ? `&page_token=${token}` : '';
        const query = `start_time=${start}&sort=${sort}&limit=5${after}`;
        const page = await (await list(query)).json();
        expect(page.items.length).toBeLessThanOrEqual(5);
        seen.push(...page.items);
        token = page.next_page_token;
        size = page.items.length;
        pages += 1;
      } while (size === 5); // a short page is the end
      expect(pages).toBe(3);
      expect(seen.map((e) => e.id).sort()).toEqual([...outcomes.keys()].sort());
      const keys = seen.map((e) => `${e.time_completed} ${e.id}`);
      const sorted = [...keys].sort();
      expect(keys).toEqual(sort === 'ascending' ? sorted : sorted.reverse());
    },
  );

  it('end_time is exclusive, and one in the future is accepted (the server clamps it)', async () => {
    const all: Wire[] = (await (await list(`start_time=${start}`)).json()).items;
    const middle = all[6];
    const before = (
      await (await list(`start_time=${start}&end_time=${middle?.time_completed}`)).json()
    ).items as Wire[];
    expect(before.map((e) => e.id)).toEqual(all.slice(0, 6).map((e) => e.id));
    const fromMiddle = (await (await list(`start_time=${middle?.time_completed}`)).json())
      .items as Wire[];
    expect(fromMiddle.map((e) => e.id)).toEqual(all.slice(6).map((e) => e.id));
    const future = await list(`start_time=${start}&end_time=2999-01-01T00:00:00Z`);
    expect(future.status).toBe(200);
    expect((await future.json()).items).toHaveLength(12);
  });
});

describe('safety margin', () => {
  let late: Dashboard;
  beforeAll(async () => {
    late = await startDashboard('api_audit_log_margin', { LIST_SAFETY_MARGIN: '1h' });
  });
  afterAll(async () => {
    await late?.close();
  });

  it('does not list entries completed less than LIST_SAFETY_MARGIN ago, and says so', async () => {
    const [id] = await initEntries(late.store, 1);
    await late.store.complete(id ?? '', { kind: 'success', httpStatusCode: 204 });
    const res = await late.get(`/v1/audit-log?start_time=${start}&end_time=2999-01-01T00:00:00Z`);
    expect(res.status).toBe(200);
    expect(res.headers.get('audit-log-safety-margin')).toBe('1h');
    expect((await res.json()).items).toEqual([]);
    const { rows } = await late.db.pool.query(
      'SELECT count(*)::int AS n FROM audit_log WHERE time_completed IS NOT NULL',
    );
    expect(rows[0].n).toBe(1);
  });
});
