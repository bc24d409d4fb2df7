import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CliProcess, runCli, startCli } from './support/cli.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';
import { createTestPrefix, TEST_REDIS_URL } from './support/redis.ts';

/**
 * The whole product the way a new user runs it: `audit-sweeper start` (migrate, worker and
 * dashboard in one process) with `audit-sweeper simulate` writing traffic in which some
 * operations never complete. Every entry must end up in the log: the crashed ones as
 * `unknown`, the completed ones as themselves.
 */

const PASSWORD = 'start-test-password';
type Wire = { id: string; result: { kind: string; http_status_code?: number } };

let db: TestDatabase;
let prefix: ReturnType<typeof createTestPrefix>;
let start: CliProcess;
let env: Record<string, string>;
let origin: string;

beforeAll(async () => {
  db = await createTestDatabase('start');
  prefix = createTestPrefix('start');
  env = {
    DATABASE_URL: db.url,
    REDIS_URL: TEST_REDIS_URL,
    QUEUE_PREFIX: prefix.prefix,
    // Longer than any simulated operation (up to 5 s), so only crashed ones are timed out.
    STALE_AFTER: '8s',
    SWEEP_EVERY: '1s',
    SWEEP_PARTITIONS: '4',
    LIST_SAFETY_MARGIN: '2s',
    DASHBOARD_PORT: '0',
    WORKER_METRICS_PORT: '0',
    DASHBOARD_PASSWORD: PASSWORD,
    RETENTION: 'off',
  };
  start = startCli(['start'], env);
  const line = await start.waitForOutput(/dashboard listening/);
  origin = `http://127.0.0.1:${JSON.parse(line).port}`;
});

afterAll(async () => {
  if (start && start.child.exitCode === null) {
    start.child.kill('SIGTERM');
    await start.exited;
  }
  await db?.drop();
  await prefix?.cleanup();
});

const auth = { authorization: `Basic ${Buffer.from(`admin:${PASSWORD}`).toString('base64')}` };

/** Everything the API lists, following the page token. */
async function readLog(): Promise<Wire[]> {
  const items: Wire[] = [];
  let token: string | null = null;
  for (;;) {
    const query = new URLSearchParams({ start_time: '2000-01-01T00:00:00Z', limit: '1000' });
    if (token) query.set('page_token', token);
    const res = await fetch(`${origin}/v1/audit-log?${query}`, { headers: auth });
    expect(res.status).toBe(200);
    const page = (await res.json()) as { items: Wire[]; next_page_token: string | null };
    items.push(...page.items);
    if (page.items.length < 1000) return items;
    token = page.next_page_token;
  }
}

describe('audit-sweeper start with simulated traffic', () => {
  it('lists every crashed entry as unknown and every completed one as itself', async () => {
    const simulate = await runCli(
      ['simulate', '--rate', '25', '--crash-ratio', '0.2', '--duration', '4s', '--seed', '7'],
      env,
    );
    expect(simulate.code).toBe(0);
    const finished = simulate.output.split('\n').find((l) => l.includes('simulation finished'));
    const report = JSON.parse(finished ?? '{}');
    expect(report.started).toBe(100);
    expect(report.crashed).toBeGreaterThan(0);
    expect(report.completed).toBeGreaterThan(0);
    expect(report.late).toBe(0);

    // The running system times out the crashed entries by itself, on its schedule.
    let listed: Wire[] = [];
    for (let i = 0; i < 120 && listed.length < report.started; i++) {
      await new Promise((r) => setTimeout(r, 500));
      listed = await readLog();
    }
    expect(listed).toHaveLength(report.started);
    expect(new Set(listed.map((e) => e.id)).size).toBe(report.started);
    const unknown = listed.filter((e) => e.result.kind === 'unknown');
    expect(unknown).toHaveLength(report.crashed);

    // The completed ones are listed with the result the application recorded.
    const { rows } = await db.pool.query(
      `SELECT id, result_kind, http_status_code FROM audit_log WHERE result_kind <> 'timeout'`,
    );
    expect(rows).toHaveLength(report.completed);
    const byId = new Map(listed.map((e) => [e.id, e.result]));
    for (const row of rows) {
      expect(byId.get(row.id)).toMatchObject({
        kind: row.result_kind,
        http_status_code: row.http_status_code,
      });
    }

    // `status` tells the same story from the command line.
    const status = await runCli(['status', '--json', '--runs', '500'], env);
    expect(status.code).toBe(0);
    const report2 = JSON.parse(status.output.trim().split('\n').at(-1) ?? '{}');
    expect(report2.backlog).toMatchObject({ stale: 0, inFlight: 0 });
    const finalized = report2.recentRuns.reduce(
      (n: number, r: { finalized: number }) => n + r.finalized,
      0,
    );
    expect(finalized).toBe(report.crashed);
    expect(report2.schedulers.map((s: { id: string }) => s.id)).toContain('sweep');
  });

  it('stops cleanly on SIGTERM', async () => {
    start.child.kill('SIGTERM');
    expect(await start.exited).toBe(0);
    expect(start.output()).toMatch(/shut down cleanly/);
  });
});
