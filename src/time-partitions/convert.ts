import type pg from 'pg';
import type { Logger } from '../log.ts';
import * as mig from '../sql/migrations.ts';
import * as sql from '../sql/time-partitions.ts';
import { withDdlLock } from './ddl-transaction.ts';
import { createFuturePartitions } from './premake.ts';

/** The cutover waits at most 2 s for its lock, then gives way and tries again (30 times). */
const CUTOVER = { lockTimeoutMs: 2_000, attempts: 30, what: 'audit_log cutover' };

export type ConvertOptions = {
  spanMs: number;
  logger: Logger;
  /** A new database only: partitions from this instant on, not from now (bench and tests). */
  firstPartitionFrom?: string;
};

/**
 * Converts a plain audit_log to the time-partitioned layout, at `migrate` with
 * AUDIT_LOG_LAYOUT=partitioned. Nothing is copied: an empty table (a new database) is replaced
 * in one transaction; a table with rows is kept whole as the first partition, audit_log_legacy,
 * after everything slow has run beside the application's writes (a CHECK added NOT VALID then
 * validated, and two indexes built CONCURRENTLY), so the only lock that stops writes is the
 * cutover's, a catalog change of milliseconds. Every step may be run again: a conversion that
 * died half way resumes at the next `migrate`. The legacy partition is dropped whole when its
 * rows pass RETENTION; meanwhile retention deletes its expired rows in chunks, as before.
 */
export async function convertToTimePartitions(
  client: pg.Client,
  o: ConvertOptions,
): Promise<'converted' | 'already'> {
  if ((await sql.auditLogLayout(client)) === 'partitioned') return 'already';
  await sql.createPartitioningTable(client);
  if (!(await replacedEmpty(client, o))) {
    const bound = await sql.startConversion(client, { spanMs: o.spanMs, empty: false });
    o.logger.info(
      { bound },
      'converting audit_log to time partitions: the rows stay where they are',
    );
    await withDdlLock(client, o.logger, CUTOVER, (c) => sql.addLegacyBoundCheck(c, bound));
    await sql.validateLegacyBoundCheck(client);
    for (const index of Object.keys(sql.LEGACY_INDEXES) as (keyof typeof sql.LEGACY_INDEXES)[]) {
      // A build that failed earlier left its index INVALID: build it again (see migrate.ts).
      if ((await mig.invalidIndexes(client, [index])).length)
        await mig.dropIndexConcurrently(client, index);
      o.logger.info({ index }, 'building an index of the old table without blocking writes');
      await sql.buildLegacyIndex(client, index);
    }
    await withDdlLock(client, o.logger, CUTOVER, (c) => sql.cutOverWithLegacy(c, bound));
  }
  const created = await createFuturePartitions(client, o.logger, o.firstPartitionFrom);
  o.logger.info({ created: created.created }, 'audit_log is partitioned by time_started');
  return 'converted';
}

/** The new-database case; false when the table holds rows (or received one meanwhile). */
async function replacedEmpty(client: pg.Client, o: ConvertOptions) {
  if (!(await sql.auditLogIsEmpty(client))) return false;
  await sql.startConversion(client, { spanMs: o.spanMs, empty: true });
  try {
    await withDdlLock(client, o.logger, CUTOVER, (c) => sql.replaceEmpty(c));
    return true;
  } catch (err) {
    // 55000: a row arrived since the table was found empty; it is converted with its rows.
    if ((err as { code?: string }).code === '55000') return false;
    throw err;
  }
}
