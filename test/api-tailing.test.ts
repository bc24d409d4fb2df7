import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { completeEntry } from '../src/sql/store.ts';
import {
  type Dashboard,
  initEntries,
  newEntry,
  startDashboard,
} from './support/dashboard-harness.ts';

/**
 * A client tails the log over HTTP while writers complete entries and the sweeper times out the
 * ones whose completion was lost. It only ever follows next_page_token. With LIST_SAFETY_MARGIN
 * above the slowest commit, it gets every completed entry exactly once, in log order.
 */

type Wire = { id: string; time_completed: string; result: { kind: string } };
const key = (e: Wire) => `${e.time_completed} ${e.id}`;

type Tail = { received: Wire[]; passes: () => number; stop: () => Promise<void> };

/**
 * The documented way to tail: follow next_page_token; a short page is the end for now, so wait
 * and ask again with the same token. Nothing is filtered here, so a duplicate would show.
 * `stopAfter()` returns an instant: the tail ends after a pass that started later than it.
 */
function tail(d: Dashboard, from: string, stopAfter: () => number | undefined): Tail {
  const received: Wire[] = [];
  let token: string | null = null;
  let passes = 0;
  const limit = 7;
  const done = (async () => {
    for (;;) {
      const passStarted = Date.now();
      passes += 1;
      const query = new URLSearchParams({ start_time: from, limit: String(limit) });
      if (token) query.set('page_token', token);
      const res = await d.get(`/v1/audit-log?${query}`);
      if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
      const page = (await res.json()) as { items: Wire[]; next_page_token: string | null };
      received.push(...page.items);
      token = page.next_page_token;
      if (page.items.length === limit) continue;
      const until = stopAfter();
      if (until !== undefined && passStarted > until) return;
      await sleep(50);
    }
  })();
  return { received, passes: () => passes, stop: () => done };
}

/** Completes an entry in a transaction that commits `delayMs` after it took its timestamp. */
async function completeSlowly(d: Dashboard, id: string, delayMs: number): Promise<void> {
  const commit = await beginCompletion(d, id);
  await sleep(delayMs);
  await commit();
}

/**
 * Completes an entry in a transaction left open: its time_completed is the transaction's start
 * (now() in PostgreSQL); it becomes visible when the returned function commits it.
 */
async function beginCompletion(d: Dashboard, id: string): Promise<() => Promise<void>> {
  const client = await d.db.pool.connect();
  try {
    await client.query('BEGIN');
    await completeEntry(client, {
      id,
      resultKind: 'success',
      httpStatusCode: 200,
      errorCode: null,
      errorMessage: null,
    });
  } catch (err) {
    client.release();
    throw err;
  }
  return async () => {
    try {
      await client.query('COMMIT');
    } finally {
      client.release();
    }
  };
}

describe('a completion that commits late', () => {
  let withMargin: Dashboard;
  let withoutMargin: Dashboard;
  beforeAll(async () => {
    withMargin = await startDashboard('api_tail_margin', { LIST_SAFETY_MARGIN: '3s' });
    // No margin is below the setting's floor; the dashboard is given it anyway, to show why.
    withoutMargin = await startDashboard('api_tail_no_margin', {}, { LIST_SAFETY_MARGIN: 0 });
  });
  afterAll(async () => {
    await withMargin?.close();
    await withoutMargin?.close();
  });

  /**
   * Entry a takes its timestamp first but commits after entry b, while a reader tails. Without
   * a margin the reader is let read b before a commits; with one, a commits well within it.
   */
  async function scenario(d: Dashboard, marginMs: number) {
    const from = new Date(Date.now() - 60_000).toISOString();
    const [a, b] = (await initEntries(d.store, 2)) as [string, string];
    let stopAfter: number | undefined;
    const reader = tail(d, from, () => stopAfter);
    const commitA = await beginCompletion(d, a);
    await sleep(50);
    await d.store.complete(b, { kind: 'success', httpStatusCode: 200 });
    if (marginMs === 0) {
      await expect.poll(() => reader.received.some((e) => e.id === b)).toBe(true);
    } else {
      // The reader has looked at least twice while b was committed and a was not.
      const after = reader.passes() + 2;
      await expect.poll(() => reader.passes()).toBeGreaterThan(after);
    }
    await commitA();
    stopAfter = Date.now() + marginMs + 500;
    await reader.stop();
    return { a, b, ids: reader.received.map((e) => e.id) };
  }

  it('is missed by a reader of the log up to "now" (why the margin exists)', async () => {
    const { a, b, ids } = await scenario(withoutMargin, 0);
    expect(ids).toEqual([b]);
    expect(ids).not.toContain(a);
  });

  it('is read, in order, when the log is served LIST_SAFETY_MARGIN behind now', async () => {
    const { a, b, ids } = await scenario(withMargin, 3_000);
    expect(ids).toEqual([a, b]);
  });
});

describe('tailing while writers write and the sweeper sweeps', () => {
  // Well above the slow writers' commit delay (up to 0.5 s), with room for a busy machine.
  const MARGIN_MS = 2_000;
  let d: Dashboard;
  beforeAll(async () => {
    d = await startDashboard('api_tailing', {
      LIST_SAFETY_MARGIN: `${MARGIN_MS}ms`,
      STALE_AFTER: '2s',
      SWEEP_EVERY: '1s',
      SWEEP_PARTITIONS: '4',
      SWEEP_CHUNK_SIZE: '10',
    });
    await d.startWorker();
  });
  afterAll(async () => {
    await d?.close();
  });

  it('the reader gets every completed id exactly once', async () => {
    const from = new Date(Date.now() - 60_000).toISOString();
    let writing = true;
    let stopAfter: number | undefined;
    const reader = tail(d, from, () => stopAfter);
    let n = 0;
    const counts = { completed: 0, slow: 0, lost: 0 };

    const writer = async (kind: 'fast' | 'slow' | 'lost') => {
      while (writing) {
        const id = await d.store.init(newEntry(n++));
        if (kind === 'lost') {
          counts.lost += 1; // The application "crashed": the sweeper must time it out.
          await sleep(40);
        } else if (kind === 'slow') {
          await completeSlowly(d, id, 200 + Math.floor(Math.random() * 300));
          counts.slow += 1;
        } else {
          await sleep(Math.floor(Math.random() * 10));
          const ok = Math.random() < 0.8;
          await d.store.complete(
            id,
            ok
              ? { kind: 'success', httpStatusCode: 200 }
              : { kind: 'error', httpStatusCode: 409, errorMessage: 'conflict' },
          );
          counts.completed += 1;
        }
      }
    };
    const writers = [
      writer('fast'),
      writer('fast'),
      writer('fast'),
      writer('slow'),
      writer('slow'),
      writer('lost'),
    ];
    await sleep(6_000);
    writing = false;
    await Promise.all(writers);

    // The sweeper finishes the lost ones; then, once the margin has passed, the reader stops.
    await expect
      .poll(async () => {
        const { rows } = await d.db.pool.query(
          'SELECT count(*)::int AS n FROM audit_log WHERE time_completed IS NULL',
        );
        return rows[0].n;
      })
      .toBe(0);
    stopAfter = Date.now() + MARGIN_MS + 500;
    await reader.stop();

    const { rows } = await d.db.pool.query(
      `SELECT id, result_kind FROM audit_log WHERE time_completed IS NOT NULL`,
    );
    const ids = reader.received.map((e) => e.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect([...ids].sort()).toEqual(rows.map((r) => r.id).sort());
    // In log order, with no step backwards.
    const keys = reader.received.map(key);
    expect(keys).toEqual([...keys].sort());
    // Every kind of writer took part, and the sweeper's entries came through as `unknown`.
    expect(counts.lost).toBeGreaterThan(10);
    expect(counts.slow).toBeGreaterThan(5);
    expect(counts.completed).toBeGreaterThan(50);
    const timedOut = rows.filter((r) => r.result_kind === 'timeout').length;
    expect(timedOut).toBe(counts.lost);
    expect(reader.received.filter((e) => e.result.kind === 'unknown')).toHaveLength(timedOut);
  });
});
