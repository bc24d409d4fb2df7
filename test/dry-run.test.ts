import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { DryRunReport } from '../src/sweep/dry-run.ts';
import { partitionRange } from '../src/sweep/partitions.ts';
import { runCli } from './support/cli.ts';
import { basic, type Dashboard, startDashboard } from './support/dashboard-harness.ts';
import { processFleet, sweeperEnv } from './support/harness.ts';
import { rowsDigest, seed } from './support/seed.ts';

/**
 * `sweep --dry-run` and GET /api/dry-run: how many entries a sweep now would time out, per
 * partition and in total, and the oldest; nothing written, no lock a sweep would wait on.
 */

const READER = 'auditor';
const READER_PASSWORD = 'read only, never write';
let d: Dashboard;
const fleet = processFleet();

beforeAll(async () => {
  d = await startDashboard('dry_run', {
    DASHBOARD_READER_USER: READER,
    DASHBOARD_READER_PASSWORD: READER_PASSWORD,
  });
  // Stale (2 h and 5 h old), in flight (1 min old) and completed rows.
  await seed(d.db.pool, { kind: 'incomplete', count: 3_000, tag: 'stale' });
  await seed(d.db.pool, { kind: 'incomplete', count: 500, tag: 'older', ageMs: 5 * 3_600_000 });
  await seed(d.db.pool, { kind: 'incomplete', count: 700, tag: 'fresh', ageMs: 60_000 });
  await seed(d.db.pool, { kind: 'completed', count: 2_000, tag: 'done' });
});
afterEach((context) => fleet.cleanup(context));
afterAll(() => d?.close());

const env = (overrides: Record<string, string> = {}) =>
  sweeperEnv(
    { databaseUrl: d.db.url, prefix: d.config.QUEUE_PREFIX },
    { SWEEP_PARTITIONS: '8', ...overrides },
  );

/** What the database says a sweep with this cutoff finalizes, per partition of `partitions`. */
async function expected(staleAfter: string, partitions: number) {
  const perPartition = [];
  for (let i = 0; i < partitions; i++) {
    const r = partitionRange(i, partitions);
    const { rows } = await d.db.pool.query(
      `SELECT count(*)::int AS n FROM audit_log
        WHERE time_completed IS NULL AND id BETWEEN $1 AND $2 AND time_started < now() - $3::interval`,
      [r.low, r.high, staleAfter],
    );
    perPartition.push(rows[0].n as number);
  }
  return perPartition;
}

const everyRow = () => rowsDigest(d.db.pool, 'true');

// First: the workers' settings, once seen, stay the ones to count with (the last worker's).
describe('GET /api/dry-run', () => {
  it('gives the operator the same report, and the reader 403', async () => {
    const before = await everyRow();
    const res = await d.get('/api/dry-run');
    expect(res.status).toBe(200);
    const report = (await res.json()) as DryRunReport;
    expect(report.byPartition).toHaveLength(d.config.SWEEP_PARTITIONS);
    expect(report.byPartition.map((p) => p.wouldFinalize)).toEqual(
      await expected('4 hours', d.config.SWEEP_PARTITIONS),
    );
    expect(report.wouldFinalize).toBe(500);
    const reader = await d.get('/api/dry-run', {
      headers: { authorization: basic(READER, READER_PASSWORD) },
    });
    expect(reader.status).toBe(403);
    expect((await reader.json()).error.message).toMatch(/operator/);
    expect(await everyRow()).toEqual(before);
  });
});

describe('sweep --dry-run', () => {
  it('counts per partition and in total what a sweep would time out, and writes nothing', async () => {
    const before = await everyRow();
    const { code, output } = await runCli(['sweep', '--dry-run', '--json'], env());
    expect(code, output).toBe(0);
    const report = JSON.parse(output.trim().split('\n').at(-1) ?? '') as DryRunReport;
    expect(report.wouldFinalize).toBe(3_500);
    expect(report.byPartition.map((p) => p.wouldFinalize)).toEqual(await expected('1 hour', 8));
    expect(report.partitions).toBe(8);
    expect(report.settingsSource).toBe('own');
    // The oldest is one of the 5-hour-old rows.
    const { rows } = await d.db.pool.query(
      `SELECT min(time_started) AS t FROM audit_log WHERE time_completed IS NULL`,
    );
    expect(Date.parse(report.oldestStarted ?? '')).toBe((rows[0].t as Date).getTime());
    expect(await everyRow()).toEqual(before);

    const text = await runCli(['sweep', '--dry-run'], env({ STALE_AFTER: '3h' }));
    expect(text.code, text.output).toBe(0);
    expect(text.output).toMatch(/would time out 500 entries .*nothing was written/);
  });

  it('answers while a sweep chunk holds the stale rows locked: it takes no row lock', async () => {
    const chunk = new pg.Client({ connectionString: d.db.url });
    await chunk.connect();
    try {
      await chunk.query('BEGIN');
      await chunk.query(
        `SELECT id FROM audit_log WHERE time_completed IS NULL AND time_started < now() - interval '1 hour' FOR UPDATE`,
      );
      const { code, output } = await runCli(['sweep', '--dry-run', '--json'], env());
      expect(code, output).toBe(0);
      expect(JSON.parse(output.trim().split('\n').at(-1) ?? '').wouldFinalize).toBe(3_500);
    } finally {
      await chunk.query('ROLLBACK');
      await chunk.end();
    }
  });

  it('refuses --dry-run with --wait (exit 2)', async () => {
    const { code, output } = await runCli(['sweep', '--dry-run', '--wait'], env());
    expect(code).toBe(2);
    expect(output).toMatch(/--dry-run cannot be combined with --wait/);
  });

  it('counts with the settings the live workers run with, not its own', async () => {
    // A worker whose cutoff is 3 h and whose first tick finds nothing that old but the 500.
    const worker = fleet.start(['worker'], env({ STALE_AFTER: '6h', SWEEP_PARTITIONS: '4' }));
    await worker.waitForOutput(/"msg":"sweep worker started"/);
    await expect
      .poll(async () => {
        const { output } = await runCli(['sweep', '--dry-run', '--json'], env());
        return JSON.parse(output.trim().split('\n').at(-1) ?? '{}').settingsSource;
      })
      .toBe('workers');
    const { output } = await runCli(['sweep', '--dry-run', '--json'], env());
    const report = JSON.parse(output.trim().split('\n').at(-1) ?? '') as DryRunReport;
    expect(report.partitions).toBe(4);
    expect(report.staleAfterMs).toBe(6 * 3_600_000);
    expect(report.wouldFinalize).toBe(0);
  });
});
