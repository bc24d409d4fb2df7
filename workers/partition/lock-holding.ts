import type { Logger } from '../../src/log.ts';
import { PartitionLock } from '../../src/queue/partition-lock.ts';
import { productKey } from '../../src/queue/sweep-queue.ts';
import type { JobContext } from '../job-context.ts';

export class LockLostError extends Error {
  constructor() {
    super(
      'partition lock lost (this worker stalled past SWEEP_LOCK_TTL); another sweep owns it now',
    );
  }
}

/** A check before a chunk: whether the lock is still ours, or the Redis error that hid it. */
export type LockCheck = { held: boolean } | { error: unknown };

/**
 * One partition job's hold on its partition's lock: renewed every SWEEP_LOCK_TTL/3 in the
 * background (`lost` aborts when a renewal finds it gone), checked before each chunk, released
 * at the end. Null when another sweep of the partition holds it.
 */
export async function holdPartitionLock(
  ctx: Pick<JobContext, 'redis' | 'sq' | 'settings'>,
  p: { partition: number; partitions: number },
  log: Logger,
): Promise<PartitionLockHolding | null> {
  const lock = new PartitionLock(
    ctx.redis,
    // Names the id range: partition 3 of 16 and 3 of 7 are different ranges with their own locks.
    productKey(ctx.sq, `partition-lock:${p.partition}-of-${p.partitions}`),
    ctx.settings.SWEEP_LOCK_TTL,
  );
  if (!(await lock.acquire())) return null;
  const holding = new PartitionLockHolding(lock, ctx.settings.SWEEP_LOCK_TTL, log);
  log.debug(
    { partitions: p.partitions, lockHeld: { since: holding.held.since } },
    'partition lock taken',
  );
  return holding;
}

export class PartitionLockHolding {
  /**
   * When this process held the lock, by its own clock, from just after it was granted to just
   * before it is given back: logged as `lockHeld`, so that two holders of one lock at once would
   * show in the logs (the chaos run's overlap check reads these, and a post-mortem can too).
   */
  readonly held = { since: Date.now(), until: 0 };
  private readonly lostLock = new AbortController();
  private readonly renewal: NodeJS.Timeout;
  private renewing: Promise<void> | undefined;

  constructor(
    private readonly lock: PartitionLock,
    ttlMs: number,
    private readonly log: Logger,
  ) {
    this.renewal = setInterval(() => this.renewInBackground(), ttlMs / 3);
  }

  /** Aborted when a renewal finds the lock gone: the sweep stops before its next chunk. */
  get lost(): AbortSignal {
    return this.lostLock.signal;
  }

  /**
   * Extends the hold before a chunk. Never rejects (a Redis error is its outcome), so it can go
   * out beside the gate's reads and be awaited after them, or not at all when the gate throws.
   */
  check(): Promise<LockCheck> {
    return this.lock.renew().then(
      (held) => ({ held }),
      (error: unknown) => ({ error }),
    );
  }

  /** The lock is no longer ours: stops the sweep; the error to throw. */
  markLost(): LockLostError {
    this.lostLock.abort();
    return new LockLostError();
  }

  /** Stops renewing and gives the lock back (it expires by itself if Redis does not answer). */
  async release(): Promise<void> {
    clearInterval(this.renewal);
    this.held.until = Date.now();
    await this.lock
      .release()
      .catch((err) =>
        this.log.warn({ err }, 'partition lock release failed; it expires by itself'),
      );
  }

  /** A renewal still waiting for Redis (an outage) is not doubled by the next. */
  private renewInBackground() {
    this.renewing ??= this.lock
      .renew()
      .then(
        (held) => {
          if (!held) this.lostLock.abort();
        },
        (err) => this.log.warn({ err }, 'partition lock renewal failed'),
      )
      .finally(() => {
        this.renewing = undefined;
      });
  }
}
