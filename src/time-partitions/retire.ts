import type pg from 'pg';
import type { Logger } from '../log.ts';
import * as sql from '../sql/time-partitions.ts';
import { withDdlLock } from './ddl-transaction.ts';

/** A drop waits at most 1 s for its lock (the parent's, ACCESS EXCLUSIVE), once; else next run. */
const DROP = { lockTimeoutMs: 1_000, attempts: 1, what: 'drop a time partition' };

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
 * Their contents are read again after DETACH, under the lock, before the drop: a row that
 * arrived in between (which the application cannot write: it starts rows at now()) rolls the
 * whole transaction back, so no check-then-act race can lose a row.
 */
export async function dropExpiredPartitions(
  db: pg.Pool,
  logger: Logger,
  o: { retentionMs: number; signal?: AbortSignal },
): Promise<RetireStatus> {
  const status: RetireStatus = { dropped: [], heldBack: [] };
  const droppable: (sql.TimePartitionRow & { to: string })[] = [];
  for (const p of await expiredPartitions(db, o.retentionMs)) {
    const held = await heldBackBy(db, p, o.retentionMs);
    if (held) status.heldBack.push(held);
    else droppable.push(p);
  }
  if (droppable.length === 0 || o.signal?.aborted) return status;
  // One transaction for all of them: one wait for the parent's lock and one commit, not one per
  // partition (a backlog of expired days after an outage is dropped at once).
  const dropped = await withDdlLock(db, logger, DROP, async (c) => {
    for (const p of droppable) await sql.detachTimePartition(c, p.name);
    for (const p of droppable)
      if (await heldBackBy(c, p, o.retentionMs))
        throw new Error(`time partition ${p.name} received rows while it was being dropped`);
    for (const p of droppable) await sql.dropTable(c, p.name);
    return droppable.map((p) => p.name);
  });
  status.dropped.push(...dropped);
  logger.info({ dropped }, 'expired time partitions dropped');
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
