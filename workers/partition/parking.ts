import type { ChunkGate } from '../../src/control/gate.ts';
import type { ProductPause } from '../../src/pause.ts';
import type { PartitionData } from '../../src/queue/jobs.ts';
import type { WaitedMs } from '../../src/sweep/status.ts';

/** A parked job looks again at least this often (resume also wakes it at once). */
const PARK_RECHECK_MS = 60_000;

/**
 * An operator's pause parks a partition job: it stops before its next chunk and continues in a
 * delayed job, which `resume` promotes at once. A parked job holds no worker slot.
 */
export class Parking {
  private readonly parked = new AbortController();
  /** The pause that parked the job, once one has. */
  by: ProductPause | undefined;

  /** Aborted when the job parks: the sweep stops before its next chunk. */
  get signal(): AbortSignal {
    return this.parked.signal;
  }

  park(pause: ProductPause) {
    this.by = pause;
    this.parked.abort();
  }

  /** The continuation's delay, when parked: until the pause ends by itself, or a minute. */
  continuation(): { delayMs: number; parkedAt: number } | undefined {
    if (!this.by) return undefined;
    const delayMs = Math.min(
      PARK_RECHECK_MS,
      this.by.until ? Math.max(0, Date.parse(this.by.until) - Date.now()) + 100 : PARK_RECHECK_MS,
    );
    return { delayMs, parkedAt: Date.now() };
  }
}

/** A job that continues a parked one counts the time it stood parked as waited for the pause. */
export function countParkedTime(gate: ChunkGate, data: PartitionData, waitedMs: WaitedMs) {
  if (data.parkedAt !== undefined)
    gate.recordWait('paused', Math.max(0, Date.now() - data.parkedAt), waitedMs);
}
