import type { Config } from '../config.ts';
import { type AdaptiveState, readAdaptive } from '../control/adaptive.ts';
import { readStreams, type Streams } from '../control/streams.ts';
import type { Pool } from '../db/pool.ts';
import { type FleetControl, readFleetControl } from '../fleet/control-state.ts';
import {
  type Drift,
  effectiveSettings,
  type OwnSettings,
  type SettingsSource,
  settingsDrift,
} from '../fleet/drift.ts';
import {
  readHeartbeats,
  readLastWorkerSettings,
  type WorkerHeartbeat,
} from '../fleet/heartbeat.ts';
import type { FleetSettings } from '../fleet/settings.ts';
import { showSetting } from '../fleet/settings.ts';
import { type QueueHolds, readQueueHolds } from '../pause.ts';
import { currentRun } from '../queue/current-run.ts';
import type { RunSummary } from '../queue/jobs.ts';
import type { SweepQueue } from '../queue/sweep-queue.ts';
import type { RedisClient } from '../redis-client.ts';
import { type RetentionRun, readLastRetention, readRecentRuns } from '../run-history/database.ts';
import { readRecentRunsFromRedis } from '../run-history/redis.ts';
import {
  type Backlog,
  type PartitionBacklog,
  readBacklog,
  readPartitionBacklog,
} from './backlog.ts';
import { type FailingPartition, failingPartitions } from './failures.ts';
import { type Headroom, readHeadroom } from './headroom.ts';
import { assessHealth, type Health } from './health.ts';
import { readSchedulers, type SchedulerInfo } from './schedulers.ts';
import { readTimePartitions, type TimePartitions } from './time-partitions.ts';

/**
 * What `status` prints, the dashboard shows (and serves at /api/overview) and the metrics report.
 * Each source is read on its own: a field is null when its source did not answer, and
 * `unavailable` says which and why.
 */
export type Overview = {
  generatedAt: string;
  health: Health;
  unavailable: { redis?: string; postgres?: string };
  /** The settings the counts below use, and where they come from (see effectiveSettings). */
  settings: FleetSettings;
  settingsSource: SettingsSource;
  /** settings.STALE_AFTER, the cutoff of `backlog` and `partitions`. */
  staleAfterMs: number;
  drift: Drift[];
  /** Live worker processes (heartbeats); null when Redis did not answer. */
  workers: WorkerHeartbeat[] | null;
  /** Worker connections BullMQ itself sees (CLIENT LIST); null if Redis does not allow it. */
  bullmqWorkers: number | null;
  pause: QueueHolds | null;
  backlog: Backlog | null;
  /** How long real operations took against staleAfterMs (cached a minute); null when unknown. */
  headroom: Headroom | null;
  partitions: PartitionBacklog[] | null;
  /** The audit log's layout, and its time partitions when it has them (cached a minute). */
  timePartitions: TimePartitions | null;
  schedulers: SchedulerInfo[] | null;
  currentRunId: string | null;
  recentRuns: RunSummary[];
  /** Where recentRuns come from: PostgreSQL, else (while it is away) the Redis list. */
  historySource: 'postgres' | 'redis' | null;
  failingPartitions: FailingPartition[];
  lastRetention: RetentionRun | null;
  /** Running, paced, throttled or paused, and the limits as this reader's settings say; null when Redis did not answer. */
  control:
    | (FleetControl & {
        /** Partition sweeps running now in the whole fleet, and SWEEP_MAX_STREAMS as Redis holds it. */
        streams: Streams;
        /** The adaptive throttle's last decision (fleet row rate, signal, target, why); null when it does not steer. */
        adaptive: AdaptiveState | null;
        limits: {
          /** SWEEP_IMPACT_TARGET as written (3x, 10ms), or null when off. */
          impactTarget: string | null;
          maxRowsPerSecond: number | null;
          maxReplicaLagMs: number | null;
          maxActiveBackends: number | null;
        };
      })
    | null;
};

/** A reader's own settings (compared with the fleet's), and the pacing limits it shows. */
export type OverviewSettings = OwnSettings &
  Pick<Config, 'SWEEP_MAX_ROWS_PER_SECOND' | 'SWEEP_MAX_REPLICA_LAG' | 'SWEEP_MAX_ACTIVE_BACKENDS'>;

export type OverviewSources = {
  pool: Pool;
  /** Null when the reader could not connect to Redis at all; `redisError` says why. */
  sq: SweepQueue | null;
  redis: RedisClient | null;
  redisError?: string;
  /** Told the full error when a source fails (the overview itself carries only its kind). */
  onSourceError?: (source: 'redis' | 'postgres', err: unknown) => void;
};

/** A source that does not answer within this long counts as unreachable for this read. */
const SOURCE_TIMEOUT_MS = 4_000;

/**
 * The one read of the sweeper's state: the queue side (Redis) and the run history (PostgreSQL)
 * at once, then the backlog, counted with the cutoff the fleet runs with. Either store may fail
 * without failing the other.
 */
export async function readOverview(
  from: OverviewSources,
  own: { settings: OverviewSettings; reader: string },
  runs: number,
): Promise<Overview> {
  const unavailable: Overview['unavailable'] = {};
  const { sq, redis } = from;
  const readQueueSide = () =>
    sq && redis
      ? attempt('redis', from, async () => {
          const [
            workers,
            lastWorker,
            pause,
            schedulers,
            currentRunId,
            history,
            control,
            streams,
            adaptive,
          ] = await Promise.all([
            readHeartbeats(sq, redis),
            readLastWorkerSettings(sq, redis),
            readQueueHolds(sq, redis),
            readSchedulers(sq),
            currentRun(sq, redis),
            readRecentRunsFromRedis(sq, redis, runs),
            readFleetControl(sq, redis),
            readStreams(sq.partitions),
            readAdaptive(sq, redis),
          ]);
          // CLIENT LIST may be refused (managed Redis): that is no outage.
          const bullmq = await sq.queue.getWorkers().catch(() => null);
          const bullmqWorkers = bullmq?.some((c) => c.name?.startsWith('GCP')) ? null : bullmq;
          return {
            workers,
            lastWorker,
            pause,
            schedulers,
            currentRunId,
            history,
            control: { ...control, streams, adaptive },
            bullmqWorkers: bullmqWorkers?.length ?? null,
          };
        })
      : Promise.resolve({ error: from.redisError ?? 'not connected' });
  // The history (PostgreSQL) beside the queue side: the last run's worker settings stand in
  // for the fleet's when Redis is away.
  const [queueSide, history] = await Promise.all([
    readQueueSide(),
    attempt('postgres', from, () =>
      Promise.all([readRecentRuns(from.pool, runs), readLastRetention(from.pool)]),
    ),
  ]);
  if ('error' in queueSide) unavailable.redis = queueSide.error;
  const q = 'error' in queueSide ? null : queueSide;

  const { settings, source } = effectiveSettings(
    q?.workers ?? null,
    q?.lastWorker ?? ('error' in history ? null : lastRunSettings(history[0])),
    own.settings,
  );
  const staleAfterMs = settings.STALE_AFTER;
  const dbSide =
    'error' in history
      ? history
      : await attempt('postgres', from, async () => {
          const [backlog, partitions, headroom, timePartitions] = await Promise.all([
            readBacklog(from.pool, staleAfterMs),
            readPartitionBacklog(from.pool, {
              partitions: settings.SWEEP_PARTITIONS,
              staleAfterMs,
            }),
            readHeadroom(from.pool),
            readTimePartitions(from.pool, settings.RETENTION ?? null),
          ]);
          return {
            backlog,
            partitions,
            headroom,
            timePartitions,
            history: history[0],
            lastRetention: history[1],
          };
        });
  if ('error' in dbSide) unavailable.postgres = dbSide.error;
  const d = 'error' in dbSide ? null : dbSide;

  const recentRuns = d?.history ?? q?.history ?? [];
  const failing = failingPartitions(recentRuns);
  const drift = settingsDrift(q?.workers ?? [], own.settings, own.reader);
  const backlog = d?.backlog ?? null;
  return {
    generatedAt: new Date().toISOString(),
    health: assessHealth({
      now: Date.now(),
      unavailable,
      settings,
      workers: q?.workers ?? null,
      bullmqWorkers: q?.bullmqWorkers ?? null,
      pause: q?.pause ?? null,
      schedulers: q?.schedulers ?? null,
      backlog,
      failing,
      drift,
      headroom: d?.headroom ?? null,
      timePartitions: d?.timePartitions ?? null,
    }),
    unavailable,
    settings,
    settingsSource: source,
    staleAfterMs,
    drift,
    workers: q?.workers ?? null,
    bullmqWorkers: q?.bullmqWorkers ?? null,
    pause: q?.pause ?? null,
    backlog,
    headroom: d?.headroom ?? null,
    partitions: d?.partitions ?? null,
    timePartitions: d?.timePartitions ?? null,
    schedulers: q?.schedulers ?? null,
    currentRunId: q?.currentRunId ?? null,
    recentRuns,
    historySource: d ? 'postgres' : q ? 'redis' : null,
    failingPartitions: failing,
    lastRetention: d?.lastRetention ?? null,
    control: q
      ? {
          ...q.control,
          limits: {
            impactTarget:
              settings.SWEEP_IMPACT_TARGET === undefined || settings.SWEEP_IMPACT_TARGET === null
                ? null
                : showSetting('SWEEP_IMPACT_TARGET', settings.SWEEP_IMPACT_TARGET),
            maxRowsPerSecond: own.settings.SWEEP_MAX_ROWS_PER_SECOND,
            maxReplicaLagMs: own.settings.SWEEP_MAX_REPLICA_LAG,
            maxActiveBackends: own.settings.SWEEP_MAX_ACTIVE_BACKENDS,
          },
        }
      : null,
  };
}

/** The settings recorded with the newest run that has them. */
const lastRunSettings = (runs: RunSummary[]) =>
  runs.find((r) => r.workerSettings)?.workerSettings ?? null;

async function attempt<T>(
  source: 'redis' | 'postgres',
  from: OverviewSources,
  read: () => Promise<T>,
): Promise<T | { error: string }> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      read(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`no answer within ${SOURCE_TIMEOUT_MS / 1000} s`)),
          SOURCE_TIMEOUT_MS,
        );
      }),
    ]);
  } catch (err) {
    from.onSourceError?.(source, err);
    return { error: outageKind(err) };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * What kind of outage an error is, in words safe to show anyone who may see the page: no
 * addresses, names, SQL or credentials (the log has the full error).
 */
export function outageKind(err: unknown): string {
  const { code, message = '' } = (err ?? {}) as { code?: string; message?: string };
  if (code === 'ECONNREFUSED' || /ECONNREFUSED/.test(message)) return 'connection refused';
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return 'host not found';
  if (code === '3D000') return 'the database does not exist';
  if (code === '28P01' || code === '28000') return 'authentication failed';
  if (code === '42P01') return 'the database is not migrated (run audit-sweeper migrate)';
  if (/no answer within|timeout|ETIMEDOUT/i.test(message)) return 'no answer in time';
  if (/Stream isn't writeable|Connection is closed|max retries per request/i.test(message))
    return 'not connected';
  if (/NOAUTH|WRONGPASS/.test(message)) return 'authentication failed';
  return 'unavailable (details in the log)';
}
