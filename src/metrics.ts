import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { Pool } from './db/pool.ts';
import { type Logger, silentLogger } from './log.ts';
import { type Backlog, readBacklog } from './read/backlog.ts';

/**
 * The Prometheus metrics of one process. Counters count what this process did (sum them over
 * pods); the backlog gauges are read from the database at scrape time, so every process that
 * serves /metrics reports the same backlog.
 */
export type Metrics = ReturnType<typeof createMetrics>;

export function createMetrics(options: {
  pool?: Pool;
  staleAfterMs: number;
  logger?: Logger;
  /** Whether the fleet is paused, read from Redis at scrape time (the paused gauge). */
  paused?: () => Promise<boolean>;
}) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'audit_sweeper_' });
  const registers = [registry];

  const metrics = {
    registry,
    rowsFinalized: new Counter({
      name: 'audit_sweeper_rows_finalized_total',
      help: 'Audit log entries timed out by the sweeper (their completion was lost).',
      registers,
    }),
    partitionSweeps: new Counter({
      name: 'audit_sweeper_partition_sweeps_total',
      help: 'Partition sweeps by outcome: drained, budget_spent (continued at once), skipped_locked, failed.',
      labelNames: ['outcome'] as const,
      registers,
    }),
    sweepRuns: new Counter({
      name: 'audit_sweeper_sweep_runs_total',
      help: 'Sweep runs (all partitions of one tick) by outcome: success or partial_failure.',
      labelNames: ['outcome'] as const,
      registers,
    }),
    partitionSweepDuration: new Histogram({
      name: 'audit_sweeper_partition_sweep_duration_seconds',
      help: 'Time one partition job spent sweeping.',
      buckets: [0.005, 0.025, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    }),
    apiRejected: new Counter({
      name: 'audit_sweeper_api_requests_rejected_total',
      help: 'Audit-log API requests answered 503 by admission control: queue_full or wait_timeout.',
      labelNames: ['reason'] as const,
      registers,
    }),
    lockContention: new Counter({
      name: 'audit_sweeper_lock_contention_total',
      help: 'Partition jobs that found another sweep of their partition under way and did nothing.',
      registers,
    }),
    throttledSeconds: new Counter({
      name: 'audit_sweeper_throttled_seconds_total',
      help: 'Time chunks waited before running, by reason: paused, replica_lag, load, pacing.',
      labelNames: ['reason'] as const,
      registers,
    }),
  };

  // Every reason from the start, so a dashboard shows 0 rather than no series.
  for (const reason of ['paused', 'replica_lag', 'load', 'pacing'])
    metrics.throttledSeconds.inc({ reason }, 0);
  const { paused } = options;
  if (paused)
    new Gauge({
      name: 'audit_sweeper_paused',
      help: '1 while an operator has paused the sweeper (audit-sweeper pause), else 0.',
      registers,
      async collect() {
        this.set((await paused()) ? 1 : 0);
      },
    });

  const { pool } = options;
  if (pool) {
    const logger = options.logger ?? silentLogger;
    let pending: Promise<Backlog> | undefined;
    // Both gauges come from one query per scrape. A database that cannot be read makes them NaN
    // (unknown, and no alert threshold fires on it) instead of failing the whole scrape: the
    // counters are this process's own and must be served whatever the database does.
    const unknown: Backlog = {
      stale: Number.NaN,
      inFlight: Number.NaN,
      oldestStarted: null,
      oldestAgeMs: Number.NaN,
    };
    const backlog = () => {
      pending ??= readBacklog(pool, options.staleAfterMs)
        .catch((err) => {
          logger.warn({ err }, 'backlog gauges could not be read');
          return unknown;
        })
        .finally(() => {
          pending = undefined;
        });
      return pending;
    };
    new Gauge({
      name: 'audit_sweeper_backlog_rows',
      help: 'Incomplete audit log entries: stale (older than STALE_AFTER, waiting for the sweeper) and in_flight.',
      labelNames: ['state'] as const,
      registers,
      async collect() {
        const b = await backlog();
        this.set({ state: 'stale' }, b.stale);
        this.set({ state: 'in_flight' }, b.inFlight);
      },
    });
    new Gauge({
      name: 'audit_sweeper_oldest_incomplete_age_seconds',
      help: 'Age of the oldest incomplete audit log entry (0 when there is none).',
      registers,
      async collect() {
        this.set((await backlog()).oldestAgeMs / 1000);
      },
    });
  }
  return metrics;
}
