import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
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

/** The claim's key (exported for tests that stage a claim). */
export const currentRunKey = (sq: SweepQueue) => productKey(sq, 'current-run');

/** How often a joining tick looks again for a claimed run whose flow is not in Redis yet. */
const JOIN_LOOK_EVERY_MS = 100;

/**
 * Claims a new run, or finds the unfinished one: `claimed` tells the caller to add the run's
 * flow. A claim left by a run that finished, failed or was removed is cleared and taken.
 * A tick joins only a run whose job is in Redis: whoever reads the tick's result (`sweep
 * --wait`, the bench) then finds the run. Between a claim and its flow the claimer reads
 * PostgreSQL, so two ticks taken at once (a worker's first scheduled tick and a "Sweep now")
 * meet that gap; the joiner waits it out, up to the claim's grace.
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
    const state = await runState(sq, current);
    if (state === 'not-added-yet') await sleep(JOIN_LOOK_EVERY_MS);
    else if (state === 'unfinished') return { runId: current, claimed: false };
    else await deleteIfEqual(redis, key, current);
  }
}

/** The run under way, if any (its id; its job is `run-<id>`). */
export async function currentRun(sq: SweepQueue, redis: RedisClient): Promise<string | null> {
  const runId = await redis.get(currentRunKey(sq));
  return runId && (await runState(sq, runId)) !== 'over' ? runId : null;
}

/**
 * Gives up `runId`'s claim (if it still holds it) when its flow could not be added, so that the
 * tick's retry claims a run at once instead of waiting out the claim's grace.
 */
export const abandonRun = (sq: SweepQueue, redis: RedisClient, runId: string) =>
  deleteIfEqual(redis, currentRunKey(sq), runId);

/** Ends `runId`'s claim as part of a MULTI (if it still holds it). */
export const releaseRunIn = (
  multi: ReturnType<RedisClient['multi']>,
  sq: SweepQueue,
  runId: string,
) => deleteIfEqualIn(multi, currentRunKey(sq), runId);

/**
 * `over`: finished, failed, removed, or claimed by a claimer that never added the flow (dead
 * within the grace). `not-added-yet`: claimed, the claimer may be adding the flow right now.
 */
async function runState(
  sq: SweepQueue,
  runId: string,
): Promise<'unfinished' | 'not-added-yet' | 'over'> {
  const state = await Job.fromId(sq.queue, runJobId(runId)).then((job) => job?.getState());
  if (state) return UNFINISHED.has(state) ? 'unfinished' : 'over';
  return Date.now() - runClaimedAt(runId) < CLAIM_GRACE_MS ? 'not-added-yet' : 'over';
}
