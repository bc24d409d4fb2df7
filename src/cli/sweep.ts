import type { Config } from '../config.ts';
import { createLogger } from '../log.ts';
import { connectProducer } from '../queue/connection.ts';
import { requestSweep, waitForSweep } from '../queue/request-sweep.ts';
import { closeSweepQueue, createSweepQueue } from '../queue/sweep-queue.ts';
import type { OptionValues } from './options.ts';

/**
 * `audit-sweeper sweep [--wait] [--json]`: asks the workers for a sweep now. With --wait, prints
 * the run's totals and exits 1 if a partition failed.
 */
export async function run(config: Config, options: OptionValues): Promise<number> {
  const logger = createLogger(config.LOG_LEVEL, 'sweep');
  const redis = await connectProducer(config, logger);
  const sq = createSweepQueue(redis, config.QUEUE_PREFIX);
  try {
    const tickId = await requestSweep(sq);
    if (!options.wait) {
      print(options.json, { requested: tickId }, `sweep requested (job ${tickId})`);
      return 0;
    }
    // Generous: a run may have a large backlog to drain; workers continue it in new jobs.
    const summary = await waitForSweep(sq, tickId, {
      redisUrl: config.REDIS_URL,
      timeoutMs: 24 * 3_600_000,
      logger,
    });
    const text = [
      `run ${summary.runId}: ${summary.finalized} entries timed out in ${summary.chunks} chunks over ${summary.partitions} partitions, ${summary.durationMs} ms`,
      ...summary.failedPartitions.map((f) => `  partition ${f.partition} failed: ${f.error}`),
    ].join('\n');
    print(options.json, summary, text);
    return summary.failedPartitions.length ? 1 : 0;
  } finally {
    await closeSweepQueue(sq);
    redis.disconnect();
  }
}

function print(json: unknown, value: unknown, text: string) {
  console.log(json ? JSON.stringify(value) : text);
}
