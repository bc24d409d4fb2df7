import type pg from 'pg';
import type { Logger } from '../log.ts';
import * as sql from '../sql/time-partitions.ts';
import { withDdlLock } from './ddl-transaction.ts';

/**
 * A detach waits at most 1 s for the parent's lock (ACCESS EXCLUSIVE: the application's writes
 * wait while it is held), once; else the partition goes at the next run.
 */
const DETACH = { lockTimeoutMs: 1_000, attempts: 1, what: 'detach an expired time partition' };

/** A detached partition is renamed so until dropped; an operator's own detached tables never are. */
const EXPIRED_PREFIX = 'audit_log_expired_';

export type HeldBack = {
  name: string;
  from: string | null;
  to: string;
  /** Why it stays: it holds incomplete rows (the sweeper finalizes them first), or rows completed within RETENTION. */
  reason: 'incomplete_rows' | 'recent_completions';
  incomplete: number;
  newestCompleted: string | null;
};

export type RetireStatus = { dropped: string[]; heldBack: HeldBack[] };

/**
 * Retention on the partitioned layout: every range partition that ended more than `retentionMs`
 * ago is detached and dropped whole, unless it still holds an incomplete row (never dropped:
 * the sweeper must finalize it first) or a row completed within the retention period (kept as
 * the plain layout keeps it). A dropped partition is one catalog change and a file unlinked:
 * no row-by-row delete, no WAL per row, no dead tuples for autovacuum. Rows are kept up to one
 * span longer than RETENTION, since a partition goes only when all of it has expired.
 *
 * Each partition is detached in a transaction of its own, the only step that holds the parent's
 * lock: a few milliseconds of catalog change, so the application's writes wait that long at
 * most, one partition at a time (one transaction for all of them held them for 0.4 s at 20
 * partitions). Its contents are read again after DETACH, under the lock: a row that arrived in
 * between (which the application cannot write: it starts rows at now()) rolls the detach back,
 * so no check-then-act race can lose a row. Detached, it is renamed audit_log_expired_*, and
 * dropped apart from the parent, which then waits for nothing; a drop that did not happen (the
 * process died) is done by the next run.
 */
export async function dropExpiredPartitions(
  db: pg.Pool,
  logger: Logger,
  o: { retentionMs: number; signal?: AbortSignal },
): Promise<RetireStatus> {
  const status: RetireStatus = { dropped: [], heldBack: [] };
  for (const p of await expiredPartitions(db, o.retentionMs)) {
    if (o.signal?.aborted) break;
    const held = await heldBackBy(db, p, o.retentionMs);
    if (held) {
      status.heldBack.push(held);
      continue;
    }
    await withDdlLock(db, logger, DETACH, async (c) => {
      await sql.detachTimePartition(c, p.name);
      if (await heldBackBy(c, p, o.retentionMs))
        throw new Error(`time partition ${p.name} received rows while it was being detached`);
      await sql.renameTable(c, p.name, `${EXPIRED_PREFIX}${p.name.replace(/^audit_log_/, '')}`);
    });
    status.dropped.push(p.name);
  }
  for (const table of await sql.tablesNamedLike(db, `${EXPIRED_PREFIX}%`))
    await sql.dropTable(db, table);
  if (status.dropped.length)
    logger.info({ dropped: status.dropped }, 'expired time partitions dropped');
  return status;
}

/** Range partitions (the legacy one included) whose upper bound is older than the retention. */
export async function expiredPartitions(db: pg.Pool | pg.ClientBase, retentionMs: number) {
  const now = Date.now();
  return (await sql.timePartitions(db)).filter(
    (p): p is sql.TimePartitionRow & { to: string } =>
      !p.isDefault && p.to !== null && Date.parse(p.to) <= now - retentionMs,
  );
}

/**
 * Why a partition must stay, or undefined. The retention edge is judged by the database's
 * clock, with the newest completion the partition holds.
 */
export async function heldBackBy(
  db: pg.Pool | pg.ClientBase,
  p: sql.TimePartitionRow & { to: string },
  retentionMs: number,
): Promise<HeldBack | undefined> {
  const c = await sql.partitionContents(db, p.name, retentionMs);
  const base = { name: p.name, from: p.from, to: p.to, ...c.contents };
  if (c.contents.incomplete > 0) return { ...base, reason: 'incomplete_rows' };
  if (c.recent) return { ...base, reason: 'recent_completions' };
  return undefined;
}
