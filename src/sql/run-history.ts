import type { Queryable } from './fragments.ts';

/** How many runs of each kind the table keeps; older ones are deleted as new ones arrive. */
export const RUNS_KEPT = 10_000;

export type RunRecord = {
  runId: string;
  kind: 'sweep' | 'retention';
  trigger: string | null;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  rows: number;
  chunks: number;
  partitions: number | null;
  failedPartitions: number[];
  skippedPartitions: number[];
  summary: unknown;
};

/**
 * Records a finished run (idempotent: a run job retried after recording keeps the first row),
 * then trims its kind to the newest `keep` rows (RUNS_KEPT).
 */
export async function insertRun(db: Queryable, r: RunRecord, keep = RUNS_KEPT): Promise<void> {
  await db.query(
    `INSERT INTO audit_sweeper_runs (run_id, kind, trigger, started_at, finished_at, duration_ms,
                                     rows, chunks, partitions, failed_partitions,
                                     skipped_partitions, summary)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
     ON CONFLICT (run_id) DO NOTHING`,
    [
      r.runId,
      r.kind,
      r.trigger,
      r.startedAt,
      r.finishedAt,
      r.durationMs,
      r.rows,
      r.chunks,
      r.partitions,
      r.failedPartitions,
      r.skippedPartitions,
      JSON.stringify(r.summary),
    ],
  );
  // Served by the (kind, finished_at DESC) index: skips `keep` entries, deletes what is older.
  await db.query(
    `DELETE FROM audit_sweeper_runs
      WHERE kind = $1
        AND run_id IN (SELECT run_id FROM audit_sweeper_runs WHERE kind = $1
                        ORDER BY finished_at DESC, run_id DESC OFFSET $2)`,
    [r.kind, keep],
  );
}

/** The last `count` runs' summaries of a kind, newest first. */
export async function recentRunSummaries(
  db: Queryable,
  p: { kind: 'sweep' | 'retention'; count: number },
): Promise<unknown[]> {
  const { rows } = await db.query<{ summary: unknown }>(
    `SELECT summary FROM audit_sweeper_runs WHERE kind = $1
      ORDER BY finished_at DESC, run_id DESC LIMIT $2`,
    [p.kind, p.count],
  );
  return rows.map((r) => r.summary);
}
