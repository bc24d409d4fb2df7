import { randomBytes } from 'node:crypto';
import { Job as BullJob, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import {
  JobName,
  type PartitionData,
  type RunData,
  type RunSummary,
  SWEEP_QUEUE,
  type SweepStatus,
  type TickResult,
  type Trigger,
} from '../queue/names.ts';
import {
  KEEP_COMPLETED,
  KEEP_FAILED,
  partitionJobOptions,
  type SweepQueue,
} from '../queue/sweep-queue.ts';

/**
 * A run is one sweep of every partition: a `run` parent job whose children are the partition
 * jobs, added atomically as a BullMQ flow. The parent is processed once every child has
 * completed or failed for good, and returns the totals.
 *
 * While a run is unfinished, new ticks (the schedule, "Sweep now", Bull Board's "Run now") join
 * it instead of starting another. That is for efficiency and a readable history; the partition
 * lock is what keeps two sweeps of one partition apart.
 */

const UNFINISHED = new Set(['waiting', 'waiting-children', 'active', 'delayed', 'prioritized']);
/** A claimed run whose flow is not in Redis yet is given this long before it counts as dead. */
const CLAIM_GRACE_MS = 60_000;

const currentRunKey = (sq: SweepQueue) => `${sq.prefix}:${SWEEP_QUEUE}:current-run`;
/** The last runs' summaries, newest first, capped: the dashboard's history and chart. */
const runHistoryKey = (sq: SweepQueue) => `${sq.prefix}:${SWEEP_QUEUE}:run-history`;
const RUN_HISTORY_LENGTH = 500;
export const runJobId = (runId: string) => `run-${runId}`;
export const partitionJobId = (runId: string, partition: number, continuation: number) =>
  `${runId}-p${partition}${continuation ? `-c${continuation}` : ''}`;

/** A child's Redis key is `<prefix>:<queue>:<job id>`; neither ids nor the queue name hold ":". */
export const jobIdOfKey = (key: string) => key.slice(key.lastIndexOf(':') + 1);

/** The partition a partition job's id names (partitionJobId's format), if it is one. */
export function partitionOfJobId(id: string): number | undefined {
  const match = /-p(\d+)(-c\d+)?$/.exec(id);
  return match ? Number(match[1]) : undefined;
}

const DELETE_IF_EQUAL = `if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1]) else return 0 end`;

/** Starts a run of every partition, or joins the unfinished one. What a tick job does. */
export async function startOrJoinRun(
  sq: SweepQueue,
  redis: Redis,
  trigger: Trigger,
): Promise<TickResult> {
  const partitions = sq.config.SWEEP_PARTITIONS;
  const key = currentRunKey(sq);
  for (;;) {
    const runId = `r${Date.now().toString(36)}${randomBytes(4).toString('hex')}`;
    if ((await redis.set(key, runId, 'NX')) === 'OK') {
      await addRunFlow(sq, runId, trigger, partitions);
      return { runId, partitions };
    }
    const current = await redis.get(key);
    if (current === null) continue;
    if (await isUnfinished(sq, current)) return { runId: current, partitions, joined: true };
    await redis.eval(DELETE_IF_EQUAL, 1, key, current);
  }
}

async function isUnfinished(sq: SweepQueue, runId: string): Promise<boolean> {
  const state = await BullJob.fromId(sq.queue, runJobId(runId)).then((job) => job?.getState());
  if (state) return UNFINISHED.has(state);
  // No job yet: the claimer may be adding the flow right now.
  const claimedAt = Number.parseInt(runId.slice(1, -8), 36);
  return Date.now() - claimedAt < CLAIM_GRACE_MS;
}

async function addRunFlow(sq: SweepQueue, runId: string, trigger: Trigger, partitions: number) {
  const data: RunData = { runId, trigger, partitions, startedAt: new Date().toISOString() };
  await sq.flows.add({
    name: JobName.run,
    queueName: SWEEP_QUEUE,
    data,
    opts: { jobId: runJobId(runId), removeOnComplete: KEEP_COMPLETED, removeOnFail: KEEP_FAILED },
    children: Array.from({ length: partitions }, (_, partition) => ({
      name: JobName.partition,
      queueName: SWEEP_QUEUE,
      data: { runId, partition, partitions, continuation: 0 } satisfies PartitionData,
      opts: { ...partitionJobOptions(sq.config), jobId: partitionJobId(runId, partition, 0) },
    })),
  });
}

/** Adds a partition's next job to the same run, when its time budget ran out before it drained. */
export async function continuePartition(sq: SweepQueue, job: Job<PartitionData>): Promise<void> {
  const { runId, partition, partitions, continuation } = job.data;
  const next: PartitionData = { runId, partition, partitions, continuation: continuation + 1 };
  // A copy of this job (Bull Board's "duplicate", a retried completed job) may have taken the
  // next id already; adding it again would be silently ignored and stop the drain until the next
  // tick. Take the next free number instead: an extra chain is harmless, the lock keeps it apart.
  while (await sq.queue.getJob(partitionJobId(runId, partition, next.continuation)))
    next.continuation += 1;
  await sq.queue.add(JobName.partition, next, {
    ...partitionJobOptions(sq.config),
    jobId: partitionJobId(next.runId, next.partition, next.continuation),
    ...(job.parent?.id ? { parent: { id: job.parent.id, queue: job.parent.queueKey } } : {}),
  });
}

/** What the `run` job does once all its partitions are done: add up their statuses. */
export async function summarizeRun(
  sq: SweepQueue,
  redis: Redis,
  job: Job<RunData>,
  deps: { logger: Logger; metrics: Metrics },
): Promise<RunSummary> {
  const values = Object.values(await job.getChildrenValues<SweepStatus>());
  const failures = Object.entries(await job.getIgnoredChildrenFailures());
  // A partition that failed for good may have timed out rows before failing; count them too.
  const failedJobs = await Promise.all(
    failures.map(([key]) => BullJob.fromId<PartitionData>(sq.queue, jobIdOfKey(key))),
  );
  const summary: RunSummary = {
    runId: job.data.runId,
    trigger: job.data.trigger,
    partitions: job.data.partitions,
    finalized:
      values.reduce((n, s) => n + s.finalized, 0) +
      failedJobs.reduce((n, j) => n + (j?.data.finalizedByFailedAttempts ?? 0), 0),
    chunks: values.reduce((n, s) => n + s.chunks, 0),
    startedAt: job.data.startedAt,
    finishedAt: new Date().toISOString(),
    durationMs: Date.now() - Date.parse(job.data.startedAt),
    skippedPartitions: [...new Set(values.filter((s) => s.skipped).map((s) => s.partition))].sort(
      (a, b) => a - b,
    ),
    failedPartitions: failures.map(([key, error]) => ({
      partition: partitionOfJobId(jobIdOfKey(key)) ?? -1,
      error,
    })),
  };
  await redis
    .multi()
    .lpush(runHistoryKey(sq), JSON.stringify(summary))
    .ltrim(runHistoryKey(sq), 0, RUN_HISTORY_LENGTH - 1)
    .eval(DELETE_IF_EQUAL, 1, currentRunKey(sq), job.data.runId)
    .exec();
  deps.metrics.sweepRuns.inc({
    outcome: summary.failedPartitions.length ? 'partial_failure' : 'success',
  });
  const log = {
    runId: summary.runId,
    finalized: summary.finalized,
    failed: summary.failedPartitions,
  };
  if (summary.failedPartitions.length)
    deps.logger.error(log, 'sweep run finished with failed partitions');
  // Timed-out rows mean completions were lost upstream: worth a warning, not just a count.
  else if (summary.finalized > 0) deps.logger.warn(log, 'sweep run timed out audit log entries');
  else deps.logger.info(log, 'sweep run finished');
  return summary;
}

/** The last `count` finished runs, newest first. */
export async function recentRuns(sq: SweepQueue, redis: Redis, count = 50): Promise<RunSummary[]> {
  const items = await redis.lrange(runHistoryKey(sq), 0, count - 1);
  return items.map((item) => JSON.parse(item) as RunSummary);
}

/** The run under way, if any (its id; its job is `run-<id>`). */
export async function currentRun(sq: SweepQueue, redis: Redis): Promise<string | null> {
  const runId = await redis.get(currentRunKey(sq));
  return runId && (await isUnfinished(sq, runId)) ? runId : null;
}
