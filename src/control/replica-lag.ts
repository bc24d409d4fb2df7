import type { Pool } from '../db/pool.ts';
import type { Logger } from '../log.ts';
import { type ReplicationRow, readReplication } from '../sql/control.ts';
import { cachedReader } from './sampler.ts';

export type ReplicaLag = {
  /** The most lagging replica: its name, lag (ms) and unreplayed WAL (bytes). */
  replica: string;
  lagMs: number;
  bytes: number | null;
};

/** How long the history of WAL positions goes back: lags beyond it read as at least this. */
const HISTORY_MS = 3_600_000;

/**
 * Measures the worst streaming replica's replay lag, as a time. PostgreSQL's `replay_lag` alone
 * does not do: it is computed only when the replica reports progress, so a replica that stopped
 * replaying (paused, stuck on a lock, out of disk) keeps showing its last small value while it
 * falls behind. This monitor therefore also keeps a short history of the primary's WAL position
 * (time first seen at each position) and reads a replica's lag as at least the time since the
 * primary first went past what the replica has replayed; the larger of the two counts.
 *
 * A user that may not read replica positions (no pg_monitor / pg_read_all_stats, or the view
 * revoked) is told once in the log; the throttle then stays out of the way.
 */
export class ReplicaLagMonitor {
  private history: { at: number; lsn: bigint }[] = [];
  private warned = false;
  private disabled = false;
  readonly read: () => Promise<ReplicaLag | null>;

  constructor(
    private readonly pool: Pool,
    private readonly logger: Logger,
    intervalMs: number,
  ) {
    this.read = cachedReader(intervalMs, () => this.measure());
  }

  private async measure(): Promise<ReplicaLag | null> {
    if (this.disabled) return null;
    let rows: ReplicationRow[];
    try {
      rows = await readReplication(this.pool);
    } catch (err) {
      if ((err as { code?: string }).code === '42501') {
        this.disabled = true;
        this.logger.warn(
          { err: (err as Error).message },
          'cannot read pg_stat_replication: SWEEP_MAX_REPLICA_LAG is not enforced (grant pg_monitor to the sweeper user)',
        );
      } else
        this.logger.warn({ err }, 'could not read replica lag; trying again at the next chunk');
      return null;
    }
    const now = Date.now();
    const first = rows[0];
    if (!first) {
      this.history = [];
      return null;
    }
    const current = BigInt(first.currentLsn);
    const last = this.history.at(-1);
    if (!last || current > last.lsn) this.history.push({ at: now, lsn: current });
    const visible = rows.filter((r) => r.replayLsn !== null);
    if (visible.length === 0) {
      if (!this.warned) {
        this.warned = true;
        this.logger.warn(
          { replicas: rows.length },
          'cannot see the replicas’ positions in pg_stat_replication: SWEEP_MAX_REPLICA_LAG is not enforced (grant pg_monitor to the sweeper user)',
        );
      }
      return null;
    }
    let worst: ReplicaLag | null = null;
    for (const r of visible) {
      const replayed = BigInt(r.replayLsn as string);
      const behindSince = this.history.find((h) => h.lsn > replayed)?.at ?? now;
      const lagMs = Math.max(r.replayLagMs ?? 0, now - behindSince);
      if (!worst || lagMs > worst.lagMs)
        worst = {
          replica: r.name,
          lagMs,
          bytes: r.replayBytes === null ? null : Number(r.replayBytes),
        };
    }
    // Keep the positions that some replica has not replayed yet (and the one before them).
    const oldest = visible.reduce((m, r) => {
      const lsn = BigInt(r.replayLsn as string);
      return lsn < m ? lsn : m;
    }, current);
    const keepFrom = Math.max(0, this.history.findIndex((h) => h.lsn > oldest) - 1);
    this.history = this.history
      .slice(keepFrom)
      .filter((h, i, all) => i === all.length - 1 || now - h.at < HISTORY_MS);
    return worst;
  }
}
