import { AuditLogStore } from '../src/store/store.ts';
import { createTestDatabase, type TestDatabase } from '../test/support/db.ts';
import {
  median,
  quantile,
  resetStale,
  round2,
  seedRows,
  singleUpdate,
  startWorkers,
  underApplicationLoad,
} from './support.ts';

/**
 * Issue 18's measure: what an application feels while 1, 2 and 4 worker processes drain a
 * backlog with default settings (the stream cap and the adaptive throttle on), against one
 * UPDATE of every stale row, and against the same fleet with both off (a maintenance window).
 * The application is an open-loop writer at a fixed rate (`rate` ops/s over `clients`
 * connections, each op an init INSERT then its complete UPDATE, synchronous commit): its
 * latencies over the drain's window against idle, and the rate it achieved against its target.
 */

type Side = {
  drain_ms: number;
  p50_ms: number;
  p99_ms: number;
  p99_ratio: number;
  app_rate: number;
};

export async function measureImpact(o: {
  rows: number;
  stale: number;
  rate: number;
  clients: number;
  log: (line: string) => void;
  cleanups: (() => Promise<void>)[];
  databases: TestDatabase[];
}) {
  const db = await createTestDatabase('bench_impact');
  o.databases.push(db);
  o.log(`impact: seeding ${o.rows} rows, ${o.stale} stale ...`);
  await seedRows(db.pool, o.rows, o.stale);
  const store = new AuditLogStore(db.pool);

  const underLoad = (work: () => Promise<unknown>) =>
    underApplicationLoad(store, { rate: o.rate, clients: o.clients }, work);

  const idle = await underLoad(() => new Promise((r) => setTimeout(r, 5_000)));
  const idleP99 = quantile(idle.latencies, 0.99);
  o.log(
    `impact: idle writers p50 ${round2(median(idle.latencies))} ms, p99 ${round2(idleP99)} ms, ${round2(idle.appRate)} ops/s of ${o.rate}`,
  );
  const side = (r: Awaited<ReturnType<typeof underLoad>>): Side => ({
    drain_ms: Math.round(r.ms),
    p50_ms: round2(median(r.latencies)),
    p99_ms: round2(quantile(r.latencies, 0.99)),
    p99_ratio: round2(quantile(r.latencies, 0.99) / idleP99),
    app_rate: round2(r.appRate),
  });
  const show = (name: string, s: Side) =>
    o.log(
      `impact: ${name}: drain ${(s.drain_ms / 1000).toFixed(1)} s, writers p50 ${s.p50_ms} ms, p99 ${s.p99_ms} ms (x${s.p99_ratio} idle), app ${s.app_rate} ops/s of ${o.rate}`,
    );

  await resetStale(db.pool);
  const single = side(await underLoad(() => singleUpdate(db.pool)));
  show('one UPDATE', single);

  const fleet = async (count: number, settings: Record<string, string> = {}) => {
    const workers = await startWorkers(db.url, count, settings);
    o.cleanups.push(workers.close);
    try {
      await workers.sweep(); // the first tick's run (a worker fires one at start)
      await resetStale(db.pool);
      const r = await underLoad(async () => {
        const { summary } = await workers.sweep();
        if (summary.finalized !== o.stale)
          throw new Error(`the run finalized ${summary.finalized} rows, expected ${o.stale}`);
      });
      return side(r);
    } finally {
      await workers.close();
    }
  };
  const w1 = await fleet(1);
  show('1 worker process, defaults', w1);
  const w2 = await fleet(2);
  show('2 worker processes, defaults', w2);
  const w4 = await fleet(4);
  show('4 worker processes, defaults', w4);
  const off = await fleet(4, { SWEEP_IMPACT_TARGET: 'off', SWEEP_MAX_STREAMS: 'off' });
  show('4 worker processes, SWEEP_IMPACT_TARGET=off SWEEP_MAX_STREAMS=off', off);

  return {
    impact_p99_ratio_w1: w1.p99_ratio,
    impact_p99_ratio_w4: w4.p99_ratio,
    impact_drain_vs_update_w4: round2(w4.drain_ms / single.drain_ms),
    impact_off_update_vs_drain_w4: round2(single.drain_ms / off.drain_ms),
    impact: {
      rows: o.rows,
      stale: o.stale,
      app_target_rate: o.rate,
      idle: { p50_ms: round2(median(idle.latencies)), p99_ms: round2(idleP99) },
      single_update: single,
      w1,
      w2,
      w4,
      w4_off: off,
    },
  };
}
