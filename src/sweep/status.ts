import type { HeldBack } from '../time-partitions/retire.ts';

/**
 * What one activation of the sweep reports: the statuses the sweep's functions return, which the
 * job contract (queue/jobs.ts) carries as the partition and retention jobs' results.
 */

/** Why a chunk waited before it ran (see src/control/gate.ts). */
export type WaitReason = 'paused' | 'replica_lag' | 'load' | 'pacing';
/** Milliseconds a job's (or a run's) chunks waited, by reason. */
export type WaitedMs = Partial<Record<WaitReason, number>>;

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
  /** Set when it stopped before a chunk because an operator paused the sweeper. */
  parked?: 'paused';
  /** Set when another sweep of this partition held the lock, so this one did nothing. */
  skipped?: 'locked';
  error?: string;
  /** Time its chunks waited for a pause, a throttle or pacing, when they did. */
  waitedMs?: WaitedMs;
};

export type RetentionStatus = {
  /** Rows deleted one by one (the plain layout, or the legacy time partition). */
  deleted: number;
  chunks: number;
  /** Time partitions dropped whole (AUDIT_LOG_LAYOUT=partitioned). */
  droppedPartitions?: string[];
  /** Expired time partitions kept, and why (incomplete rows, recent completions). */
  heldBackPartitions?: HeldBack[];
  retentionMs: number;
  durationMs: number;
  error?: string;
};
