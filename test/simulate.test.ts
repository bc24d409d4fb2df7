import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseSimulateOptions } from '../src/cli/simulate-options.ts';
import { planOperations } from '../src/simulate/operations.ts';
import { type Outcome, runTraffic, type TrafficReport } from '../src/simulate/traffic.ts';
import { AuditLogStore } from '../src/store/store.ts';
import { parseCompletion, parseNewEntry } from '../src/store/validate.ts';
import { runCli, startCli } from './support/cli.ts';
import { adminQuery, createTestDatabase, type TestDatabase } from './support/db.ts';
import { captureLogger } from './support/logs.ts';

let db: TestDatabase;
let store: AuditLogStore;

beforeAll(async () => {
  db = await createTestDatabase('simulate');
  store = new AuditLogStore(db.pool);
});
afterAll(async () => {
  await db?.drop();
});

/** Every row among `ids`, grouped the way a report counts them. */
async function databaseCounts(ids: string[]) {
  const { rows } = await db.pool.query(
    `SELECT count(*)::int AS total,
            count(*) FILTER (WHERE result_kind IS NULL)::int AS incomplete,
            count(*) FILTER (WHERE result_kind = 'success')::int AS success,
            count(*) FILTER (WHERE result_kind = 'error')::int AS error,
            count(*) FILTER (WHERE result_kind = 'timeout')::int AS timeout
       FROM audit_log WHERE id = ANY($1::uuid[])`,
    [ids],
  );
  const byStatus = await db.pool.query(
    `SELECT http_status_code::text AS status, count(*)::int AS n FROM audit_log
      WHERE id = ANY($1::uuid[]) AND http_status_code IS NOT NULL GROUP BY 1`,
    [ids],
  );
  return {
    ...rows[0],
    byStatus: Object.fromEntries(byStatus.rows.map((r) => [r.status, r.n])),
  } as {
    total: number;
    incomplete: number;
    success: number;
    error: number;
    timeout: number;
    byStatus: Record<string, number>;
  };
}

async function idsWhere(ids: string[], condition: string): Promise<Set<string>> {
  const { rows } = await db.pool.query(
    `SELECT id FROM audit_log WHERE id = ANY($1::uuid[]) AND ${condition}`,
    [ids],
  );
  return new Set(rows.map((r) => r.id as string));
}

function tracker() {
  const outcomes = new Map<string, Outcome>();
  const of = (o: Outcome) => [...outcomes].filter(([, x]) => x === o).map(([id]) => id);
  return { outcomes, of, onSettled: (id: string, o: Outcome) => outcomes.set(id, o) };
}

function expectReportMatchesDatabase(
  report: TrafficReport,
  counts: Awaited<ReturnType<typeof databaseCounts>>,
) {
  expect(report.inFlight).toBe(0);
  expect(report.initFailed).toBe(0);
  expect(report.completeFailed).toBe(0);
  expect(report.late).toBe(0);
  expect(counts.total).toBe(report.started);
  expect(counts.incomplete).toBe(report.crashed);
  expect(counts.success + counts.error).toBe(report.completed);
  expect(counts.success).toBe(report.results.success);
  expect(counts.error).toBe(report.results.error);
  expect(counts.timeout).toBe(0);
  expect(counts.byStatus).toEqual(report.byStatus);
  expect(report.started).toBe(report.completed + report.crashed);
}

describe('runTraffic against PostgreSQL', () => {
  it('writes N per second for the duration; its counts match the database', async () => {
    const t = tracker();
    const { logger, records } = captureLogger();
    const report = await runTraffic(store, {
      rate: 200,
      crashRatio: 0.25,
      durationMs: 1_500,
      seed: 42,
      summaryEveryMs: 250,
      logger,
      onSettled: t.onSettled,
    });

    // Operation i is due at i/rate: a 1.5 s run at 200/s issues exactly 300, however slow the
    // machine (late ones are issued at the deadline).
    expect(report.started).toBe(300);
    const ids = [...t.outcomes.keys()];
    expect(ids).toHaveLength(300);
    expectReportMatchesDatabase(report, await databaseCounts(ids));

    // The crashed ones are exactly the incomplete rows; the completed ones exactly the rest.
    expect(await idsWhere(ids, 'time_completed IS NULL')).toEqual(new Set(t.of('crashed')));
    expect(await idsWhere(ids, 'time_completed IS NOT NULL')).toEqual(new Set(t.of('completed')));
    // About a quarter crashed (binomial, n=300, p=0.25: mean 75, sd 7.5).
    expect(report.crashed).toBeGreaterThan(40);
    expect(report.crashed).toBeLessThan(110);
    expect(report.results.error).toBeGreaterThan(0);
    expect(report.results.success).toBeGreaterThan(report.results.error);

    // Summaries while running and one at the end, with the same numbers as the report.
    const lines = records();
    expect(lines.filter((l) => l.msg === 'simulated traffic').length).toBeGreaterThan(0);
    const final = lines.find((l) => l.msg === 'simulation finished');
    expect(final).toMatchObject({
      started: report.started,
      completed: report.completed,
      crashed: report.crashed,
      inFlight: 0,
    });
  });

  it('the traffic looks real: every actor kind, auth method, v4 and v6, successes and errors', async () => {
    const t = tracker();
    const report = await runTraffic(store, {
      rate: 400,
      crashRatio: 0.1,
      durationMs: 1_000,
      seed: 7,
      onSettled: t.onSettled,
    });
    const ids = [...t.outcomes.keys()];
    expectReportMatchesDatabase(report, await databaseCounts(ids));
    const { rows } = await db.pool.query(
      `SELECT array_agg(DISTINCT actor_kind::text) AS actors,
              array_agg(DISTINCT auth_method::text) FILTER (WHERE auth_method IS NOT NULL) AS auth,
              array_agg(DISTINCT family(source_ip)) AS families,
              count(DISTINCT operation_id)::int AS operations,
              count(DISTINCT actor_silo_id)::int AS silos,
              count(DISTINCT user_agent)::int AS agents,
              bool_and(request_uri LIKE '/%') AS uris,
              array_agg(DISTINCT http_status_code) FILTER (WHERE result_kind = 'error') AS errors,
              bool_and(error_message IS NOT NULL) FILTER (WHERE result_kind = 'error') AS messages
         FROM audit_log WHERE id = ANY($1::uuid[])`,
      [ids],
    );
    const r = rows[0];
    expect([...r.actors].sort()).toEqual(['scim', 'silo_user', 'unauthenticated', 'user_builtin']);
    expect([...r.auth].sort()).toEqual(['access_token', 'scim_token', 'session_cookie', 'spoof']);
    expect([...r.families].sort()).toEqual([4, 6]);
    expect(r.operations).toBeGreaterThan(15);
    expect(r.silos).toBeGreaterThan(1);
    expect(r.agents).toBeGreaterThan(3);
    expect(r.uris).toBe(true);
    expect(r.messages).toBe(true);
    expect(r.errors.length).toBeGreaterThan(3);
    for (const status of r.errors) expect(status).toBeGreaterThanOrEqual(400);
  });

  it('crash ratio 1 completes nothing; 0 completes everything', async () => {
    const all = tracker();
    const crashAll = await runTraffic(store, {
      rate: 50,
      crashRatio: 1,
      durationMs: 200,
      onSettled: all.onSettled,
    });
    expect(crashAll.started).toBe(10);
    expect(crashAll.crashed).toBe(10);
    expect(crashAll.completed).toBe(0);
    expectReportMatchesDatabase(crashAll, await databaseCounts([...all.outcomes.keys()]));

    const none = tracker();
    const crashNone = await runTraffic(store, {
      rate: 50,
      crashRatio: 0,
      durationMs: 200,
      onSettled: none.onSettled,
    });
    expect(crashNone.crashed).toBe(0);
    expect(crashNone.completed).toBe(10);
    expectReportMatchesDatabase(crashNone, await databaseCounts([...none.outcomes.keys()]));
  });

  it('without a duration it runs until aborted, then lets the operations in flight complete', async () => {
    const t = tracker();
    const stop = new AbortController();
    const report = await runTraffic(store, {
      rate: 200,
      crashRatio: 0.2,
      signal: stop.signal,
      onSettled: (id, o) => {
        t.onSettled(id, o);
        if (t.outcomes.size === 30) stop.abort();
      },
    });
    expect(report.started).toBeGreaterThanOrEqual(30);
    expect(t.outcomes.size).toBe(report.started);
    expectReportMatchesDatabase(report, await databaseCounts([...t.outcomes.keys()]));
  });

  it('counts a completion that arrives after the sweeper finalized the row as late', async () => {
    const t = tracker();
    // A stand-in for the sweeper: times out every row as soon as it is initialized.
    const racing = new AuditLogStore(db.pool);
    const init = racing.init.bind(racing);
    racing.init = async (entry) => {
      const id = await init(entry);
      await db.pool.query(
        `UPDATE audit_log SET time_completed = now(), result_kind = 'timeout' WHERE id = $1`,
        [id],
      );
      return id;
    };
    const report = await runTraffic(racing, {
      rate: 50,
      crashRatio: 0.5,
      durationMs: 400,
      seed: 3,
      onSettled: t.onSettled,
    });
    expect(report.started).toBe(20);
    expect(report.completed).toBe(0);
    expect(report.late + report.crashed).toBe(20);
    expect(report.late).toBeGreaterThan(0);
    const counts = await databaseCounts([...t.outcomes.keys()]);
    expect(counts.timeout).toBe(20);
  });

  it('rejects nonsense options', async () => {
    await expect(runTraffic(store, { rate: 0, crashRatio: 0, durationMs: 10 })).rejects.toThrow(
      /rate/,
    );
    await expect(runTraffic(store, { rate: 1, crashRatio: 2, durationMs: 10 })).rejects.toThrow(
      /crashRatio/,
    );
  });
});

describe('generated operations', () => {
  it('are valid store input for any seed, and the same seed gives the same mix', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 32 - 1 }), (seed) => {
        const plans = planOperations(seed, 200, 0.1);
        for (const p of plans) {
          parseNewEntry(p.entry);
          parseCompletion(p.result);
          expect(p.delayMs).toBeGreaterThan(0);
          expect(p.delayMs).toBeLessThanOrEqual(5_000);
          const ok = p.result.kind === 'success';
          expect(p.result.httpStatusCode < 400).toBe(ok);
        }
        const again = planOperations(seed, 200, 0.1);
        const strip = (ps: typeof plans) =>
          ps.map((p) => ({ ...p, entry: { ...p.entry, requestId: '' } }));
        expect(strip(again)).toEqual(strip(plans));
      }),
      { numRuns: 50 },
    );
  });

  it('have delays of tens to hundreds of milliseconds, sometimes seconds', () => {
    const delays = planOperations(1, 5_000, 0)
      .map((p) => p.delayMs)
      .sort((a, b) => a - b);
    const at = (q: number) => delays[Math.floor(q * (delays.length - 1))] as number;
    expect(at(0.5)).toBeGreaterThanOrEqual(20);
    expect(at(0.5)).toBeLessThan(500);
    expect(at(0.99)).toBeGreaterThanOrEqual(1_000);
    expect(delays.filter((d) => d >= 1_000).length / delays.length).toBeLessThan(0.1);
  });
});

describe('audit-sweeper simulate (CLI)', () => {
  it.each([
    [['--rate', '0'], /invalid --rate "0"/],
    [['--rate', 'fast'], /invalid --rate "fast"/],
    [['--rate', '-5'], /rate/],
    [['--crash-ratio', '1.5'], /invalid --crash-ratio "1.5"/],
    [['--crash-ratio', 'half'], /invalid --crash-ratio/],
    [['--duration', '10'], /invalid --duration "10"/],
    [['--duration', '0s'], /invalid --duration/],
    [['--seed', '-1'], /seed/],
    [['--speed', '3'], /Unknown option '--speed'/],
    [['extra'], /extra/],
  ])('parses %j as a usage error', (args, message) => {
    const result = parseSimulateOptions(args);
    expect(typeof result).toBe('string');
    expect(result).toMatch(message);
    expect(result).not.toContain('\n');
  });

  it('parses good options, with defaults', () => {
    expect(parseSimulateOptions([])).toEqual({ rate: 20, crashRatio: 0.05 });
    expect(
      parseSimulateOptions([
        '--rate',
        '0.5',
        '--crash-ratio',
        '.2',
        '--duration',
        '2m',
        '--seed',
        '9',
      ]),
    ).toEqual({ rate: 0.5, crashRatio: 0.2, durationMs: 120_000, seed: 9 });
  });

  it('exits 2 with a one-line message for bad option values', async () => {
    for (const args of [
      ['--rate', 'fast'],
      ['--crash-ratio', '2'],
      ['--duration', 'soon'],
      ['--nope'],
    ]) {
      const { code, output } = await runCli(['simulate', ...args], { DATABASE_URL: db.url });
      expect(code, output).toBe(2);
      expect(output.trim().split('\n'), output).toHaveLength(1);
    }
  });

  it('runs for --duration, exits 0, and its final summary matches the database', async () => {
    const { rows: seen } = await db.pool.query('SELECT id FROM audit_log');
    const { code, output } = await runCli(
      ['simulate', '--rate', '50', '--crash-ratio', '0.3', '--duration', '1s'],
      { DATABASE_URL: db.url },
    );
    expect(code, output).toBe(0);
    const final = output
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l))
      .find((l) => l.msg === 'simulation finished');
    expect(final, output).toBeDefined();
    expect(final.started).toBe(50);
    const { rows } = await db.pool.query(
      `SELECT count(*)::int AS total, count(*) FILTER (WHERE time_completed IS NULL)::int AS crashed
         FROM audit_log WHERE NOT (id = ANY($1::uuid[]))`,
      [seen.map((r) => r.id)],
    );
    expect(rows[0]).toEqual({ total: final.started, crashed: final.crashed });
    expect(final.completed).toBe(final.started - final.crashed);
  });

  it('on SIGTERM stops, completes what is in flight and exits 0', async () => {
    const { rows: seen } = await db.pool.query('SELECT id FROM audit_log');
    const p = startCli(['simulate', '--rate', '100', '--crash-ratio', '0.2'], {
      DATABASE_URL: db.url,
    });
    await p.waitForOutput(/"msg":"simulating traffic"/);
    const countNew = async () =>
      (
        await db.pool.query(
          `SELECT count(*)::int AS total,
                  count(*) FILTER (WHERE time_completed IS NULL)::int AS incomplete
             FROM audit_log WHERE NOT (id = ANY($1::uuid[]))`,
          [seen.map((r) => r.id)],
        )
      ).rows[0] as { total: number; incomplete: number };
    while ((await countNew()).total < 20) await new Promise((r) => setTimeout(r, 50));
    p.child.kill('SIGTERM');
    expect(await p.exited, p.output()).toBe(0);
    const final = JSON.parse(
      p
        .output()
        .split('\n')
        .find((l) => l.includes('"msg":"simulation finished"')) ?? 'null',
    );
    expect(final, p.output()).not.toBeNull();
    expect(final.inFlight).toBe(0);
    expect(await countNew()).toEqual({ total: final.started, incomplete: final.crashed });
  });

  it('exits 1 with a clear message when the database has no audit log', async () => {
    const name = `${db.name}_unmigrated`;
    await adminQuery(`CREATE DATABASE "${name}"`);
    try {
      const url = new URL(db.url);
      url.pathname = `/${name}`;
      const { code, output } = await runCli(['simulate', '--duration', '1s'], {
        DATABASE_URL: url.toString(),
      });
      expect(code, output).toBe(1);
      expect(output).toMatch(/run `audit-sweeper migrate` first/);
    } finally {
      await adminQuery(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    }
  });
});
