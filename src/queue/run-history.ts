import type { RedisClient } from '../redis-client.ts';
import { releaseRunIn } from './current-run.ts';
import type { RunSummary } from './jobs.ts';
import { productKey, type SweepQueue } from './sweep-queue.ts';

/** The last runs' summaries, newest first, capped: the dashboard's history and chart. */
const runHistoryKey = (sq: SweepQueue) => productKey(sq, 'run-history');
const RUN_HISTORY_LENGTH = 500;

/** Records a finished run and ends its claim, in one transaction. */
export async function recordFinishedRun(
  sq: SweepQueue,
  redis: RedisClient,
  summary: RunSummary,
): Promise<void> {
  const multi = redis
    .multi()
    .lpush(runHistoryKey(sq), JSON.stringify(summary))
    .ltrim(runHistoryKey(sq), 0, RUN_HISTORY_LENGTH - 1);
  await releaseRunIn(multi, sq, summary.runId).exec();
}

/** The last `count` finished runs, newest first. */
export async function recentRuns(
  sq: SweepQueue,
  redis: RedisClient,
  count = 50,
): Promise<RunSummary[]> {
  const items = await redis.lrange(runHistoryKey(sq), 0, count - 1);
  return items.map((item) => JSON.parse(item) as RunSummary);
}
