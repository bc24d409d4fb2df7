import { readPause as readProductPause } from '../pause.ts';
import type { SweepQueue } from '../queue/sweep-queue.ts';
import type { RedisClient } from '../redis-client.ts';

export type PauseState = {
  paused: boolean;
  /** Why nothing is taken from the queue, as operators read it. */
  reasons: string[];
};

/**
 * Whether sweeps are held: by the product's pause (`audit-sweeper pause`, the dashboard's Pause
 * button), or by BullMQ's own (Bull Board's "Pause", queue.pause()), under which a queue takes no
 * tick and no partition job. The health summary, the page and `status` show `reasons` as they are.
 */
export async function readPause(sq: SweepQueue, redis: RedisClient): Promise<PauseState> {
  const [product, runs, partitions] = await Promise.all([
    readProductPause(redis, sq),
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
