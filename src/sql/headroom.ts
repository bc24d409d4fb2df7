import type { Queryable } from './fragments.ts';

export type OperationDurationsRow = { samples: number; p99Ms: number | null; maxMs: number | null };

/**
 * How long real operations took (time_completed - time_started) among the newest `limit` rows
 * completed with success or error within the window: the newest first along the
 * (time_completed, id) index, so the cost is bounded by `limit`, whatever the table holds.
 */
export async function operationDurations(
  db: Queryable,
  p: { windowMs: number; limit: number },
): Promise<OperationDurationsRow> {
  const { rows } = await db.query<OperationDurationsRow>(
    `SELECT count(*)::int AS samples,
            percentile_cont(0.99) WITHIN GROUP (ORDER BY d)::float8 AS "p99Ms",
            max(d)::float8 AS "maxMs"
       FROM (SELECT extract(epoch FROM time_completed - time_started) * 1000 AS d
               FROM audit_log
              WHERE time_completed IS NOT NULL
                AND time_completed > now() - make_interval(secs => $1::float8 / 1000)
                AND result_kind IN ('success', 'error')
              ORDER BY time_completed DESC, id DESC
              LIMIT $2) AS recent`,
    [p.windowMs, p.limit],
  );
  return rows[0] as OperationDurationsRow;
}
