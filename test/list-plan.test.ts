import type pg from 'pg';
import { escapeLiteral } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Pool } from '../src/db/pool.ts';
import { encodePageToken } from '../src/store/page-token.ts';
import { AuditLogStore } from '../src/store/store.ts';
import type { ListQuery } from '../src/store/types.ts';
import { createTestDatabase, partitionedLayout, type TestDatabase } from './support/db.ts';
import { type PlanNode, planNodes } from './support/explain.ts';
import { seed } from './support/seed.ts';

/**
 * Every page of the audit log is served by walking the (time_completed, id) index, in both
 * directions, with and without a cursor: no Sort node, no Seq Scan, whatever the range.
 *
 * The plans are read for the very statements the store sends (captured from its pool), with the
 * values it binds. The table holds 100k completed rows over 30 days, ANALYZEd: small enough to
 * seed in seconds, large enough that a correct query is planned as an index scan (even for a
 * 1000-row page of a range covering the whole table) while a query the index cannot serve is
 * planned as a scan of the range plus a sort. On a few hundred rows PostgreSQL would pick
 * scan-and-sort for both and the test could not tell them apart.
 *
 * Both layouts: the plain table, and daily time partitions (AUDIT_LOG_LAYOUT=partitioned), where
 * the walk is a Merge Append of each partition's (time_completed, id) index; and both plans of
 * each statement: the one made for its values, and the generic one the API's pool runs.
 */

const ROWS = 100_000;
const WIDE_START = '2020-01-01T00:00:00Z';

let db: TestDatabase;
let store: AuditLogStore;
let generic: pg.PoolClient;
/** The statements the store ran, with their values, in order. */
const sent: { text: string; values: unknown[] }[] = [];

/** The text and values of a query as pg takes it: a string and values, or a config object. */
const statement = (text: string | pg.QueryConfig, values?: unknown[]) =>
  typeof text === 'string'
    ? { text, values: values ?? [] }
    : { text: text.text, values: (text.values as unknown[] | undefined) ?? values ?? [] };

/**
 * Lists one page through the store; returns the page, the plan of the statement it sent as the
 * planner makes it for those values, and its generic plan, the one the API's pool runs
 * (plan_cache_mode force_generic_plan, see listCompleted).
 */
async function pageAndPlan(query: ListQuery) {
  const before = sent.length;
  const page = await store.list(query);
  const listing = sent.slice(before).find((s) => /FROM\s+audit_log/i.test(s.text));
  if (!listing) throw new Error('the store sent no listing statement');
  const { rows } = await db.pool.query(`EXPLAIN (FORMAT JSON) ${listing.text}`, listing.values);
  const plan = (rows[0]['QUERY PLAN'] as { Plan: PlanNode }[])[0]?.Plan as PlanNode;
  await generic.query('DEALLOCATE ALL');
  await generic.query(`PREPARE page AS ${listing.text}`);
  // EXECUTE takes no bind parameters: the values go in as literals (cast by PREPARE's types).
  const params = listing.values
    .map((v) => (v === null || v === undefined ? 'NULL' : escapeLiteral(String(v))))
    .join(', ');
  const { rows: g } = await generic.query(`EXPLAIN (FORMAT JSON) EXECUTE page(${params})`);
  const genericPlan = (g[0]['QUERY PLAN'] as { Plan: PlanNode }[])[0]?.Plan as PlanNode;
  return { page, plan, genericPlan };
}

function expectIndexWalk(plan: PlanNode, what: string) {
  const all = planNodes(plan);
  const summary = all.map(
    (n) => `${n['Node Type']}${n['Index Name'] ? ` ${n['Index Name']}` : ''}`,
  );
  const bad = all.filter((n) => /Sort|Seq Scan|Bitmap/.test(String(n['Node Type'])));
  expect(bad, `${what}: ${summary.join(' > ')}`).toEqual([]);
  expect(
    all.some(
      (n) =>
        /^Index (Only )?Scan$/.test(String(n['Node Type'])) &&
        /^audit_log_(by_time_completed|.*_time_completed_id_idx)$/.test(String(n['Index Name'])),
    ),
    `${what}: ${summary.join(' > ')}`,
  ).toBe(true);
}

/** Both plans of a page are the index walk. */
function expectWalks(p: { plan: PlanNode; genericPlan: PlanNode }, what: string) {
  expectIndexWalk(p.plan, what);
  expectIndexWalk(p.genericPlan, `${what} (generic plan)`);
}

describe.each([
  ['plain table', { layout: 'plain' }],
  ['time partitions', partitionedLayout()],
] as const)('on the %s', (label, layout) => {
  beforeAll(async () => {
    db = await createTestDatabase(`list_plan_${label.split(' ')[0]}`, layout);
    await seed(db.pool, { kind: 'completed', count: ROWS, tag: 'p' });
    await db.pool.query('ANALYZE audit_log');
    const recording = {
      query: (text: string | pg.QueryConfig, values?: unknown[]) => {
        const s = statement(text, values);
        sent.push(s);
        return db.pool.query(s.text, s.values);
      },
    } as unknown as Pool;
    store = new AuditLogStore(recording, { listSafetyMarginMs: 30_000 });
    generic = await db.pool.connect();
    await generic.query(`SET plan_cache_mode = force_generic_plan`);
  });
  afterAll(async () => {
    generic.release();
    await db.drop();
  });

  describe.each(['ascending', 'descending'] as const)('%s pages', (order) => {
    it.each([100, 1000])(
      'first page and deep cursor pages of a wide range, limit %i',
      async (limit) => {
        const first = await pageAndPlan({ startTime: WIDE_START, order, limit });
        expect(first.page.items).toHaveLength(limit);
        expectWalks(first, `${order} first page`);

        // Follow the token a few pages, then jump to the middle of the table with a token the
        // service itself issued for that position: the planner's estimate for what lies beyond the
        // cursor is then about half the table, the case where a scan-and-sort is most tempting.
        let token = first.page.nextPageToken;
        for (let i = 0; i < 3; i++) {
          const next = await pageAndPlan({ startTime: WIDE_START, order, limit, pageToken: token });
          expect(next.page.items).toHaveLength(limit);
          expectWalks(next, `${order} cursor page ${i + 2}`);
          token = next.page.nextPageToken;
        }
        const deep = await pageAndPlan({
          startTime: WIDE_START,
          order,
          limit: 1000,
          pageToken: await tokenAtRow(order, ROWS / 2),
        });
        expect(deep.page.items).toHaveLength(1000);
        expectWalks(deep, `${order} page from the middle`);
      },
    );

    it('a bounded range, first page and a cursor page', async () => {
      const { rows } = await db.pool.query(
        `SELECT min(time_completed) + (max(time_completed) - min(time_completed)) / 4 AS lo,
              max(time_completed) - (max(time_completed) - min(time_completed)) / 4 AS hi
         FROM audit_log`,
      );
      const range = {
        startTime: (rows[0].lo as Date).toISOString(),
        endTime: (rows[0].hi as Date).toISOString(),
        order,
      };
      const first = await pageAndPlan(range);
      expectWalks(first, `${order} bounded first page`);
      if (label === 'time partitions')
        for (const plan of [first.plan, first.genericPlan]) {
          // Partitions that begin after the range's end are left out when the page starts.
          const removed = planNodes(plan).reduce(
            (n, x) => n + Number(x['Subplans Removed'] ?? 0),
            0,
          );
          expect(removed, 'partitions left out of a bounded page').toBeGreaterThanOrEqual(5);
        }
      const next = await pageAndPlan({ ...range, pageToken: first.page.nextPageToken });
      expect(next.page.items.length).toBeGreaterThan(0);
      expectWalks(next, `${order} bounded cursor page`);
    });
  });
});

/**
 * A page token for the position of the `n`th entry in `order`, signed with the database's own
 * key exactly as the service signs it (walking there page by page would take 50 requests).
 */
async function tokenAtRow(order: 'ascending' | 'descending', n: number): Promise<string> {
  const direction = order === 'ascending' ? 'ASC' : 'DESC';
  const { rows } = await db.pool.query(
    `SELECT to_char(time_completed AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS time, id
       FROM audit_log ORDER BY time_completed ${direction}, id ${direction} OFFSET $1 LIMIT 1`,
    [n],
  );
  const { rows: key } = await db.pool.query(
    `SELECT value FROM audit_sweeper_secret WHERE name = 'page_token_key'`,
  );
  const binding = { order, startTime: '2020-01-01T00:00:00.000000Z', endTime: null };
  return encodePageToken(key[0].value, binding, { time: rows[0].time, id: rows[0].id });
}
