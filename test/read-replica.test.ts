import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDashboardService } from '../src/cli/dashboard.ts';
import { type Config, loadConfig } from '../src/config.ts';
import { migrate } from '../src/db/migrate.ts';
import { createPool, type Pool } from '../src/db/pool.ts';
import { silentLogger } from '../src/log.ts';
import { completeEntry } from '../src/sql/store.ts';
import { AuditLogStore } from '../src/store/store.ts';
import { AUTH, newEntry, PASSWORD, USER } from './support/dashboard-harness.ts';
import { type ReplicatedPostgres, startReplicatedPostgres } from './support/pg-replica.ts';
import { sleep } from './support/poll.ts';
import { createTestPrefix, TEST_REDIS_URL } from './support/redis.ts';

/**
 * DATABASE_READ_URL on a real streaming replica: the API, the overview and the metrics' gauges
 * read from it and never from the primary, and the safety margin is measured from what the
 * replica has replayed, so a replica that lags never serves a page past which a commit made on
 * the primary can still appear: a reader that follows the page tokens gets every entry once.
 */

const MARGIN_MS = 2_000;
let pair: ReplicatedPostgres;
let primary: Pool;
let store: AuditLogStore;
let config: Config;
let origin = '';
const prefix = createTestPrefix('read_replica');
const closers: (() => Promise<void>)[] = [];

beforeAll(async () => {
  pair = await startReplicatedPostgres();
  const database = 'audit_sweeper_replica';
  await migrate(pair.primary.url(database), silentLogger);
  await pair.waitForCatchUp();
  primary = createPool(pair.primary.url(database), silentLogger, { max: 4 });
  store = new AuditLogStore(primary);
  config = loadConfig({
    DATABASE_URL: pair.primary.url(database),
    DATABASE_READ_URL: pair.replica.url(database),
    REDIS_URL: TEST_REDIS_URL,
    QUEUE_PREFIX: prefix.prefix,
    DASHBOARD_USER: USER,
    DASHBOARD_PASSWORD: PASSWORD,
    LIST_SAFETY_MARGIN: `${MARGIN_MS}ms`,
    DASHBOARD_PORT: '0',
  });
  const dashboard = await startDashboardService(config, silentLogger);
  origin = `http://127.0.0.1:${dashboard.port}`;
  closers.push(dashboard.close);
});

afterAll(async () => {
  for (const close of closers) await close().catch(() => {});
  await primary?.end();
  await pair?.destroy();
  await prefix.cleanup();
});

const get = (path: string) => fetch(`${origin}${path}`, { headers: { authorization: AUTH } });

/** A commit on the primary (an entry still in flight): the replica's replay point moves past it. */
const heartbeat = () => store.init(newEntry(999));

async function complete(id: string) {
  await store.complete(id, { kind: 'success', httpStatusCode: 200 });
}

/** Who is connected to a server, by application name (the product's pools name themselves). */
async function clients(url: string): Promise<string[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query(
      `SELECT application_name FROM pg_stat_activity WHERE application_name LIKE 'audit-sweeper%'`,
    );
    return rows.map((r) => r.application_name as string);
  } finally {
    await client.end();
  }
}

type Page = { items: { id: string }[]; next_page_token: string | null };
async function page(query: string): Promise<Page> {
  const res = await get(`/v1/audit-log?${query}`);
  expect(res.status, await res.clone().text()).toBe(200);
  return (await res.json()) as Page;
}

describe('DATABASE_READ_URL', () => {
  it('the API, the overview and the gauges read from the replica, never from the primary', async () => {
    const start = new Date(Date.now() - 60_000).toISOString();
    const ids = [await store.init(newEntry(1)), await store.init(newEntry(2))];
    for (const id of ids) await complete(id);
    await sleep(MARGIN_MS + 200);
    await heartbeat();
    await pair.waitForCatchUp();

    const listed = await page(`start_time=${start}`);
    expect(listed.items.map((i) => i.id)).toEqual(ids);
    expect((await get('/api/overview')).status).toBe(200);
    expect(await (await get('/metrics')).text()).toMatch(
      /audit_sweeper_backlog_rows\{state="stale"\} 0/,
    );
    expect((await fetch(`${origin}/readyz`)).status).toBe(200);

    const onReplica = await clients(pair.replica.url('postgres'));
    expect(onReplica).toContain('audit-sweeper api');
    expect(onReplica).toContain('audit-sweeper dashboard');
    const onPrimary = await clients(pair.primary.url('postgres'));
    expect(onPrimary.filter((n) => n !== 'audit-sweeper')).toEqual([]);
  });

  it('a lagging replica never serves a page past which an earlier entry can still appear', async () => {
    const start = new Date(Date.now() - 1_000).toISOString();
    const [late, early] = [await store.init(newEntry(10)), await store.init(newEntry(11))];
    // `late` is completed in a transaction that starts first (its time_completed is the earlier)
    // and commits last: the ordinary late commit the safety margin exists for.
    const slow = await primary.connect();
    try {
      await slow.query('BEGIN');
      await completeEntry(slow, {
        id: late,
        resultKind: 'success',
        httpStatusCode: 200,
        errorCode: null,
        errorMessage: null,
      });
      await complete(early);
      await pair.waitForCatchUp();
      // The replica stops here: it has `early`, and will not see `late` until it resumes.
      await pair.pauseReplay();
      await slow.query('COMMIT');
    } finally {
      slow.release();
    }
    await heartbeat();
    expect((await pair.lag()).bytesBehind).toBeGreaterThan(0);
    // Long past the margin by the clock: a margin measured from the replica's now() would
    // list `early` now and hand out a token past it, and `late` (earlier) would never be read.
    await sleep(3 * MARGIN_MS);

    const seen: string[] = [];
    let token: string | null = null;
    const readOn = async () => {
      const p = await page(
        `start_time=${start}&limit=1000${token ? `&page_token=${encodeURIComponent(token)}` : ''}`,
      );
      seen.push(...p.items.map((i) => i.id));
      token = p.next_page_token ?? token;
    };
    await readOn();
    expect(seen).not.toContain(early);

    await pair.resumeReplay();
    await sleep(MARGIN_MS + 200);
    await heartbeat();
    await pair.waitForCatchUp();
    await expect
      .poll(
        async () => {
          await readOn();
          return seen.includes(late) && seen.includes(early);
        },
        { message: 'both entries read by following the tokens', timeout: 30_000 },
      )
      .toBe(true);
    expect(seen.filter((id) => id === late || id === early)).toEqual([late, early]);
  });
});
