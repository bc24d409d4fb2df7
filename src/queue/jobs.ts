/**
 * The job contract: the queues, their job names, scheduler ids, and the data and result each job
 * carries, between whoever enqueues (scheduler, CLI, dashboard) and the workers. Job ids are
 * in job-ids.ts; the partition and retention jobs return the sweep's own statuses
 * (sweep/status.ts). BullMQ forbids ":" in scheduler ids.
 */

import { z } from 'zod';
import type { FleetSettings } from '../fleet/settings.ts';
import type { WaitedMs } from '../sweep/status.ts';

/** Ticks, runs and retention: the few jobs an operator looks for, kept apart from the many below. */
export const SWEEP_QUEUE = 'audit-sweep';
/**
 * Partition jobs (and their continuations), each a flow child of its run in SWEEP_QUEUE. Both
 * queues share QUEUE_PREFIX, so every key keeps the prefix's hash tag (one Redis Cluster slot).
 */
export const PARTITION_QUEUE = 'audit-sweep-partitions';

export const JobName = {
  /** Fired by the scheduler (or a manual trigger): fans out one run. */
  tick: 'tick',
  /** Parent of a run's partition jobs: completes once they all have, with the totals. */
  run: 'run',
  /** Finalizes one partition's stale rows; in PARTITION_QUEUE, the others in SWEEP_QUEUE. */
  partition: 'partition',
  /** Deletes completed rows older than RETENTION. */
  retention: 'retention',
} as const;
export type JobName = (typeof JobName)[keyof typeof JobName];

export const SchedulerId = {
  sweep: 'sweep',
  retention: 'retention',
} as const;

/**
 * The data each job carries, as zod schemas: a worker checks every job against its name's
 * schema before processing it (workers/job-entry.ts), since anyone with Bull Board or Redis
 * access can add, edit or duplicate a job. Strict objects: an unknown field is a mistake.
 */
const trigger = z.enum(['schedule', 'manual']);
/** A run's trigger; `retry`: an operator asked for one failing partition to be swept again now. */
const runTrigger = z.enum(['schedule', 'manual', 'retry']);
export type Trigger = z.infer<typeof runTrigger>;
/** newRunId's format (job-ids.ts): "r", the claim time in base 36, 8 hex digits. */
const runId = z.string().regex(/^r[0-9a-z]+[0-9a-f]{8}$/, { error: 'must be a run id' });
const count = z.int().min(0);
/** SWEEP_PARTITIONS's range. */
const partitions = z.int().min(1).max(1024);

export const JOB_DATA = {
  // A tick added by hand may carry no trigger: it is a manual one.
  [JobName.tick]: z.object({ trigger: trigger.default('manual') }).strict(),
  [JobName.run]: z
    .object({
      runId,
      trigger: runTrigger,
      partitions,
      startedAt: z.iso.datetime(),
      /** The partitions this run sweeps, when not all of them (a retry of one partition). */
      only: z.array(count).min(1).optional(),
    })
    .strict(),
  [JobName.partition]: z
    .object({
      runId,
      partition: count,
      partitions,
      /** 0 for the first job of a partition in a run; n for the n-th continuation after a time budget ran out. */
      continuation: count,
      /**
       * Rows timed out by this job's earlier attempts that failed after committing some chunks:
       * counted in the job's status and in its run's totals, so a retry does not lose them.
       */
      finalizedByFailedAttempts: count.optional(),
      /** Set when its predecessor stopped for a pause: when (ms since the epoch), to count the wait. */
      parkedAt: count.optional(),
    })
    .strict()
    .refine((p) => p.partition < p.partitions, {
      path: ['partition'],
      error: 'must be below partitions',
    }),
  [JobName.retention]: z.object({}).strict(),
} satisfies Record<JobName, z.ZodType>;

/** The queue each job belongs in: a job under a name its queue does not hold is not ours. */
export const QUEUE_OF_JOB: Record<JobName, string> = {
  [JobName.tick]: SWEEP_QUEUE,
  [JobName.run]: SWEEP_QUEUE,
  [JobName.retention]: SWEEP_QUEUE,
  [JobName.partition]: PARTITION_QUEUE,
};

/** The product's jobs carry a few hundred bytes; anything this big is not one of them. */
export const MAX_JOB_DATA_BYTES = 16 * 1024;

/** A job's data checked against its name: the parsed data, or why it is not one of ours. */
export function parseJobData(
  queueName: string,
  name: string,
  data: unknown,
): { ok: true; data: unknown } | { ok: false; reason: string; bytes?: number } {
  const bytes = Buffer.byteLength(JSON.stringify(data ?? null));
  if (bytes > MAX_JOB_DATA_BYTES)
    return {
      ok: false,
      bytes,
      reason: `job data is ${bytes} bytes; audit-sweeper's jobs carry at most ${MAX_JOB_DATA_BYTES}`,
    };
  const names = Object.values(JobName) as string[];
  if (!names.includes(name))
    return {
      ok: false,
      reason: `unknown job name ${JSON.stringify(name)}: audit-sweeper runs only ${names.join(', ')} jobs`,
    };
  if (QUEUE_OF_JOB[name as JobName] !== queueName)
    return {
      ok: false,
      reason: `a ${name} job belongs in queue ${QUEUE_OF_JOB[name as JobName]}, not ${queueName}`,
    };
  const result = JOB_DATA[name as JobName].safeParse(data ?? {});
  if (result.success) return { ok: true, data: result.data };
  const issue = result.error.issues[0];
  const where = issue?.path.length ? `${issue.path.join('.')}: ` : '';
  return {
    ok: false,
    reason: `invalid ${name} job data: ${where}${issue?.message ?? 'malformed'}`,
  };
}

export type TickData = z.infer<(typeof JOB_DATA)['tick']>;
/** A tick started or joined a run, or did nothing because an operator paused the sweeper. */
export type TickResult = StartedTick | PausedTick;
export type StartedTick = { runId: string; partitions: number; joined?: true };
export type PausedTick = { runId: null; partitions: number; skipped: 'paused'; pausedBy: string };

export type RunData = z.infer<(typeof JOB_DATA)['run']>;
export type PartitionData = z.infer<(typeof JOB_DATA)['partition']>;

/** A run's totals: the return value of the `run` job, readable in Bull Board without logs. */
export type RunSummary = {
  runId: string;
  trigger: Trigger;
  partitions: number;
  finalized: number;
  chunks: number;
  durationMs: number;
  startedAt: string;
  finishedAt: string;
  skippedPartitions: number[];
  failedPartitions: { partition: number; error: string }[];
  /** The partitions this run swept, when not all of them (a retry of one partition). */
  only?: number[];
  /**
   * The settings of the worker that finished the run: with the history in PostgreSQL, readers
   * count with the workers' settings even while Redis (and the fleet's heartbeats) is away.
   */
  workerSettings?: FleetSettings;
  /** Time the run's chunks waited for a pause, a throttle or pacing (summed over partitions). */
  waitedMs?: WaitedMs;
};
