import type { Config } from '../config.ts';
import { describeControl, describeWaited } from '../control/describe.ts';
import { createPool } from '../db/pool.ts';
import { humanDuration } from '../duration.ts';
import { createLogger } from '../log.ts';
import { parseWholeNumber } from '../numbers.ts';
import { connectProducer } from '../queue/connection.ts';
import { closeSweepQueue, createSweepQueue } from '../queue/sweep-queue.ts';
import { type Overview, readOverview } from '../read/overview.ts';
import { type OptionValues, UsageError } from './options.ts';

/** `audit-sweeper status [--json] [--runs N]`: the backlog, the schedules and the last N runs. */
export async function run(config: Config, options: OptionValues): Promise<number> {
  const runs = parseWholeNumber(String(options.runs), 1, 500);
  if (runs === undefined)
    throw new UsageError(`--runs must be a whole number from 1 to 500, got "${options.runs}"`);
  const logger = createLogger(config.LOG_LEVEL, 'status');
  const redis = await connectProducer(config, logger);
  const sq = createSweepQueue(redis, config.QUEUE_PREFIX);
  const pool = createPool(config.DATABASE_URL, logger, {
    max: 2,
    applicationName: 'audit-sweeper status',
  });
  try {
    const report = await readOverview({ pool, sq, redis }, config, runs);
    console.log(options.json ? JSON.stringify(report) : describe(report));
    return 0;
  } finally {
    await Promise.allSettled([closeSweepQueue(sq), pool.end()]);
    redis.disconnect();
  }
}

function describe(r: Overview): string {
  const waited = Object.entries(r.control.waitedSeconds)
    .map(([reason, sec]) => `${reason} ${humanDuration((sec ?? 0) * 1000)}`)
    .join(', ');
  const lines = [
    ...describeControl(r.control),
    `limits: ${limits(r)}${waited ? `; time spent waiting so far: ${waited}` : ''}`,
    `backlog: ${r.backlog.stale} stale entries waiting for the sweeper, ${r.backlog.inFlight} in flight`,
    `oldest incomplete entry: ${r.backlog.oldestStarted ? `started ${r.backlog.oldestStarted} (${humanDuration(r.backlog.oldestAgeMs)} ago)` : 'none'}`,
    `run under way: ${r.currentRunId ?? 'none'}`,
    'schedules:',
    ...(r.schedulers.length
      ? r.schedulers.map(
          (s) =>
            `  ${s.id}: ${s.jobName} every ${s.everyMs ? humanDuration(s.everyMs) : s.pattern}, next at ${s.nextRunAt ?? '?'}`,
        )
      : ['  none (no worker has started against this Redis yet)']),
    'last runs:',
    ...(r.recentRuns.length
      ? r.recentRuns.map(
          (run) =>
            `  ${run.finishedAt} ${run.runId} (${run.trigger}): ${run.finalized} timed out, ${humanDuration(run.durationMs)}` +
            (run.failedPartitions.length
              ? `, FAILED partitions ${run.failedPartitions.map((f) => f.partition).join(', ')}`
              : '') +
            (run.waitedMs ? `, ${describeWaited(run.waitedMs)}` : ''),
        )
      : ['  none yet']),
  ];
  return lines.join('\n');
}

function limits(r: Overview): string {
  const l = r.control.limits;
  return [
    `pacing ${l.maxRowsPerSecond === null ? 'off' : `${l.maxRowsPerSecond} rows/s`}`,
    `replica lag ${l.maxReplicaLagMs === null ? 'off' : humanDuration(l.maxReplicaLagMs)}`,
    `active backends ${l.maxActiveBackends ?? 'off'}`,
  ].join(', ');
}
