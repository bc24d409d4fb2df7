import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { connectionErrors } from './connection-errors.ts';
import { type Logger, silentLogger } from './log.ts';
import { registerOverviewGauges } from './metrics-overview.ts';
import type { Overview } from './read/overview.ts';
import { lateCompletions } from './store/late-completions.ts';
import { VERSION } from './version.ts';

/**
 * The Prometheus metrics of one process. Counters count what this process did (sum them over
 * pods); the gauges come from the overview read at scrape time (the backlog counted with the
 * workers' own STALE_AFTER), so every process that serves /metrics reports the same.
 */
export type Metrics = ReturnType<typeof createMetrics>;

export function createMetrics(
  options: {
    /** What this process is, for audit_sweeper_info (the alert rules tell dashboards apart). */
    role?: 'worker' | 'dashboard';
    overview?: () => Promise<Overview>;
    logger?: Logger;
  } = {},
) {
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

  new Gauge({
    name: 'audit_sweeper_info',
    help: 'Always 1: what this process is (role: worker or dashboard, the latter also under start) and its version.',
    labelNames: ['role', 'version'] as const,
    registers,
  }).set({ role: options.role ?? 'worker', version: VERSION }, 1);
  new Counter({
    name: 'audit_sweeper_connection_errors_total',
    help: 'Connection errors this process saw, by store: Redis connection errors (each failed attempt while it is away), PostgreSQL connections that could not be opened or broke while idle.',
    labelNames: ['store'] as const,
    registers,
    collect() {
      this.reset();
      for (const [store, n] of Object.entries(connectionErrors())) this.inc({ store }, n);
    },
  });
  new Counter({
    name: 'audit_sweeper_late_completions_total',
    help: 'Completions that came after their entry was already final, by the result it had (unknown: timed out by the sweeper, so STALE_AFTER was shorter than the operation). Counted by the store in the process that completes entries.',
    labelNames: ['existing_result'] as const,
    registers,
    collect() {
      this.reset();
      this.inc({ existing_result: 'unknown' }, 0);
      for (const [existing_result, n] of lateCompletions()) this.inc({ existing_result }, n);
    },
  });
  // Every reason from the start, so a dashboard shows 0 rather than no series.
  for (const reason of ['paused', 'replica_lag', 'load', 'pacing'])
    metrics.throttledSeconds.inc({ reason }, 0);
  const read = options.overview;
  if (read) {
    const logger = options.logger ?? silentLogger;
    let pending: Promise<Overview> | undefined;
    // Every gauge comes from one read per scrape. A store that cannot be read makes its gauges
    // NaN (unknown, and no alert threshold fires on it) instead of failing the whole scrape: the
    // counters are this process's own and must be served whatever the stores do.
    const overview = () => {
      pending ??= read()
        .then((o) => {
          if (o.unavailable.postgres)
            logger.warn({ reason: o.unavailable.postgres }, 'backlog gauges could not be read');
          return o;
        })
        .finally(() => {
          pending = undefined;
        });
      return pending;
    };
    registerOverviewGauges(registry, overview);
  }
  return metrics;
}
