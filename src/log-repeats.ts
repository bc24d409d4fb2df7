import type { Logger } from './log.ts';

/** While an error keeps repeating, a reminder with its count this often. */
const REMIND_EVERY_MS = 5 * 60_000;

type Streak = { key: string; count: number; since: number; remindedAt: number };

/**
 * Logs failures once per change of state instead of once per occurrence: a worker whose
 * database is down would otherwise write a line per job attempt (about ten a second). Per topic
 * (say, "partition jobs"): the first failure is logged; the same failure again only counts,
 * with a reminder every few minutes; a different failure, or a success, ends the streak with
 * one line giving its count.
 */
export class RepeatedErrors {
  private readonly streaks = new Map<string, Streak>();

  constructor(
    private readonly logger: Logger,
    private readonly remindEveryMs = REMIND_EVERY_MS,
  ) {}

  /** A failure under `topic`; `error` is what makes two failures "the same". */
  failed(topic: string, error: string, fields: Record<string, unknown>, msg: string): void {
    const key = sameness(error);
    const now = Date.now();
    const streak = this.streaks.get(topic);
    if (streak?.key === key) {
      streak.count += 1;
      if (now - streak.remindedAt >= this.remindEveryMs) {
        streak.remindedAt = now;
        this.logger.error(
          { ...fields, topic, err: error, repeated: streak.count, sinceMs: now - streak.since },
          `${msg} (still failing: ${streak.count} times in a row)`,
        );
      }
      return;
    }
    if (streak) this.end(topic, streak, 'a different error follows');
    this.streaks.set(topic, { key, count: 1, since: now, remindedAt: now });
    this.logger.error({ ...fields, topic, err: error }, msg);
  }

  /** A success under `topic`: ends its streak of failures, if any, with their count. */
  succeeded(topic: string): void {
    const streak = this.streaks.get(topic);
    if (streak) this.end(topic, streak, 'recovered');
  }

  private end(topic: string, streak: Streak, why: string): void {
    this.streaks.delete(topic);
    if (streak.count > 1)
      this.logger.info(
        { topic, repeated: streak.count, sinceMs: Date.now() - streak.since },
        `${topic}: the error above happened ${streak.count} times in a row; ${why}`,
      );
  }
}

/** Two failures are the same when they differ only in numbers (ids, counts, ports, timings). */
const sameness = (error: string) => error.replace(/\d+/g, '#');
