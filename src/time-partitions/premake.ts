import type pg from 'pg';
import { errorMessage } from '../errors.ts';
import type { Logger } from '../log.ts';
import * as sql from '../sql/time-partitions.ts';
import { withDdlLock } from './ddl-transaction.ts';

const DAY_MS = 86_400_000;

/**
 * How far ahead partitions exist: three days (or two spans, if longer), so a sweeper fleet that
 * is down over a weekend still finds the application's rows a partition of their own.
 */
export const premakeAheadMs = (spanMs: number) => Math.max(3 * DAY_MS, 2 * spanMs);

/** A partition is added only if its lock comes within 1 s; else it waits for the next tick. */
const ADD = { lockTimeoutMs: 1_000, attempts: 3, what: 'add a time partition' };

export type PremakeStatus = {
  created: string[];
  /** Rows moved out of the default partition into a partition created for them. */
  moved: number;
  error?: string;
};

/**
 * Creates the partitions still missing from the newest one up to premakeAheadMs from now. Runs
 * at every sweep tick (a catalog read when nothing is missing) and at `migrate`; a no-op on the
 * plain layout. Never throws (see `error`).
 */
export async function createFuturePartitions(
  db: pg.Pool | pg.ClientBase,
  logger: Logger,
  firstFrom?: string,
): Promise<PremakeStatus> {
  const status: PremakeStatus = { created: [], moved: 0 };
  try {
    const partitioning = await sql.readPartitioning(db);
    if (!partitioning?.converted || (await sql.auditLogLayout(db)) !== 'partitioned') return status;
    const ranges = (await sql.timePartitions(db)).filter((p) => !p.isDefault && p.to !== null);
    const spans = await sql.missingSpans(db, {
      after: ranges.at(-1)?.to ?? partitioning.legacyBound ?? firstFrom ?? null,
      spanMs: partitioning.spanMs,
      aheadMs: premakeAheadMs(partitioning.spanMs),
    });
    for (const span of spans) {
      status.moved += await withDdlLock(db, logger, ADD, (c) => sql.addTimePartition(c, span));
      status.created.push(span.name);
    }
    if (status.created.length)
      logger.info({ created: status.created, moved: status.moved }, 'time partitions created');
  } catch (err) {
    status.error = errorMessage(err);
    logger.warn(
      { err },
      'could not create the next time partitions; the default partition holds new rows meanwhile',
    );
  }
  return status;
}
