import type { Config } from '../config.ts';
import { createPool } from '../db/pool.ts';
import { formatDuration } from '../duration.ts';
import { createLogger } from '../log.ts';
import { connectProducer } from '../queue/connection.ts';
import { closeSweepQueue, createSweepQueue } from '../queue/sweep-queue.ts';
import { readStatus, type StatusReport } from '../sweep/status-report.ts';
import { parseOptions } from './options.ts';

/** `audit-sweeper status [--json] [--runs N]`: the backlog, the schedules and the last N runs. */
export async function run(config: Config, args: string[]): Promise<number> {
  const options = parseOptions(args, {
    json: { type: 'boolean', default: false },
    runs: { type: 'string', default: '10' },
  });
  const runs = Number(options.runs);
  if (!/^\d+$/.test(options.runs) || runs < 1 || runs > 500) {
    console.error(`--runs must be a whole number from 1 to 500, got "${options.runs}"`);
    return 2;
  }
  const logger = createLogger(config.LOG_LEVEL, 'status');
  const redis = await connectProducer(config.REDIS_URL, logger);
  const sq = createSweepQueue(config, redis);
  const pool = createPool(config.DATABASE_URL, logger, {
    max: 2,
    applicationName: 'audit-sweeper status',
  });
  try {
    const report = await readStatus({ pool, sq, redis }, runs);
    console.log(options.json ? JSON.stringify(report) : describe(report));
    return 0;
  } finally {
    await Promise.allSettled([closeSweepQueue(sq), pool.end()]);
    redis.disconnect();
  }
}

function describe(r: StatusReport): string {
  const age = (ms: number) =>
    ms < 1000 ? `${ms}ms` : formatDuration(Math.round(ms / 1000) * 1000);
  const lines = [
    `backlog: ${r.backlog.stale} stale entries waiting for the sweeper, ${r.backlog.inFlight} in flight`,
    `oldest incomplete entry: ${r.backlog.oldestStarted ? `started ${r.backlog.oldestStarted} (${age(r.backlog.oldestAgeMs)} ago)` : 'none'}`,
    `run under way: ${r.currentRunId ?? 'none'}`,
    'schedules:',
    ...(r.schedulers.length
      ? r.schedulers.map(
          (s) =>
            `  ${s.id}: ${s.jobName} every ${s.everyMs ? formatDuration(s.everyMs) : s.pattern}, next at ${s.nextRunAt ?? '?'}`,
        )
      : ['  none (no worker has started against this Redis yet)']),
    'last runs:',
    ...(r.recentRuns.length
      ? r.recentRuns.map(
          (run) =>
            `  ${run.finishedAt} ${run.runId} (${run.trigger}): ${run.finalized} timed out, ${run.durationMs} ms` +
            (run.failedPartitions.length
              ? `, FAILED partitions ${run.failedPartitions.map((f) => f.partition).join(', ')}`
              : ''),
        )
      : ['  none yet']),
  ];
  return lines.join('\n');
}
