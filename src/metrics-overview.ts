import { Gauge, type Registry } from 'prom-client';
import { HEALTH_REASON_CODES, HEALTH_STATES } from './read/health.ts';
import type { Overview } from './read/overview.ts';
import type { WaitReason } from './sweep/status.ts';

/**
 * The gauges read from the overview at scrape time: every process that serves /metrics reports
 * the same fleet-wide values (the alert rules take their max over processes). A value whose
 * store cannot be read is NaN: unknown, and no threshold fires on it.
 */
/** The reasons a worker is held back at the gate (a pause parks it instead). */
const THROTTLES = ['replica_lag', 'load', 'pacing'] as const satisfies readonly WaitReason[];

export function registerOverviewGauges(registry: Registry, overview: () => Promise<Overview>) {
  const registers = [registry];
  const gauge = <L extends string>(
    name: string,
    help: string,
    labelNames: readonly L[],
    collect: (this: Gauge<L>, o: Overview) => void,
  ) =>
    new Gauge<L>({
      name,
      help,
      labelNames,
      registers,
      async collect() {
        collect.call(this, await overview());
      },
    });
  const seconds = (iso: string | null | undefined) => (iso ? Date.parse(iso) / 1000 : Number.NaN);

  gauge(
    'audit_sweeper_backlog_rows',
    "Incomplete audit log entries: stale (older than the workers' STALE_AFTER, waiting for the sweeper) and in_flight. NaN while PostgreSQL does not answer.",
    ['state'],
    function ({ backlog: b }) {
      this.set({ state: 'stale' }, b?.stale ?? Number.NaN);
      this.set({ state: 'in_flight' }, b?.inFlight ?? Number.NaN);
    },
  );
  gauge(
    'audit_sweeper_oldest_incomplete_age_seconds',
    'Age of the oldest incomplete audit log entry (0 when there is none).',
    [],
    function ({ backlog: b }) {
      this.set(b ? b.oldestAgeMs / 1000 : Number.NaN);
    },
  );
  gauge(
    'audit_sweeper_operation_duration_seconds',
    'How long real operations took (completed with success or error, newest 10,000 of the last hour): p99 and max, read at most once a minute. Compare with audit_sweeper_stale_after_seconds: an operation longer than the cutoff is timed out while it runs. NaN when unknown.',
    ['stat'],
    function ({ headroom: h }) {
      const s = (ms: number | null | undefined) => (ms == null ? Number.NaN : ms / 1000);
      this.set({ stat: 'p99' }, s(h?.p99Ms));
      this.set({ stat: 'max' }, s(h?.maxMs));
    },
  );
  gauge(
    'audit_sweeper_stale_after_seconds',
    'The cutoff the workers run with (STALE_AFTER): incomplete entries older than this are timed out.',
    [],
    function ({ staleAfterMs }) {
      this.set(staleAfterMs / 1000);
    },
  );
  gauge(
    'audit_sweeper_time_partitions',
    'Range partitions of audit_log (AUDIT_LOG_LAYOUT=partitioned; the legacy partition included), read at most once a minute. Absent on the plain layout.',
    [],
    function ({ timePartitions: t }) {
      this.reset();
      if (t?.layout === 'partitioned') this.set(t.count);
    },
  );
  gauge(
    'audit_sweeper_time_partitions_ahead_seconds',
    'How far past now the newest time partition reaches (created 3 days ahead at every sweep tick); rows past it go to the default partition.',
    [],
    function ({ timePartitions: t }) {
      this.reset();
      if (t?.layout === 'partitioned') this.set(t.aheadMs === null ? Number.NaN : t.aheadMs / 1000);
    },
  );
  gauge(
    'audit_sweeper_time_partition_default_rows',
    'Rows in the default time partition, which no range partition covers: never lost, but held outside retention until their partition exists.',
    [],
    function ({ timePartitions: t }) {
      this.reset();
      if (t?.layout === 'partitioned') this.set(t.defaultRows);
    },
  );
  gauge(
    'audit_sweeper_time_partitions_held_back',
    'Time partitions past RETENTION that retention may not drop yet, by reason: incomplete_rows (the sweeper finalizes them first) or recent_completions.',
    ['reason'],
    function ({ timePartitions: t }) {
      this.reset();
      if (t?.layout !== 'partitioned' || t.heldBack === null) return;
      for (const reason of ['incomplete_rows', 'recent_completions'] as const)
        this.set({ reason }, t.heldBack.filter((h) => h.reason === reason).length);
    },
  );
  gauge(
    'audit_sweeper_health',
    'The health summary: 1 for the current state (healthy, degraded, down), 0 for the others.',
    ['state'],
    function ({ health }) {
      for (const s of HEALTH_STATES) this.set({ state: s }, s === health.state ? 1 : 0);
    },
  );
  gauge(
    'audit_sweeper_health_reason',
    'The reasons behind the health summary: 1 while the reason with this code holds, else 0.',
    ['code'],
    function ({ health }) {
      for (const code of HEALTH_REASON_CODES)
        this.set({ code }, health.reasons.some((r) => r.code === code) ? 1 : 0);
    },
  );
  gauge(
    'audit_sweeper_store_up',
    "1 when this process's overview read could read the store (redis; postgres: DATABASE_READ_URL, else DATABASE_URL), else 0.",
    ['store'],
    function ({ unavailable }) {
      this.set({ store: 'redis' }, unavailable.redis ? 0 : 1);
      this.set({ store: 'postgres' }, unavailable.postgres ? 0 : 1);
    },
  );
  gauge(
    'audit_sweeper_live_workers',
    'Worker processes with a live heartbeat. NaN while Redis does not answer.',
    [],
    function ({ workers }) {
      this.set(workers?.length ?? Number.NaN);
    },
  );
  gauge(
    'audit_sweeper_worker_heartbeat_timestamp_seconds',
    'When each live worker process (host:pid) last wrote its heartbeat, in seconds since 1970.',
    ['worker'],
    function ({ workers }) {
      // Departed workers' series go: a heartbeat that expired is no longer listed.
      this.reset();
      for (const w of workers ?? [])
        this.set({ worker: `${w.host}:${w.pid}` }, seconds(w.lastHeartbeat));
    },
  );
  gauge(
    'audit_sweeper_worker_jobs_in_hand',
    'Jobs each live worker process (host:pid) was working on at its last heartbeat.',
    ['worker'],
    function ({ workers }) {
      this.reset();
      for (const w of workers ?? []) this.set({ worker: `${w.host}:${w.pid}` }, w.jobsInHand);
    },
  );
  gauge(
    'audit_sweeper_failing_partitions',
    'Partitions whose last sweep failed (each is also a partition_failing health reason).',
    [],
    function ({ failingPartitions }) {
      this.set(failingPartitions.length);
    },
  );
  gauge(
    'audit_sweeper_paused',
    '1 while an operator has paused the sweeper (audit-sweeper pause), else 0; NaN while Redis does not answer.',
    [],
    function ({ control }) {
      this.set(control ? (control.pause ? 1 : 0) : Number.NaN);
    },
  );
  gauge(
    'audit_sweeper_pause_since_timestamp_seconds',
    'When the current pause (audit-sweeper pause) began, in seconds since 1970; NaN when not paused.',
    [],
    function ({ control }) {
      this.set(seconds(control?.pause?.since));
    },
  );
  gauge(
    'audit_sweeper_pause_until_timestamp_seconds',
    'When the current pause ends by itself (its --for), in seconds since 1970; +Inf for a pause until resume, NaN when not paused.',
    [],
    function ({ control }) {
      const pause = control?.pause;
      this.set(
        pause ? (pause.until ? seconds(pause.until) : Number.POSITIVE_INFINITY) : Number.NaN,
      );
    },
  );
  gauge(
    'audit_sweeper_row_rate',
    "The fleet's current row rate (rows/s) as the adaptive throttle set it; NaN when it does not steer.",
    [],
    function ({ control }) {
      this.set(control?.adaptive?.rate ?? Number.NaN);
    },
  );
  gauge(
    'audit_sweeper_impact_signal_seconds',
    'The measured commit latency of the adaptive throttle (mean of the last probes); NaN when it does not steer.',
    [],
    function ({ control }) {
      const a = control?.adaptive;
      this.set(a ? a.signalMs / 1000 : Number.NaN);
    },
  );
  gauge(
    'audit_sweeper_impact_target_seconds',
    'The commit latency the adaptive throttle holds the sweep under (SWEEP_IMPACT_TARGET); NaN when it does not steer.',
    [],
    function ({ control }) {
      const a = control?.adaptive;
      this.set(a ? a.targetMs / 1000 : Number.NaN);
    },
  );
  gauge(
    'audit_sweeper_streams_in_use',
    'Partition sweeps running now in the whole fleet (NaN while Redis does not answer).',
    [],
    function ({ control }) {
      this.set(control?.streams.inUse ?? Number.NaN);
    },
  );
  gauge(
    'audit_sweeper_streams_cap',
    'SWEEP_MAX_STREAMS as Redis holds it; +Inf when off, NaN while Redis does not answer.',
    [],
    function ({ control }) {
      this.set(control ? (control.streams.cap ?? Number.POSITIVE_INFINITY) : Number.NaN);
    },
  );
  gauge(
    'audit_sweeper_throttled_workers',
    'Worker processes whose chunks are held back right now, by reason: replica_lag, load, pacing (NaN while Redis does not answer).',
    ['reason'],
    function ({ control }) {
      for (const reason of THROTTLES)
        this.set(
          { reason },
          control ? control.workers.filter((w) => w.reason === reason).length : Number.NaN,
        );
    },
  );
  gauge(
    'audit_sweeper_throttled_for_seconds',
    'How long the longest-held worker has been held back without a break, by reason (0 when none is).',
    ['reason'],
    function ({ control }) {
      const now = Date.now();
      for (const reason of THROTTLES) {
        const since = (control?.workers ?? [])
          .filter((w) => w.reason === reason)
          .map((w) => Date.parse(w.since));
        this.set(
          { reason },
          control ? (since.length ? (now - Math.min(...since)) / 1000 : 0) : Number.NaN,
        );
      }
    },
  );
}
