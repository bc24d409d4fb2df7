import { describe, expect, it } from 'vitest';
import { insertRun, type RunRecord } from '../src/sql/run-history.ts';
import { useTestWorld } from './support/world.ts';

/** The runs table: one row per run, idempotent, trimmed to the newest rows of each kind. */

const world = useTestWorld('run_history');
const run = (i: number, kind: RunRecord['kind'] = 'sweep'): RunRecord => ({
  runId: `${kind}-${i}`,
  kind,
  trigger: 'schedule',
  startedAt: new Date(Date.UTC(2026, 0, 1, 0, i)).toISOString(),
  finishedAt: new Date(Date.UTC(2026, 0, 1, 0, i, 30)).toISOString(),
  durationMs: 30_000,
  rows: i,
  chunks: 1,
  partitions: 4,
  failedPartitions: i % 2 ? [1] : [],
  skippedPartitions: [],
  summary: { runId: `${kind}-${i}` },
});

const ids = async (kind: string) =>
  (
    await world.db.pool.query(
      'SELECT run_id FROM audit_sweeper_runs WHERE kind = $1 ORDER BY finished_at DESC',
      [kind],
    )
  ).rows.map((r) => r.run_id);

describe('audit_sweeper_runs', () => {
  it('keeps the newest runs of each kind, bounded, and records a run once', async () => {
    for (let i = 1; i <= 6; i++) await insertRun(world.db.pool, run(i), 3);
    await insertRun(world.db.pool, run(1, 'retention'), 3);
    await insertRun(world.db.pool, { ...run(6), rows: 999 }, 3);
    expect(await ids('sweep')).toEqual(['sweep-6', 'sweep-5', 'sweep-4']);
    expect(await ids('retention')).toEqual(['retention-1']);
    const { rows } = await world.db.pool.query(
      "SELECT rows::int, failed_partitions FROM audit_sweeper_runs WHERE run_id = 'sweep-5'",
    );
    expect(rows[0]).toEqual({ rows: 5, failed_partitions: [1] });
    expect(
      (
        await world.db.pool.query(
          "SELECT rows::int FROM audit_sweeper_runs WHERE run_id = 'sweep-6'",
        )
      ).rows[0].rows,
    ).toBe(6);
  });
});
