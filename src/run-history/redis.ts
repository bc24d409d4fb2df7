import { releaseRunIn } from '../queue/current-run.ts';
import { JOB_DATA, type RunSummary } from '../queue/jobs.ts';
import { productKey, type SweepQueue } from '../queue/sweep-queue.ts';
import type { RedisClient } from '../redis-client.ts';

/**
 * The last runs' summaries in Redis, newest first, capped: the history's fallback while
 * PostgreSQL is away (database.ts holds the history itself).
 */
const runHistoryKey = (sq: SweepQueue) => productKey(sq, 'run-history');
const RUN_HISTORY_LENGTH = 500;

/** Records a finished run in the list and ends the run's claim, in one transaction. */
export async function recordRunInRedis(
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

/**
 * The last `count` finished runs, newest first. An entry that is not a run summary (written by
 * hand, or by a version that recorded runs it should not have) is left out, never shown as
 * `undefined`.
 */
export async function readRecentRunsFromRedis(
  sq: SweepQueue,
  redis: RedisClient,
  count = 50,
): Promise<RunSummary[]> {
  const items = await redis.lrange(runHistoryKey(sq), 0, count - 1);
  return items.flatMap((item) => {
    try {
      const summary = JSON.parse(item);
      return isRunSummary(summary) ? [summary] : [];
    } catch {
      return [];
    }
  });
}

const isRunSummary = (value: unknown): value is RunSummary =>
  JOB_DATA.run.safeParse(pick(value, ['runId', 'trigger', 'partitions', 'startedAt'])).success &&
  typeof (value as RunSummary).finalized === 'number' &&
  Array.isArray((value as RunSummary).failedPartitions);

const pick = (value: unknown, keys: string[]) =>
  value && typeof value === 'object'
    ? Object.fromEntries(keys.map((k) => [k, (value as Record<string, unknown>)[k]]))
    : value;
