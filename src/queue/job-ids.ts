/**
 * The ids the product gives its jobs, and how to read them back. BullMQ forbids ":" and integer
 * job ids. A run's parent job is `run-<runId>`; its partition jobs are `<runId>-p<i>`, and a
 * partition's n-th continuation (after a time budget ran out) is `<runId>-p<i>-c<n>`.
 */

export const runJobId = (runId: string) => `run-${runId}`;

export const partitionJobId = (runId: string, partition: number, continuation: number) =>
  `${runId}-p${partition}${continuation ? `-c${continuation}` : ''}`;

/** The partition a partition job's id names, if it is one. */
export function partitionOfJobId(id: string): number | undefined {
  const match = /-p(\d+)(-c\d+)?$/.exec(id);
  return match ? Number(match[1]) : undefined;
}

/** A job's Redis key is `<prefix>:<queue>:<job id>`; neither ids nor the queue name hold ":". */
export const jobIdOfKey = (key: string) => key.slice(key.lastIndexOf(':') + 1);

/** A run id: its claim time (base 36) then 8 random hex digits, so its age can be read back. */
export const newRunId = (now: number, random: string) => `r${now.toString(36)}${random}`;

/** When a run id was claimed (newRunId's format). */
export const runClaimedAt = (runId: string) => Number.parseInt(runId.slice(1, -8), 36);
