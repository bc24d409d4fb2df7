import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Config } from '../config.ts';
import type { Pool } from '../db/pool.ts';
import { reportWorkerState, type WorkerControlState } from '../fleet/control-state.ts';
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import { type ProductPause, readProductPause } from '../pause.ts';
import type { SweepQueue } from '../queue/sweep-queue.ts';
import type { RedisClient } from '../redis-client.ts';
import type { WaitedMs, WaitReason } from '../sweep/status.ts';
import { LoadMonitor } from './load.ts';
import { RowPacer } from './pacing.ts';
import { ReplicaLagMonitor } from './replica-lag.ts';

/** Replica lag and load are read at most this often per process. */
const READ_INTERVAL_MS = 250;
/** A held-back worker reports its state at least this often (fresh for STATE_FRESH_MS). */
const REPORT_EVERY_MS = 1_000;

export type GateSettings = Pick<
  Config,
  | 'SWEEP_CHUNK_SIZE'
  | 'SWEEP_MAX_ROWS_PER_SECOND'
  | 'SWEEP_MAX_REPLICA_LAG'
  | 'SWEEP_MAX_ACTIVE_BACKENDS'
  | 'SWEEP_IMPACT_TARGET'
>;

/** Time one job's chunks waited, by reason (ms): summed into the run's totals. */
export type Waited = WaitedMs;

/**
 * The one "before each chunk" gate of a worker process: pause, replica lag, load, then pacing,
 * in that order (tokens are taken last, so none are spent while a throttle holds the chunk).
 * `beforeChunk` resolves with the most rows the next chunk may take; with the pause, when an
 * operator paused the sweeper (the job then parks: it ends and continues later, so a paused
 * fleet holds no worker slot and ticks still get through); or null when the job must stop
 * (shutting down, or its lock was lost). Throttles wait here, holding the job's place.
 */
export class ChunkGate {
  private readonly worker = `${hostname()}:${process.pid}`;
  private readonly pacer: RowPacer | null;
  private readonly lag: ReplicaLagMonitor | null;
  private readonly load: LoadMonitor | null;
  private state: WorkerControlState;
  private reportedAt = 0;
  private unreported: Waited = {};

  constructor(
    private readonly deps: {
      redis: RedisClient;
      sq: SweepQueue;
      pool: Pool;
      logger: Logger;
      metrics: Metrics;
      settings: GateSettings;
    },
  ) {
    const s = deps.settings;
    // Off only when both are: no fixed limit and no adaptive throttle (full speed).
    this.pacer =
      s.SWEEP_MAX_ROWS_PER_SECOND === null && s.SWEEP_IMPACT_TARGET === null
        ? null
        : new RowPacer(
            deps.redis,
            deps.sq,
            s.SWEEP_MAX_ROWS_PER_SECOND,
            s.SWEEP_CHUNK_SIZE,
            s.SWEEP_IMPACT_TARGET !== null,
          );
    this.lag =
      s.SWEEP_MAX_REPLICA_LAG === null
        ? null
        : new ReplicaLagMonitor(deps.pool, deps.logger, READ_INTERVAL_MS);
    this.load =
      s.SWEEP_MAX_ACTIVE_BACKENDS === null
        ? null
        : new LoadMonitor(deps.pool, deps.logger, READ_INTERVAL_MS);
    this.state = this.make('running', null, null, null, null);
  }

  async beforeChunk(
    want: number,
    signal: AbortSignal,
    waited: Waited,
  ): Promise<number | ProductPause | null> {
    const s = this.deps.settings;
    let waitedHere = 0;
    while (!signal.aborted) {
      const pause = await readProductPause(this.deps.sq, this.deps.redis);
      if (pause) {
        this.note('paused', null, null, pause.by);
        return pause;
      }
      const lag = this.lag && (await this.lag.read());
      if (lag && s.SWEEP_MAX_REPLICA_LAG !== null && lag.lagMs > s.SWEEP_MAX_REPLICA_LAG) {
        const detail = `replica ${lag.replica || '?'}${lag.bytes === null ? '' : `, ${lag.bytes} bytes behind`}`;
        const lagMs = Math.round(lag.lagMs);
        await this.hold(
          'replica_lag',
          lagMs,
          s.SWEEP_MAX_REPLICA_LAG,
          detail,
          READ_INTERVAL_MS,
          signal,
          waited,
        );
        continue;
      }
      const active = this.load && (await this.load.read());
      if (
        typeof active === 'number' &&
        s.SWEEP_MAX_ACTIVE_BACKENDS !== null &&
        active > s.SWEEP_MAX_ACTIVE_BACKENDS
      ) {
        await this.hold(
          'load',
          active,
          s.SWEEP_MAX_ACTIVE_BACKENDS,
          null,
          READ_INTERVAL_MS,
          signal,
          waited,
        );
        continue;
      }
      if (!this.pacer) {
        this.set(this.make('running', null, null, null, null));
        return want;
      }
      const { granted, waitMs } = await this.pacer.take(want);
      if (granted === 0) waitedHere += 1;
      if (granted > 0) {
        // Granted at once by the adaptive bucket alone: nothing held this chunk back.
        if (this.pacer.adaptive && s.SWEEP_MAX_ROWS_PER_SECOND === null && waitedHere === 0)
          this.set(this.make('running', null, null, null, null));
        else this.set(this.make('paced', 'pacing', null, this.pacer.rowsPerSecond, this.pacedBy()));
        return granted;
      }
      // Many chunks wake together: a little jitter keeps them from asking all at once.
      const nap = Math.min(1_000, waitMs) * (1 + Math.random() * 0.1);
      await this.hold(
        'pacing',
        null,
        this.pacer.rowsPerSecond,
        this.pacedBy(),
        nap,
        signal,
        waited,
      );
    }
    return null;
  }

  private pacedBy(): string | null {
    return this.pacer?.adaptive ? 'adaptive' : null;
  }

  /** After a chunk: hands back rows it was granted and did not find. */
  async afterChunk(granted: number, finalized: number): Promise<void> {
    if (this.pacer && finalized < granted)
      await this.pacer.giveBack(granted - finalized).catch(() => {});
  }

  /** Counts time a job waited (or stood parked by a pause) for `reason`. */
  recordWait(reason: WaitReason, ms: number, waited: Waited) {
    waited[reason] = (waited[reason] ?? 0) + ms;
    this.unreported[reason] = (this.unreported[reason] ?? 0) + ms;
    this.deps.metrics.throttledSeconds.inc({ reason }, ms / 1000);
  }

  /** Records (and logs, when it starts) what holds this process's chunks back. */
  private note(
    reason: WaitReason,
    value: number | null,
    limit: number | null,
    detail: string | null,
  ) {
    const state = reason === 'paused' ? 'paused' : reason === 'pacing' ? 'paced' : 'throttled';
    if (this.state.reason !== reason && reason !== 'pacing')
      this.deps.logger.info(
        { reason, value, limit, detail },
        reason === 'paused'
          ? 'sweep paused: parked before its next chunk'
          : `sweep ${state}: waiting before the next chunk`,
      );
    this.set(this.make(state, reason, value, limit, detail));
  }

  private async hold(
    reason: WaitReason,
    value: number | null,
    limit: number | null,
    detail: string | null,
    ms: number,
    signal: AbortSignal,
    waited: Waited,
  ) {
    this.note(reason, value, limit, detail);
    const started = performance.now();
    await sleep(ms, undefined, { signal }).catch(() => {});
    this.recordWait(reason, performance.now() - started, waited);
  }

  private make(
    state: WorkerControlState['state'],
    reason: WaitReason | null,
    value: number | null,
    limit: number | null,
    detail: string | null,
  ): WorkerControlState {
    const same = this.state?.state === state && this.state.reason === reason;
    const since = same ? this.state.since : new Date().toISOString();
    return { worker: this.worker, state, reason, value, limit, detail, since, at: Date.now() };
  }

  /** Records the state; reports it at once when it changed, else at most every second. */
  private set(next: WorkerControlState) {
    const changed = next.state !== this.state.state || next.reason !== this.state.reason;
    this.state = next;
    if (!changed && Date.now() - this.reportedAt < REPORT_EVERY_MS) return;
    this.reportedAt = Date.now();
    const waited = this.unreported;
    this.unreported = {};
    reportWorkerState(this.deps.sq, this.deps.redis, next, waited).catch((err) =>
      this.deps.logger.debug({ err }, 'could not report the throttle state'),
    );
  }
}
