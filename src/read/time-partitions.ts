import type { Pool } from '../db/pool.ts';
import { humanDuration } from '../duration.ts';
import * as sql from '../sql/time-partitions.ts';
import { expiredPartitions, type HeldBack, heldBackBy } from '../time-partitions/retire.ts';

/** The time-partitioned layout as the overview shows it; `layout: 'plain'` says nothing else. */
export type TimePartitions =
  | { layout: 'plain' }
  | {
      layout: 'partitioned';
      spanMs: number;
      /** Range partitions, the legacy one (the converted plain table) included. */
      count: number;
      oldestFrom: string | null;
      newestTo: string | null;
      /** How far the newest partition reaches past now (negative: rows go to the default). */
      aheadMs: number | null;
      /** Rows no range partition holds: a clock far off, or a partition not created in time. */
      defaultRows: number;
      /** Where the legacy partition ends, while there is one. */
      legacyTo: string | null;
      /** Partitions past RETENTION that retention keeps, and why (null when RETENTION is off). */
      heldBack: HeldBack[] | null;
    };

/** Read again at most this often: the overview is read on every page load and scrape. */
const CACHE_MS = 60_000;
const cache = new WeakMap<
  Pool,
  { at: number; key: number | null; value: Promise<TimePartitions> }
>();

/** The layout and its partitions, cached a minute per pool (and per retention setting). */
export function readTimePartitions(
  pool: Pool,
  retentionMs: number | null,
  now = Date.now(),
): Promise<TimePartitions> {
  const hit = cache.get(pool);
  if (hit && hit.key === retentionMs && now - hit.at < CACHE_MS) return hit.value;
  const value = read(pool, retentionMs);
  cache.set(pool, { at: now, key: retentionMs, value });
  value.catch(() => cache.delete(pool));
  return value;
}

async function read(pool: Pool, retentionMs: number | null): Promise<TimePartitions> {
  if ((await sql.auditLogLayout(pool)) !== 'partitioned') return { layout: 'plain' };
  const [partitioning, partitions, defaultRows] = await Promise.all([
    sql.readPartitioning(pool),
    sql.timePartitions(pool),
    sql.defaultPartitionRows(pool),
  ]);
  const ranges = partitions.filter((p) => !p.isDefault);
  const newestTo = ranges.at(-1)?.to ?? null;
  const heldBack =
    retentionMs === null
      ? null
      : (
          await Promise.all(
            (
              await expiredPartitions(pool, retentionMs)
            ).map((p) => heldBackBy(pool, p, retentionMs)),
          )
        ).filter((h): h is HeldBack => h !== undefined);
  return {
    layout: 'partitioned',
    spanMs: partitioning?.spanMs ?? 0,
    count: ranges.length,
    oldestFrom: ranges[0]?.from ?? null,
    newestTo,
    aheadMs: newestTo === null ? null : Date.parse(newestTo) - Date.now(),
    defaultRows,
    legacyTo: ranges.find((p) => p.name === 'audit_log_legacy')?.to ?? null,
    heldBack,
  };
}

/** One line for `status` and the dashboard; the held-back partitions follow as lines of their own. */
export function describeTimePartitions(t: TimePartitions | null): {
  summary: string;
  heldBack: string[];
} {
  if (t === null) return { summary: 'unknown (PostgreSQL does not answer)', heldBack: [] };
  if (t.layout === 'plain')
    return {
      summary: 'plain table (AUDIT_LOG_LAYOUT=plain): retention deletes row by row',
      heldBack: [],
    };
  const ahead =
    t.aheadMs === null ? 'none ahead' : `${humanDuration(Math.max(0, t.aheadMs))} ahead`;
  const summary = [
    `${t.count} of ${humanDuration(t.spanMs)} each, from ${t.oldestFrom ?? 'the converted table'} to ${t.newestTo ?? '?'} (${ahead})`,
    `${t.defaultRows} rows in the default partition`,
    ...(t.legacyTo ? [`the converted plain table holds rows started before ${t.legacyTo}`] : []),
  ].join('; ');
  const heldBack = (t.heldBack ?? []).map(
    (h) =>
      `${h.name} (to ${h.to}) is past RETENTION but kept: ${
        h.reason === 'incomplete_rows'
          ? `${h.incomplete} incomplete rows, which the sweeper must finalize first`
          : `a row completed at ${h.newestCompleted}, within RETENTION`
      }`,
  );
  return { summary, heldBack };
}
