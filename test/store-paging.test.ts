import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditLogStore } from '../src/store/store.ts';
import type { Entry, ListQuery, Order } from '../src/store/types.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';

/**
 * Property tests of paging: with random page sizes, in both orders, while other rows complete
 * between pages, a reader gets exactly the completed rows it is promised, each once, in order.
 *
 * What is promised: the log is ordered by (time_completed, id) and a completion takes the
 * current time, so a row completed while a reader pages is newer than anything already read.
 * - Ascending, the reader reaches it before the end: it gets every row completed before its last
 *   page, in completion order.
 * - Descending, the first page starts at the newest row; rows completed after that page are
 *   newer than the cursor and never returned: it gets exactly the rows completed before it
 *   started, newest first.
 */

let db: TestDatabase;
let store: AuditLogStore;

beforeAll(async () => {
  db = await createTestDatabase('store_paging');
  store = new AuditLogStore(db.pool, { listSafetyMarginMs: 0 });
});

afterAll(async () => {
  await db?.drop();
});

type How = 'success' | 'error' | 'timeout';
type Fate = { when: 'before' | 'during' | 'never'; how: How; rank: number };

const fate = fc.record({
  when: fc.constantFrom('before', 'during', 'never') as fc.Arbitrary<Fate['when']>,
  how: fc.constantFrom('success', 'error', 'timeout') as fc.Arbitrary<How>,
  rank: fc.nat({ max: 1000 }),
});

const scenario = fc.record({
  fates: fc.array(fate, { maxLength: 40 }),
  /** Page sizes, used in turn. */
  limits: fc.array(fc.integer({ min: 1, max: 20 }), { minLength: 1, maxLength: 30 }),
  /** How many rows complete after each page, used in turn. */
  bursts: fc.array(fc.integer({ min: 0, max: 4 }), { minLength: 1, maxLength: 30 }),
});

const EPOCH = '2000-01-01T00:00:00Z';
const newEntry = (i: number) => ({
  requestId: `req-${i}`,
  requestUri: `/v1/things/${i}`,
  operationId: 'thing_update',
  sourceIp: '198.51.100.7',
  actor: { kind: 'unauthenticated' as const },
});

/** Completes a row the way `how` says: through the store, or as the sweeper does. */
async function finish(id: string, how: How): Promise<void> {
  if (how === 'timeout') {
    await db.pool.query(
      `UPDATE audit_log SET time_completed = now(), result_kind = 'timeout'
        WHERE id = $1 AND time_completed IS NULL`,
      [id],
    );
    return;
  }
  const outcome = await store.complete(
    id,
    how === 'success'
      ? { kind: 'success', httpStatusCode: 200 }
      : { kind: 'error', httpStatusCode: 500, errorCode: 'Boom', errorMessage: 'boom' },
  );
  expect(outcome).toEqual({ applied: true });
}

const shown = (how: How) => (how === 'timeout' ? 'unknown' : how);

/** Orders the rows of one fate by rank (ties by position), as the order they complete in. */
const byRank = (fates: Fate[], when: Fate['when']) =>
  fates
    .map((f, i) => ({ ...f, i }))
    .filter((f) => f.when === when)
    .sort((a, b) => a.rank - b.rank || a.i - b.i)
    .map((f) => f.i);

/**
 * Pages through a query with the given page sizes; between pages, `between(page)` runs.
 * Checks the page contract on the way: no page exceeds its limit, and only a full page has a
 * token.
 */
async function readAll(
  query: Omit<ListQuery, 'limit' | 'pageToken'>,
  limits: number[],
  between: (page: number) => Promise<void> = async () => {},
): Promise<Entry[]> {
  const items: Entry[] = [];
  let pageToken: string | null = null;
  for (let page = 0; page < 1000; page++) {
    const limit = limits[page % limits.length] as number;
    const result = await store.list({ ...query, limit, pageToken });
    expect(result.items.length).toBeLessThanOrEqual(limit);
    // Every page carries a token, so a reader can always resume from where it stopped.
    if (result.items.length || pageToken) expect(result.nextPageToken).toEqual(expect.any(String));
    items.push(...result.items);
    if (result.items.length < limit) return items; // a short page: the end, for now
    pageToken = result.nextPageToken;
    await between(page);
  }
  throw new Error('paging did not end');
}

type Scenario = { fates: Fate[]; limits: number[]; bursts: number[] };

async function run(s: Scenario, order: Order): Promise<void> {
  await db.pool.query('TRUNCATE audit_log');
  const ids: string[] = [];
  for (let i = 0; i < s.fates.length; i++) ids.push(await store.init(newEntry(i)));
  const idOf = (i: number) => ids[i] as string;
  const howOf = new Map(s.fates.map((f, i) => [idOf(i), f.how]));

  // The order rows complete in, as it happens.
  const completed: string[] = [];
  for (const i of byRank(s.fates, 'before')) {
    await finish(idOf(i), s.fates[i]?.how as How);
    completed.push(idOf(i));
  }
  const completedBefore = [...completed];

  const pending = byRank(s.fates, 'during');
  const read = await readAll({ startTime: EPOCH, order }, s.limits, async (page) => {
    const burst = s.bursts[page % s.bursts.length] as number;
    for (const i of pending.splice(0, burst)) {
      await finish(idOf(i), s.fates[i]?.how as How);
      completed.push(idOf(i));
    }
  });
  const got = read.map((e) => e.id);

  // Sanity of the premise: completion order is (time_completed, id) order in the database.
  const { rows } = await db.pool.query(
    'SELECT id FROM audit_log WHERE time_completed IS NOT NULL ORDER BY time_completed, id',
  );
  expect(rows.map((r) => r.id)).toEqual(completed);

  expect(new Set(got).size).toBe(got.length);
  if (order === 'ascending') {
    expect(got).toEqual(completed);
  } else {
    expect(got).toEqual([...completedBefore].reverse());
  }
  for (const e of read) expect(e.result.kind).toBe(shown(howOf.get(e.id) as How));
  // Never an incomplete row.
  const never = new Set(byRank(s.fates, 'never').map(idOf));
  expect(got.filter((id) => never.has(id))).toEqual([]);
}

describe('paging while rows complete', () => {
  it('ascending: every row completed before the last page, each once, in completion order', async () => {
    await fc.assert(
      fc.asyncProperty(scenario, (s) => run(s, 'ascending')),
      { numRuns: 25 },
    );
  });

  it('descending: exactly the rows completed before the first page, newest first', async () => {
    await fc.assert(
      fc.asyncProperty(scenario, (s) => run(s, 'descending')),
      { numRuns: 25 },
    );
  });

  it('a row completed between pages is seen ascending and not descending (fixed example)', async () => {
    const fates: Fate[] = [
      { when: 'before', how: 'success', rank: 1 },
      { when: 'before', how: 'timeout', rank: 0 },
      { when: 'during', how: 'error', rank: 0 },
    ];
    await run({ fates, limits: [1], bursts: [1] }, 'ascending');
    await run({ fates, limits: [1], bursts: [1] }, 'descending');
  });
});

describe('time windows', () => {
  const windowScenario = fc.record({
    hows: fc.array(fc.constantFrom('success', 'error', 'timeout') as fc.Arbitrary<How>, {
      minLength: 1,
      maxLength: 30,
    }),
    /**
     * Microseconds between consecutive completion times: often 0 (ties, broken by id) and often
     * less than a millisecond, so bounds only work if kept to the microsecond.
     */
    gaps: fc.array(fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 1500 })), {
      minLength: 30,
      maxLength: 30,
    }),
    /** Window bounds as fractions of the completed rows: [start, end). */
    start: fc.double({ min: 0, max: 1, noNaN: true }),
    end: fc.option(fc.double({ min: 0, max: 1.2, noNaN: true }), { nil: null }),
    order: fc.constantFrom('ascending', 'descending') as fc.Arbitrary<Order>,
    limits: fc.array(fc.integer({ min: 1, max: 20 }), { minLength: 1, maxLength: 10 }),
  });

  it('returns exactly the rows completed in [startTime, endTime), with bounds to the microsecond', async () => {
    await fc.assert(
      fc.asyncProperty(windowScenario, async (s) => {
        await db.pool.query('TRUNCATE audit_log');
        const ids: string[] = [];
        for (let i = 0; i < s.hows.length; i++) {
          const id = await store.init(newEntry(i));
          await finish(id, s.hows[i] as How);
          ids.push(id);
        }
        // Completion times close together, some equal.
        let offset = 0;
        const offsets = ids.map((_, i) => (offset += s.gaps[i] as number));
        await db.pool.query(
          `UPDATE audit_log AS a
              SET time_started = '2024-05-31T23:59:59Z',
                  time_completed = '2024-06-01T00:00:00Z'::timestamptz + make_interval(secs => t.us / 1e6)
             FROM unnest($1::uuid[], $2::float8[]) AS t(id, us)
            WHERE a.id = t.id`,
          [ids, offsets],
        );
        const { rows: all } = await db.pool.query<{ id: string; t: string }>(
          `SELECT id, to_char(time_completed AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS t
             FROM audit_log ORDER BY time_completed, id`,
        );
        // The whole log, through the store, is in (time_completed, id) order.
        const listed = await readAll({ startTime: EPOCH }, [7]);
        expect(listed.map((e) => [e.id, e.timeCompleted])).toEqual(all.map((r) => [r.id, r.t]));

        const at = (fraction: number) =>
          all[Math.floor(fraction * all.length)]?.t ?? '2100-01-01T00:00:00.000000Z';
        const startTime = at(s.start);
        let endTime = s.end === null ? null : at(s.end);
        if (endTime !== null && endTime <= startTime) endTime = null;

        const expected = all.filter((r) => r.t >= startTime && (endTime === null || r.t < endTime));
        if (s.order === 'descending') expected.reverse();
        const got = await readAll({ startTime, endTime, order: s.order }, s.limits);
        expect(got.map((e) => e.id)).toEqual(expected.map((r) => r.id));
      }),
      { numRuns: 25 },
    );
  });
});
