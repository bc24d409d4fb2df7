import { humanDuration } from '../duration.ts';
import { type Drift, describeDrift } from '../fleet/drift.ts';
import { HEARTBEAT_TTL_MS, type WorkerHeartbeat } from '../fleet/heartbeat.ts';
import type { FleetSettings } from '../fleet/settings.ts';
import type { QueueHolds } from '../pause.ts';
import type { Backlog } from './backlog.ts';
import type { FailingPartition } from './failures.ts';
import { HEADROOM_WARN_SHARE, type Headroom } from './headroom.ts';
import type { SchedulerInfo } from './schedulers.ts';
import type { TimePartitions } from './time-partitions.ts';

export type HealthState = 'healthy' | 'degraded' | 'down';
/**
 * Every reason the health summary can give, by code: the metric audit_sweeper_health_reason has
 * one series per code, so an alert can name the one it is about.
 */
export const HEALTH_REASON_CODES = [
  'unreachable',
  'redis_unreachable',
  'postgres_unreachable',
  'no_live_worker',
  'paused',
  'schedule_missing',
  'schedule_overdue',
  'partition_failing',
  'backlog_behind',
  'settings_drift',
  'cutoff_headroom',
  'default_partition_rows',
  'time_partitions_running_out',
] as const;
export type HealthReasonCode = (typeof HEALTH_REASON_CODES)[number];
export type HealthReason = {
  code: HealthReasonCode;
  state: Exclude<HealthState, 'healthy'>;
  message: string;
};
export type Health = { state: HealthState; reasons: HealthReason[] };

export const HEALTH_STATES: HealthState[] = ['healthy', 'degraded', 'down'];

export type HealthInputs = {
  now: number;
  unavailable: { redis?: string; postgres?: string };
  settings: FleetSettings;
  workers: WorkerHeartbeat[] | null;
  bullmqWorkers: number | null;
  pause: QueueHolds | null;
  schedulers: SchedulerInfo[] | null;
  backlog: Backlog | null;
  failing: FailingPartition[];
  drift: Drift[];
  headroom: Headroom | null;
  timePartitions: TimePartitions | null;
};

/** Time partitions reaching less far ahead than this make the health degraded (3 days premade). */
export const TIME_PARTITIONS_AHEAD_WARN_MS = 86_400_000;

/** Backlog older than this means the sweeper is not keeping up: 2 x STALE_AFTER + SWEEP_EVERY. */
export const behindAfterMs = (s: Pick<FleetSettings, 'STALE_AFTER' | 'SWEEP_EVERY'>) =>
  2 * s.STALE_AFTER + s.SWEEP_EVERY;

/**
 * healthy / degraded / down, with every reason. Down: nothing sweeps for sure (no live worker),
 * or neither store answers. Degraded: sweeping is held up or impaired, or half the picture is
 * missing (one store unreachable), or the fleet disagrees on its settings.
 */
export function assessHealth(h: HealthInputs): Health {
  const reasons: HealthReason[] = [];
  const add = (code: HealthReasonCode, state: HealthReason['state'], message: string) =>
    reasons.push({ code, state, message });
  const { redis, postgres } = h.unavailable;
  if (redis && postgres)
    add('unreachable', 'down', `neither Redis (${redis}) nor PostgreSQL (${postgres}) answers`);
  else if (redis)
    add('redis_unreachable', 'degraded', `Redis does not answer (${redis}): no sweep can start`);
  else if (postgres)
    add('postgres_unreachable', 'degraded', `PostgreSQL does not answer (${postgres})`);

  if (h.workers && h.workers.length === 0) {
    const others = h.bullmqWorkers
      ? ` (BullMQ sees ${h.bullmqWorkers} worker connection(s) without a heartbeat: an older version?)`
      : '';
    add(
      'no_live_worker',
      'down',
      `no live worker: none has sent a heartbeat in the last ${humanDuration(HEARTBEAT_TTL_MS)}${others}`,
    );
  }
  for (const reason of h.pause?.reasons ?? []) add('paused', 'degraded', `paused: ${reason}`);

  if (h.schedulers) {
    const wanted = ['sweep', ...(h.settings.RETENTION === null ? [] : ['retention'])];
    for (const id of wanted) {
      const s = h.schedulers.find((x) => x.id === id);
      if (!s) add('schedule_missing', 'degraded', `the "${id}" schedule is missing from Redis`);
      else if (s.nextRunAt) {
        const late = h.now - Date.parse(s.nextRunAt);
        const grace = Math.max(h.settings.SWEEP_EVERY, 30_000);
        if (late > grace)
          add(
            'schedule_overdue',
            'degraded',
            `the "${id}" schedule is overdue by ${humanDuration(late)} (no worker takes its job)`,
          );
      }
    }
  }
  for (const f of h.failing)
    add(
      'partition_failing',
      'degraded',
      `partition ${f.partition} of ${f.partitions} failed in its last ${f.failedRuns > 1 ? `${f.failedRuns} runs` : 'run'}: ${f.error}`,
    );
  const limit = behindAfterMs(h.settings);
  if (h.backlog?.oldestStarted && h.backlog.stale > 0 && h.backlog.oldestAgeMs > limit)
    add(
      'backlog_behind',
      'degraded',
      `the oldest incomplete entry is ${humanDuration(h.backlog.oldestAgeMs)} old, more than 2 x STALE_AFTER + SWEEP_EVERY (${humanDuration(limit)}): the sweeper is not keeping up`,
    );
  for (const d of h.drift.filter((x) => x.betweenWorkers))
    add('settings_drift', 'degraded', `workers disagree: ${describeDrift(d)}`);
  const longest = h.headroom?.maxMs ?? null;
  if (longest !== null && longest > HEADROOM_WARN_SHARE * h.settings.STALE_AFTER)
    add(
      'cutoff_headroom',
      'degraded',
      `real operations come close to the cutoff: the longest of the last hour took ${humanDuration(longest)} (p99 ${humanDuration(h.headroom?.p99Ms ?? 0)}), more than half of STALE_AFTER (${humanDuration(h.settings.STALE_AFTER)}); operations that outlive it are timed out and their results dropped as late completions: raise STALE_AFTER`,
    );
  const tp = h.timePartitions;
  if (tp?.layout === 'partitioned' && tp.defaultRows > 0)
    add(
      'default_partition_rows',
      'degraded',
      `${tp.defaultRows} audit log rows are in the default time partition (no partition covers their time_started): they are kept and listed, but held outside retention; the next partition created for their span takes them over`,
    );
  if (
    tp?.layout === 'partitioned' &&
    tp.aheadMs !== null &&
    tp.aheadMs < TIME_PARTITIONS_AHEAD_WARN_MS
  )
    add(
      'time_partitions_running_out',
      'degraded',
      `the newest time partition ends in ${humanDuration(Math.max(0, tp.aheadMs))}: the sweep tick creates them 3 days ahead, so ticks are not running or cannot create them (see the worker log); new rows go to the default partition meanwhile`,
    );

  const state = reasons.some((r) => r.state === 'down')
    ? 'down'
    : reasons.length
      ? 'degraded'
      : 'healthy';
  return { state, reasons };
}
