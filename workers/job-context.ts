import type { Config } from '../src/config.ts';
import type { ChunkGate } from '../src/control/gate.ts';
import type { Pool } from '../src/db/pool.ts';
import type { FleetSettings } from '../src/fleet/settings.ts';
import type { Logger } from '../src/log.ts';
import type { Metrics } from '../src/metrics.ts';
import type { SweepQueue } from '../src/queue/sweep-queue.ts';
import type { RedisClient } from '../src/redis-client.ts';

/** The settings a worker's jobs read. */
export type WorkerSettings = Pick<
  Config,
  | 'STALE_AFTER'
  | 'SWEEP_EVERY'
  | 'SWEEP_PARTITIONS'
  | 'SWEEP_CHUNK_SIZE'
  | 'SWEEP_CONCURRENCY'
  | 'SWEEP_TIME_BUDGET'
  | 'SWEEP_LOCK_TTL'
  | 'SWEEP_ATTEMPTS'
  | 'SWEEP_LOCK_TIMEOUT'
  | 'SWEEP_STATEMENT_TIMEOUT'
  | 'RETENTION'
  | 'SWEEP_MAX_ROWS_PER_SECOND'
  | 'SWEEP_MAX_REPLICA_LAG'
  | 'SWEEP_MAX_ACTIVE_BACKENDS'
  | 'SWEEP_MAX_STREAMS'
  | 'SWEEP_IMPACT_TARGET'
>;

/** What every job processor is given besides its job: one worker process's connections. */
export type JobContext = {
  settings: WorkerSettings;
  /** What this worker reports in its heartbeat and records with each run it finishes. */
  fleetSettings: FleetSettings;
  sq: SweepQueue;
  redis: RedisClient;
  pool: Pool;
  logger: Logger;
  metrics: Metrics;
  /** Pause, throttles and pacing: every chunk of this process waits here first. */
  gate: ChunkGate;
  /** Aborted when the process is shutting down. */
  shutdown: AbortSignal;
};
