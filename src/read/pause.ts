import type { SweepQueue } from '../queue/sweep-queue.ts';

export type PauseState = {
  paused: boolean;
  /** Why nothing is taken from the queue, as operators read it. */
  reasons: string[];
};

/**
 * Whether sweeps are held. Today only BullMQ's own pause (Bull Board's "Pause", queue.pause()):
 * a paused queue takes no tick and no partition job, so the backlog grows.
 * Hook for issue 12: the product's own pause (and throttle) state is read here too and adds its
 * reason; the health summary, the page and `status` show `reasons` as they are.
 */
export async function readPause(sq: SweepQueue): Promise<PauseState> {
  const [runs, partitions] = await Promise.all([sq.queue.isPaused(), sq.partitions.isPaused()]);
  const reasons = [
    ...(runs ? [`the BullMQ queue ${sq.queue.name} (ticks and runs) is paused`] : []),
    ...(partitions ? [`the BullMQ queue ${sq.partitions.name} (partition jobs) is paused`] : []),
  ].map((r) => `${r}: Bull Board's "Resume" (or queue.resume()) starts it again`);
  return { paused: reasons.length > 0, reasons };
}
