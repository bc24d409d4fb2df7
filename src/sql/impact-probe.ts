import type { Queryable } from './fragments.ts';

/**
 * The adaptive throttle's probe: a one-row UPDATE committed synchronously (whatever the
 * session's default), so it waits for the WAL flush like the application's own audit writes.
 * Run on a connection of its own, so that it never queues behind the sweep's chunks in a pool.
 */
export async function probeCommit(db: Queryable): Promise<void> {
  await db.query(
    `WITH s AS (SELECT set_config('synchronous_commit', 'on', true))
     UPDATE audit_sweeper_probe SET at = now() FROM s WHERE id = 1`,
  );
}
