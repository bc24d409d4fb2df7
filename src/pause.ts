import { parseBoundedDuration } from './duration.ts';
import { JobName } from './queue/jobs.ts';
import { productKey, type SweepQueue } from './queue/sweep-queue.ts';
import type { RedisClient } from './redis-client.ts';

/**
 * The pause: the product's own switch (`audit-sweeper pause`/`resume`, the dashboard's buttons),
 * and the one read of whether anything holds the sweeps, that switch or BullMQ's own queue pause.
 *
 * The switch is one key beside the queue's, so it survives the restart of every process and
 * reaches every worker at its next chunk. A pause for a while is the same key with a TTL: Redis
 * ends it by itself, even if nobody is around to resume.
 */
export type ProductPause = {
  /** Who paused: `user@host` for the CLI, `dashboard user NAME` for the dashboard. */
  by: string;
  reason: string | null;
  since: string;
  /** When it ends by itself; null for a pause that lasts until `resume`. */
  until: string | null;
};

/** What holds the sweeps, as operators read it: the product's pause and BullMQ's queue pause. */
export type QueueHolds = {
  paused: boolean;
  /** Why nothing is taken from the queue, one sentence each, with how to end it. */
  reasons: string[];
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
  sq: Pick<SweepQueue, 'prefix'>,
  redis: RedisClient,
  p: { by: string; reason?: string | null; forMs?: number | null },
): Promise<ProductPause> {
  const now = Date.now();
  const state: ProductPause = {
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
 * so the runs go on at once; the pause it ended, or null when the sweeper was not paused.
 */
export async function resume(sq: SweepQueue, redis: RedisClient): Promise<ProductPause | null> {
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

/** The product's pause, or null: what the workers obey before each chunk and each tick. */
export async function readProductPause(
  sq: Pick<SweepQueue, 'prefix'>,
  redis: RedisClient,
): Promise<ProductPause | null> {
  const raw = await redis.get(pauseKey(sq));
  return raw ? parsePause(raw) : null;
}

function parsePause(raw: string): ProductPause {
  try {
    return JSON.parse(raw) as ProductPause;
  } catch {
    // Set by hand with redis-cli: still a pause.
    return { by: 'unknown', reason: raw, since: new Date().toISOString(), until: null };
  }
}

/**
 * Whether sweeps are held: by the product's pause, or by BullMQ's own (Bull Board's "Pause",
 * queue.pause()), under which a queue takes no tick and no partition job. The health summary,
 * the page and `status` show `reasons` as they are.
 */
export async function readQueueHolds(sq: SweepQueue, redis: RedisClient): Promise<QueueHolds> {
  const [product, runs, partitions] = await Promise.all([
    readProductPause(sq, redis),
    sq.queue.isPaused(),
    sq.partitions.isPaused(),
  ]);
  const reasons = [
    ...(product
      ? [
          `paused by ${product.by}${product.reason ? ` (${product.reason})` : ''} since ${product.since}${product.until ? `, until ${product.until}` : ''}: \`audit-sweeper resume\` or the dashboard's Resume starts it again`,
        ]
      : []),
    ...[
      ...(runs ? [`the BullMQ queue ${sq.queue.name} (ticks and runs) is paused`] : []),
      ...(partitions ? [`the BullMQ queue ${sq.partitions.name} (partition jobs) is paused`] : []),
    ].map((r) => `${r}: Bull Board's "Resume" (or queue.resume()) starts it again`),
  ];
  return { paused: reasons.length > 0, reasons };
}
