/**
 * The job contract: the queues, their job names, scheduler ids, and the data and result each job
 * carries, between whoever enqueues (scheduler, CLI, dashboard) and the workers. Job ids are
 * in job-ids.ts. BullMQ forbids ":" in scheduler ids.
 */

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

export type Trigger = 'schedule' | 'manual';

export type TickData = { trigger: Trigger };
export type TickResult = { runId: string; partitions: number; joined?: true };

export type RunData = { runId: string; trigger: Trigger; partitions: number; startedAt: string };

export type PartitionData = {
  runId: string;
  partition: number;
  partitions: number;
  /** 0 for the first job of a partition in a run; n for the n-th continuation after a time budget ran out. */
  continuation: number;
  /**
   * Rows timed out by this job's earlier attempts that failed after committing some chunks:
   * counted in the job's status and in its run's totals, so a retry does not lose them.
   */
  finalizedByFailedAttempts?: number;
};

/** What one partition job did; returned by every partition job, failed ones included in the run. */
export type SweepStatus = {
  partition: number;
  partitions: number;
  /** Rows this job timed out. */
  finalized: number;
  chunks: number;
  /** Rows started before this (database clock) count as stale. */
  cutoff: string | null;
  durationMs: number;
  /** True when the partition had no stale rows left; false when the time budget ran out first. */
  drained: boolean;
  /** Set when another sweep of this partition held the lock, so this one did nothing. */
  skipped?: 'locked';
  error?: string;
};

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
};

export type RetentionStatus = {
  deleted: number;
  chunks: number;
  retentionMs: number;
  durationMs: number;
  error?: string;
};
