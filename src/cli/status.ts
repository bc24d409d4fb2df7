import { type Config, ConfigError } from '../config.ts';
import { describeControl, describeWaited } from '../control/describe.ts';
import { createPool } from '../db/pool.ts';
import { humanDuration } from '../duration.ts';
import { errorMessage } from '../errors.ts';
import { describeDrift } from '../fleet/drift.ts';
import { showSetting } from '../fleet/settings.ts';
import { createLogger } from '../log.ts';
import { parseWholeNumber } from '../numbers.ts';
import { connectProducer } from '../queue/connection.ts';
import { closeSweepQueue, createSweepQueue } from '../queue/sweep-queue.ts';
import type { HealthState } from '../read/health.ts';
import { type Overview, outageKind, readOverview } from '../read/overview.ts';
import { describeTimePartitions } from '../read/time-partitions.ts';
import { RedisSetupError } from '../redis-client.ts';
import { scrubSecrets } from '../secrets.ts';
import { type OptionValues, UsageError } from './options.ts';

/** Exit codes for scripts: 0 healthy, 1 degraded, 3 down (2 is a bad setting or option). */
export const STATUS_EXIT: Record<HealthState, number> = { healthy: 0, degraded: 1, down: 3 };

/**
 * `audit-sweeper status [--json] [--runs N]`: health, the fleet, the backlog (counted with the
 * workers' own settings), the schedules and the last N runs. With Redis or PostgreSQL away it
 * still reports what the other one tells.
 */
export async function run(config: Config, options: OptionValues): Promise<number> {
  const runs = parseWholeNumber(String(options.runs), 1, 500);
  if (runs === undefined)
    throw new UsageError(`--runs must be a whole number from 1 to 500, got "${options.runs}"`);
  const logger = createLogger(config.LOG_LEVEL, 'status');
  // A Redis that does not answer is an outage to report, not a reason to print nothing; a
  // REDIS_URL of the wrong kind is still a bad setting.
  const redisOrError = await connectProducer(config, logger).catch((err: unknown) => {
    if (err instanceof ConfigError || err instanceof RedisSetupError) throw err;
    // The error names the server, its credentials redacted; the report goes on without Redis.
    const message = errorMessage(err);
    console.error(
      scrubSecrets(message.includes('REDIS_URL') ? message : `${message} (check REDIS_URL)`),
    );
    const kind = outageKind((err as Error).cause ?? err);
    return new Error(kind === 'not connected' ? 'cannot connect' : kind);
  });
  const redis = redisOrError instanceof Error ? null : redisOrError;
  const sq = redis ? createSweepQueue(redis, config.QUEUE_PREFIX) : null;
  const pool = createPool(config.DATABASE_URL, logger, {
    max: 2,
    applicationName: 'audit-sweeper status',
  });
  try {
    const report = await readOverview(
      {
        pool,
        sq,
        redis,
        ...(redisOrError instanceof Error ? { redisError: redisOrError.message } : {}),
      },
      { settings: config, reader: 'this status command' },
      runs,
    );
    // Errors from either store travel into the report as text: scrubbed like every log line.
    console.log(scrubSecrets(options.json ? JSON.stringify(report) : describe(report)));
    return STATUS_EXIT[report.health.state];
  } finally {
    await Promise.allSettled([sq ? closeSweepQueue(sq) : undefined, pool.end()]);
    redis?.disconnect();
  }
}

const SOURCE = {
  workers: 'as the live workers run',
  'last-worker': 'as the last worker seen ran: its heartbeat, or the last run it recorded',
  own: "this command's own environment (no worker has reported)",
};

/** Real operations' durations beside STALE_AFTER: how close they come to being timed out. */
function describeHeadroom(r: Overview): string {
  const h = r.headroom;
  if (!h) return 'unknown (PostgreSQL does not answer)';
  if (h.samples === 0 || h.maxMs === null)
    return `no operation completed in the last ${humanDuration(h.windowMs)}`;
  return `operations of the last ${humanDuration(h.windowMs)} took p99 ${humanDuration(h.p99Ms ?? 0)}, at most ${humanDuration(h.maxMs)} (${h.samples} sampled), against STALE_AFTER ${humanDuration(r.staleAfterMs)}: ${Math.round((100 * h.maxMs) / r.staleAfterMs)}% of it`;
}

function describe(r: Overview): string {
  const s = r.settings;
  const b = r.backlog;
  const c = r.control;
  const waited = c
    ? Object.entries(c.waitedSeconds)
        .map(([reason, sec]) => `${reason} ${humanDuration((sec ?? 0) * 1000)}`)
        .join(', ')
    : '';
  const lines = [
    `health: ${r.health.state.toUpperCase()}`,
    ...r.health.reasons.map((x) => `  - ${x.message}`),
    `settings: STALE_AFTER=${showSetting('STALE_AFTER', s.STALE_AFTER)} SWEEP_EVERY=${showSetting('SWEEP_EVERY', s.SWEEP_EVERY)} SWEEP_PARTITIONS=${s.SWEEP_PARTITIONS} (${SOURCE[r.settingsSource]})`,
    ...r.drift.map((d) => `  ! ${describeDrift(d)}`),
    ...(c ? describeControl(c) : ['sweeper: unknown (Redis does not answer)']),
    ...(c ? [`limits: ${limits(c)}${waited ? `; time spent waiting so far: ${waited}` : ''}`] : []),
    `workers: ${r.workers === null ? 'unknown (Redis does not answer)' : r.workers.length === 0 ? 'none alive' : r.workers.length}`,
    ...(r.workers ?? []).map(
      (w) =>
        `  ${w.host} pid ${w.pid} v${w.version}: concurrency ${w.concurrency}, ${w.jobsInHand} jobs in hand, started ${w.startedAt}, last heartbeat ${w.lastHeartbeat}`,
    ),
    b
      ? `backlog: ${b.stale} stale entries waiting for the sweeper, ${b.inFlight} in flight`
      : 'backlog: unknown (PostgreSQL does not answer)',
    `oldest incomplete entry: ${!b ? 'unknown' : b.oldestStarted ? `started ${b.oldestStarted} (${humanDuration(b.oldestAgeMs)} ago)` : 'none'}`,
    `cutoff headroom: ${describeHeadroom(r)}`,
    `time partitions: ${describeTimePartitions(r.timePartitions).summary}`,
    ...describeTimePartitions(r.timePartitions).heldBack.map((line) => `  - ${line}`),
    `run under way: ${r.schedulers === null ? 'unknown' : (r.currentRunId ?? 'none')}`,
    'schedules:',
    ...(r.schedulers === null
      ? ['  unknown (Redis does not answer)']
      : r.schedulers.length
        ? r.schedulers.map(
            (x) =>
              `  ${x.id}: ${x.jobName} every ${x.everyMs ? humanDuration(x.everyMs) : x.pattern}, next at ${x.nextRunAt ?? '?'}`,
          )
        : ['  none (no worker has started against this Redis yet)']),
    `last runs${r.historySource === 'redis' ? ' (from Redis: PostgreSQL does not answer)' : ''}:`,
    ...(r.recentRuns.length
      ? r.recentRuns.map(
          (run) =>
            `  ${run.finishedAt} ${run.runId} (${run.trigger}${run.only ? ` of partition ${run.only.join(', ')}` : ''}): ${run.finalized} timed out, ${humanDuration(run.durationMs)}` +
            (run.failedPartitions.length
              ? `, FAILED partitions ${run.failedPartitions.map((f) => f.partition).join(', ')}`
              : '') +
            (run.waitedMs ? `, ${describeWaited(run.waitedMs)}` : ''),
        )
      : ['  none yet']),
  ];
  return lines.join('\n');
}

function limits(c: NonNullable<Overview['control']>): string {
  const l = c.limits;
  return [
    `adaptive ${l.impactTarget ?? 'off'}`,
    `pacing ${l.maxRowsPerSecond === null ? 'off' : `${l.maxRowsPerSecond} rows/s`}`,
    `replica lag ${l.maxReplicaLagMs === null ? 'off' : humanDuration(l.maxReplicaLagMs)}`,
    `active backends ${l.maxActiveBackends ?? 'off'}`,
  ].join(', ');
}
