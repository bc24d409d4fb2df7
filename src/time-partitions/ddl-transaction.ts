import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { isLockTimeout } from '../db/pool.ts';
import type { Logger } from '../log.ts';
import { setLocalLockTimeout } from '../sql/time-partitions.ts';

export type DdlOptions = { lockTimeoutMs: number; attempts: number; what: string };

/**
 * Runs `step` as one transaction with a short lock_timeout, and again after a pause while the
 * lock is not granted in time. A DDL statement that waits in the lock queue makes every write
 * that comes after it wait too, so a busy table gets a statement that gives way, never one
 * that queues the application behind it. The last lock timeout is thrown.
 */
export async function withDdlLock<T>(
  db: pg.Pool | pg.ClientBase,
  logger: Logger,
  o: DdlOptions,
  step: (client: pg.ClientBase) => Promise<T>,
): Promise<T> {
  const client = db instanceof pg.Pool ? await db.connect() : db;
  try {
    for (let attempt = 1; ; attempt++) {
      await client.query('BEGIN');
      try {
        await setLocalLockTimeout(client, o.lockTimeoutMs);
        const result = await step(client);
        await client.query('COMMIT');
        return result;
      } catch (err) {
        await client.query('ROLLBACK');
        if (!isLockTimeout(err) || attempt >= o.attempts) throw err;
        logger.warn({ attempt, what: o.what }, 'DDL could not take its lock in time: trying again');
        await sleep(Math.min(1_000 * attempt, 5_000));
      }
    }
  } finally {
    if (client !== db) (client as pg.PoolClient).release();
  }
}
