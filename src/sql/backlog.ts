import type { IdRange } from '../sweep/partitions.ts';
import { msAgo, type Queryable, rfc3339 } from './fragments.ts';

export type BacklogRow = {
  stale: number;
  incomplete: number;
  oldestStarted: string | null;
  oldestAgeMs: number;
};

/** Incomplete rows, how many of them are stale, and the oldest one's start and age. */
export async function backlog(db: Queryable, p: { staleAfterMs: number }): Promise<BacklogRow> {
  const { rows } = await db.query<BacklogRow>(
    `SELECT count(*) FILTER (WHERE time_started < ${msAgo('$1')})::int AS stale,
            count(*)::int AS incomplete,
            ${rfc3339('min(time_started)')} AS "oldestStarted",
            COALESCE(extract(epoch FROM now() - min(time_started)) * 1000, 0)::float8 AS "oldestAgeMs"
       FROM audit_log
      WHERE time_completed IS NULL`,
    [p.staleAfterMs],
  );
  return rows[0] as BacklogRow;
}

/**
 * Stale and incomplete rows of every id range, in one statement, in the order given. The lateral
 * join counts each range with its own scan of the partial index on (id, time_started) WHERE
 * time_completed IS NULL, so the cost follows the backlog, not the size of the table, and no
 * incomplete row is compared with every range.
 */
export async function backlogByRange(
  db: Queryable,
  p: { ranges: IdRange[]; staleAfterMs: number },
): Promise<{ stale: number; incomplete: number }[]> {
  const { rows } = await db.query<{ stale: number; incomplete: number }>(
    `SELECT c.stale, c.incomplete
       FROM unnest($1::uuid[], $2::uuid[]) WITH ORDINALITY AS p(low, high, ordinality)
      CROSS JOIN LATERAL (
        SELECT count(*) FILTER (WHERE a.time_started < ${msAgo('$3')})::int AS stale,
               count(*)::int AS incomplete
          FROM audit_log AS a
         WHERE a.time_completed IS NULL AND a.id BETWEEN p.low AND p.high
      ) AS c
      ORDER BY p.ordinality`,
    [p.ranges.map((r) => r.low), p.ranges.map((r) => r.high), p.staleAfterMs],
  );
  return rows;
}

export type StaleRangeRow = { stale: number; oldestStarted: string | null };

/**
 * The rows a sweep of each id range would finalize now, and the oldest of them: the dry run.
 * Plain reads of the partial index (no row lock, no write), so a real sweep never waits on it.
 */
export async function staleByRange(
  db: Queryable,
  p: { ranges: IdRange[]; staleAfterMs: number },
): Promise<{ cutoff: string; rows: StaleRangeRow[] }> {
  const { rows } = await db.query<StaleRangeRow & { cutoff: string }>(
    `SELECT c.stale, ${rfc3339('c.oldest')} AS "oldestStarted", ${rfc3339(msAgo('$3'))} AS cutoff
       FROM unnest($1::uuid[], $2::uuid[]) WITH ORDINALITY AS p(low, high, ordinality)
      CROSS JOIN LATERAL (
        SELECT count(*)::int AS stale, min(a.time_started) AS oldest
          FROM audit_log AS a
         WHERE a.time_completed IS NULL AND a.id BETWEEN p.low AND p.high
           AND a.time_started < ${msAgo('$3')}
      ) AS c
      ORDER BY p.ordinality`,
    [p.ranges.map((r) => r.low), p.ranges.map((r) => r.high), p.staleAfterMs],
  );
  return {
    cutoff: rows[0]?.cutoff ?? '',
    rows: rows.map(({ stale, oldestStarted }) => ({ stale, oldestStarted })),
  };
}
