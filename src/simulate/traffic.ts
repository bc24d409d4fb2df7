import { setTimeout as sleep } from 'node:timers/promises';
import { isTransientDatabaseError } from '../db/pool.ts';
import { type Logger, silentLogger } from '../log.ts';
import type { AuditLogStore } from '../store/store.ts';
import { createPopulation, createRandom, type OperationPlan, planOperation } from './operations.ts';

/**
 * Demo traffic: an application that writes its audit log the way the reference control plane
 * does (init before the operation, complete after it), at a steady rate, with a fraction of
 * operations that never complete, as if their process had crashed between the two writes.
 *
 * Everything random about an operation is decided synchronously when it is issued, from one
 * seeded generator, so the same seed gives the same mix whatever the database's speed.
 */

export type TrafficOptions = {
  /** Operations started per second (may be fractional, e.g. 0.5). */
  rate: number;
  /** Fraction of operations, 0..1, that are initialized and never completed. */
  crashRatio: number;
  /** Stop issuing after this long; without it, run until `signal` aborts. */
  durationMs?: number;
  /** Aborting stops issuing new operations; the ones in flight still finish. */
  signal?: AbortSignal;
  /** Seed for the generator; a random one when absent. */
  seed?: number;
  logger?: Logger;
  /** How often a summary is logged while running (default 5 s). */
  summaryEveryMs?: number;
  /** Called once per initialized entry when its fate is known. */
  onSettled?: (id: string, outcome: Outcome) => void;
};

/**
 * - completed: its completion was recorded.
 * - crashed: deliberately never completed.
 * - late: completion arrived after the row was already final (timed out by the sweeper).
 * - failed: completion failed for good after the store's retries (the row stays incomplete).
 */
export type Outcome = 'completed' | 'crashed' | 'late' | 'failed';

export type TrafficReport = {
  seed: number;
  /** Entries initialized (rows written). */
  started: number;
  completed: number;
  /** Entries deliberately never completed. */
  crashed: number;
  late: number;
  /** Completions that failed after retries. */
  completeFailed: number;
  /** Operations refused because their init failed (no row written). */
  initFailed: number;
  /** Entries initialized whose fate is not known yet (0 once the run has ended). */
  inFlight: number;
  /** Among completed entries: how many succeeded and how many failed, and per HTTP status. */
  results: { success: number; error: number };
  byStatus: Record<string, number>;
  elapsedMs: number;
};

/** Raised when an init fails in a way retrying cannot cure (e.g. the table does not exist). */
export class TrafficStoppedError extends Error {
  constructor(
    readonly report: TrafficReport,
    cause: unknown,
  ) {
    super(`simulated traffic stopped: ${(cause as Error)?.message ?? String(cause)}`, { cause });
    this.name = 'TrafficStoppedError';
  }
}

export async function runTraffic(
  store: AuditLogStore,
  options: TrafficOptions,
): Promise<TrafficReport> {
  const { rate, crashRatio, durationMs, signal } = options;
  if (!(rate > 0) || !Number.isFinite(rate)) throw new RangeError('rate must be positive');
  if (!(crashRatio >= 0 && crashRatio <= 1)) throw new RangeError('crashRatio must be in 0..1');
  if (durationMs !== undefined && !(durationMs > 0)) {
    throw new RangeError('durationMs must be positive');
  }
  const logger = options.logger ?? silentLogger;
  const seed = options.seed ?? Math.floor(Math.random() * 2 ** 32);
  const random = createRandom(seed);
  const population = createPopulation(random);

  const report: TrafficReport = {
    seed,
    started: 0,
    completed: 0,
    crashed: 0,
    late: 0,
    completeFailed: 0,
    initFailed: 0,
    inFlight: 0,
    results: { success: 0, error: 0 },
    byStatus: {},
    elapsedMs: 0,
  };
  const pending = new Set<Promise<void>>();
  let fatal: { error: unknown } | undefined;
  let lastInitError: string | undefined;

  const settle = (id: string, outcome: Outcome) => {
    report.inFlight--;
    options.onSettled?.(id, outcome);
  };

  const operate = async (plan: OperationPlan) => {
    let id: string;
    try {
      id = await store.init(plan.entry);
    } catch (err) {
      report.initFailed++;
      lastInitError = (err as Error)?.message ?? String(err);
      if (!isTransientDatabaseError(err)) fatal ??= { error: err };
      return;
    }
    report.started++;
    report.inFlight++;
    if (plan.crash) {
      report.crashed++;
      settle(id, 'crashed');
      return;
    }
    await sleep(plan.delayMs);
    try {
      const outcome = await store.complete(id, plan.result);
      if (outcome.applied) {
        report.completed++;
        report.results[plan.result.kind]++;
        const status = String(plan.result.httpStatusCode);
        report.byStatus[status] = (report.byStatus[status] ?? 0) + 1;
        settle(id, 'completed');
      } else {
        report.late++;
        settle(id, 'late');
      }
    } catch (err) {
      report.completeFailed++;
      logger.warn({ err, id }, 'simulated completion failed; the entry stays incomplete');
      settle(id, 'failed');
    }
  };

  const issue = () => {
    const plan = planOperation(population, random, crashRatio);
    const p = operate(plan).finally(() => pending.delete(p));
    pending.add(p);
  };

  const summary = () => ({
    seed,
    rate,
    crashRatio,
    started: report.started,
    completed: report.completed,
    crashed: report.crashed,
    late: report.late,
    completeFailed: report.completeFailed,
    initFailed: report.initFailed,
    inFlight: report.inFlight,
    results: { ...report.results },
  });

  // Operation i is due at i / rate seconds after the start; a timer catches up on whatever is
  // due, so a slow event loop delays operations but never drops them.
  const startedAt = performance.now();
  const total = durationMs === undefined ? Infinity : Math.ceil((durationMs * rate) / 1000);
  let issued = 0;
  const issueUpTo = (n: number) => {
    while (issued < n && !fatal) {
      issue();
      issued++;
    }
  };
  const issueDue = () =>
    issueUpTo(Math.min(total, Math.floor(((performance.now() - startedAt) * rate) / 1000) + 1));

  logger.info({ seed, rate, crashRatio, durationMs: durationMs ?? null }, 'simulating traffic');
  const summaryTimer = setInterval(() => {
    logger.info(summary(), 'simulated traffic');
    if (lastInitError) {
      logger.warn({ error: lastInitError }, 'simulated operations refused: init failed');
      lastInitError = undefined;
    }
  }, options.summaryEveryMs ?? 5_000);

  await new Promise<void>((resolve) => {
    let deadline: NodeJS.Timeout | undefined;
    const stop = () => {
      clearInterval(ticker);
      clearTimeout(deadline);
      signal?.removeEventListener('abort', stop);
      resolve();
    };
    const ticker = setInterval(
      () => {
        issueDue();
        if (fatal) stop();
      },
      Math.min(100, Math.max(5, 1000 / rate)),
    );
    if (durationMs !== undefined) {
      // Whatever a late timer left undone is issued now: a run of D at rate N is ceil(D*N) operations.
      deadline = setTimeout(() => {
        issueUpTo(total);
        stop();
      }, durationMs);
    }
    if (signal?.aborted) stop();
    else {
      signal?.addEventListener('abort', stop);
      issueDue();
    }
  });

  logger.info({ inFlight: pending.size }, 'stopped issuing; waiting for operations in flight');
  while (pending.size > 0) await Promise.all([...pending]);
  clearInterval(summaryTimer);
  report.elapsedMs = Math.round(performance.now() - startedAt);

  if (fatal) {
    logger.error({ ...summary(), err: fatal.error }, 'simulation stopped: init failed');
    throw new TrafficStoppedError(report, fatal.error);
  }
  logger.info({ ...summary(), elapsedMs: report.elapsedMs }, 'simulation finished');
  return report;
}
