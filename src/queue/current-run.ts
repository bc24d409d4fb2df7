import { randomBytes } from 'node:crypto';
import { Job } from 'bullmq';
import type { RedisClient } from '../redis-client.ts';
import { newRunId, runClaimedAt, runJobId } from './job-ids.ts';
import { deleteIfEqual, deleteIfEqualIn } from './redis-scripts.ts';
import { productKey, type SweepQueue } from './sweep-queue.ts';

/**
 * The current-run claim: one key naming the run under way, so that a tick arriving while a run
 * is unfinished joins it instead of starting another. That is for efficiency and a readable
 * history; the partition lock is what keeps two sweeps of one partition apart.
 */

const UNFINISHED = new Set(['waiting', 'waiting-children', 'active', 'delayed', 'prioritized']);
/** A claimed run whose flow is not in Redis yet is given this long before it counts as dead. */
const CLAIM_GRACE_MS = 60_000;

const currentRunKey = (sq: SweepQueue) => productKey(sq, 'current-run');

/**
 * Claims a new run, or finds the unfinished one: `claimed` tells the caller to add the run's
 * flow. A claim left by a run that finished, failed or was removed is cleared and taken.
 */
export async function claimOrJoinRun(
  sq: SweepQueue,
  redis: RedisClient,
): Promise<{ runId: string; claimed: boolean }> {
  const key = currentRunKey(sq);
  for (;;) {
    const runId = newRunId(Date.now(), randomBytes(4).toString('hex'));
    if ((await redis.set(key, runId, 'NX')) === 'OK') return { runId, claimed: true };
    const current = await redis.get(key);
    if (current === null) continue;
    if (await isUnfinished(sq, current)) return { runId: current, claimed: false };
    await deleteIfEqual(redis, key, current);
  }
}

/** The run under way, if any (its id; its job is `run-<id>`). */
export async function currentRun(sq: SweepQueue, redis: RedisClient): Promise<string | null> {
  const runId = await redis.get(currentRunKey(sq));
  return runId && (await isUnfinished(sq, runId)) ? runId : null;
}

/** Ends `runId`'s claim as part of a MULTI (if it still holds it). */
export const releaseRunIn = (
  multi: ReturnType<RedisClient['multi']>,
  sq: SweepQueue,
  runId: string,
) => deleteIfEqualIn(multi, currentRunKey(sq), runId);

async function isUnfinished(sq: SweepQueue, runId: string): Promise<boolean> {
  const state = await Job.fromId(sq.queue, runJobId(runId)).then((job) => job?.getState());
  if (state) return UNFINISHED.has(state);
  // No job yet: the claimer may be adding the flow right now.
  return Date.now() - runClaimedAt(runId) < CLAIM_GRACE_MS;
}
