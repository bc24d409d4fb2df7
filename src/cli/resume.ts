import type { Config } from '../config.ts';
import { createLogger } from '../log.ts';
import { resume } from '../pause.ts';
import { connectProducer } from '../queue/connection.ts';
import { closeSweepQueue, createSweepQueue } from '../queue/sweep-queue.ts';

/** `audit-sweeper resume`: ends a pause; paused sweeps go on from where they stopped. */
export async function run(config: Config): Promise<number> {
  const logger = createLogger(config.LOG_LEVEL, 'resume');
  const redis = await connectProducer(config, logger);
  const sq = createSweepQueue(redis, config.QUEUE_PREFIX);
  try {
    const ended = await resume(sq, redis);
    console.log(
      ended
        ? `sweeper resumed (it was paused by ${ended.by} since ${ended.since}${ended.reason ? `: ${ended.reason}` : ''})`
        : 'sweeper was not paused',
    );
    return 0;
  } finally {
    await closeSweepQueue(sq);
    redis.disconnect();
  }
}
