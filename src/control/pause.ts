import { parseBoundedDuration } from '../duration.ts';
import { JobName } from '../queue/jobs.ts';
import { productKey, type SweepQueue } from '../queue/sweep-queue.ts';
import type { RedisClient } from '../redis-client.ts';

/**
 * The fleet's pause switch: one key beside the queue's, so it survives the restart of every
 * process and reaches every worker at its next chunk. A pause for a while is the same key with
 * a TTL: Redis ends it by itself, even if nobody is around to resume.
 */
export type PauseState = {
  /** Who paused: `user@host` for the CLI, `dashboard user NAME` for the dashboard. */
  by: string;
  reason: string | null;
  since: string;
  /** When it ends by itself; null for a pause that lasts until `resume`. */
  until: string | null;
};

/**
 * The longest pause that ends by itself: a year. Longer is a pause until `resume` (no --for);
 * what is refused is a number beyond any date (`--for 99999999999d` broke the date it ends).
 */
export const MAX_PAUSE_MS = 365 * 86_400_000;

/** A pause's `for` (CLI `--for`, the dashboard's `for`): a duration from 1s to MAX_PAUSE_MS. */
export const parsePauseFor = (text: string) => parseBoundedDuration(text, 1_000, MAX_PAUSE_MS);

const pauseKey = (sq: Pick<SweepQueue, 'prefix'>) => productKey(sq, 'pause');

export async function pause(
  redis: RedisClient,
  sq: Pick<SweepQueue, 'prefix'>,
  p: { by: string; reason?: string | null; forMs?: number | null },
): Promise<PauseState> {
  const now = Date.now();
  const state: PauseState = {
    by: p.by,
    reason: p.reason || null,
    since: new Date(now).toISOString(),
    until: p.forMs ? new Date(now + p.forMs).toISOString() : null,
  };
  if (p.forMs) await redis.set(pauseKey(sq), JSON.stringify(state), 'PX', p.forMs);
  else await redis.set(pauseKey(sq), JSON.stringify(state));
  return state;
}

/**
 * Ends the pause and wakes the partition jobs it parked (delayed jobs that carry `parkedAt`),
 * so the runs go on at once; the state it ended, or null when the sweeper was not paused.
 */
export async function resume(redis: RedisClient, sq: SweepQueue): Promise<PauseState | null> {
  const raw = await redis.getdel(pauseKey(sq));
  for (let start = 0; ; start += 500) {
    const delayed = await sq.partitions.getDelayed(start, start + 499);
    for (const job of delayed)
      if (job.name === JobName.partition && job.data?.parkedAt !== undefined)
        await job.promote().catch(() => {}); // taken or promoted meanwhile
    if (delayed.length < 500) break;
  }
  return raw ? parsePause(raw) : null;
}

export async function readPause(
  redis: RedisClient,
  sq: Pick<SweepQueue, 'prefix'>,
): Promise<PauseState | null> {
  const raw = await redis.get(pauseKey(sq));
  return raw ? parsePause(raw) : null;
}

function parsePause(raw: string): PauseState {
  try {
    return JSON.parse(raw) as PauseState;
  } catch {
    // Set by hand with redis-cli: still a pause.
    return { by: 'unknown', reason: raw, since: new Date().toISOString(), until: null };
  }
}
