/**
 * Gentleness, for `npm run bench`: an application's init+complete p99 on an idle table, during a
 * drain at full speed, and during drains paced (SWEEP_MAX_ROWS_PER_SECOND) at a half and a
 * quarter of the full-speed rate, in rotating rounds on one database; and each drain's rate.
 * One set of 2 worker processes per setting, each on its own queue prefix.
 *
 * Returns the fields the bench prints: paced_writer_p99_ratio (target <= 2) beside
 * full_speed_writer_p99_ratio, and the drain rates each way.
 */

import { pathToFileURL } from 'node:url';
import type { Pool } from '../src/db/pool.ts';
import { AuditLogStore } from '../src/store/store.ts';
import {
  MAINTENANCE,
  median,
  quantile,
  resetStale,
  round2,
  seedRows,
  startWorkers,
  writeUntil,
} from './support.ts';

const r2 = round2;

/** 2 worker processes with these settings, on a queue prefix of their own. */
async function workerSet(databaseUrl: string, settings: Record<string, string>) {
  // Its own pacing only: the adaptive throttle and the stream cap stay out of this measure.
  const set = await startWorkers(databaseUrl, 2, { ...MAINTENANCE, ...settings });
  return {
    /** One drain, request to summary: its time (ms) and rows. */
    sweep: async () => {
      const { ms, summary } = await set.sweep();
      return { ms, rows: summary.finalized };
    },
    close: set.close,
  };
}

export type GentleResult = {
  full_speed_rows_per_s: number;
  paced_limit_rows_per_s: number;
  paced_rows_per_s: number;
  quarter_paced_limit_rows_per_s: number;
  quarter_paced_rows_per_s: number;
  writer_p99_idle_ms: number;
  writer_p99_full_speed_ms: number;
  writer_p99_paced_ms: number;
  writer_p99_quarter_paced_ms: number;
  full_speed_writer_p99_ratio: number;
  /** Paced at half the full-speed rate: target <= 2. */
  paced_writer_p99_ratio: number;
  quarter_paced_writer_p99_ratio: number;
  gentle_writes: Record<'idle' | 'full' | 'half' | 'quarter', number>;
};

type Side = 'full' | 'half' | 'quarter';

/**
 * `db` holds `stale` rows tagged `stale-<n>` that `reset` makes stale again. The full-speed rate
 * is the median of three drains first; the paced sides run at a half and a quarter of it.
 */
export async function measureGentle(o: {
  pool: Pool;
  databaseUrl: string;
  stale: number;
  rounds: number;
  reset: () => Promise<void>;
  log?: (line: string) => void;
}): Promise<GentleResult> {
  const log = o.log ?? (() => {});
  const sets: Partial<Record<Side, Awaited<ReturnType<typeof workerSet>>>> = {};
  try {
    const full = await workerSet(o.databaseUrl, {});
    sets.full = full;
    await o.reset();
    await full.sweep(); // opens the workers' pools; not counted
    const firstRates: number[] = [];
    for (let i = 0; i < 3; i++) {
      await o.reset();
      const { ms, rows } = await full.sweep();
      firstRates.push((rows * 1000) / ms);
    }
    const fullRate = median(firstRates);
    const limits = { half: Math.round(fullRate / 2), quarter: Math.round(fullRate / 4) };
    sets.half = await workerSet(o.databaseUrl, { SWEEP_MAX_ROWS_PER_SECOND: String(limits.half) });
    sets.quarter = await workerSet(o.databaseUrl, {
      SWEEP_MAX_ROWS_PER_SECOND: String(limits.quarter),
    });
    const store = new AuditLogStore(o.pool);
    const lat = {
      idle: [] as number[],
      full: [] as number[],
      half: [] as number[],
      quarter: [] as number[],
    };
    const rate = { full: [] as number[], half: [] as number[], quarter: [] as number[] };
    const during = async (side: Side) => {
      const set = sets[side];
      if (!set) throw new Error(`no workers for ${side}`);
      let done = false;
      const drain = set.sweep().finally(() => {
        done = true;
      });
      lat[side].push(...(await writeUntil(store, () => done)));
      const { ms, rows } = await drain;
      if (rows !== o.stale)
        throw new Error(`a ${side} drain finalized ${rows}, expected ${o.stale}`);
      rate[side].push((rows * 1000) / ms);
    };
    const idleMs = Math.max(2_000, (2 * o.stale * 1000) / fullRate);
    for (let round = 0; round < o.rounds; round++) {
      const sides = [
        async () => {
          const until = performance.now() + idleMs;
          lat.idle.push(...(await writeUntil(store, () => performance.now() > until)));
        },
        () => during('full'),
        () => during('half'),
        () => during('quarter'),
      ];
      for (let i = 0; i < sides.length; i++) {
        await o.reset();
        await sides[(i + round) % sides.length]?.();
      }
      log(
        `gentle round ${round + 1}: full speed ${Math.round(rate.full.at(-1) ?? 0)} rows/s, paced ${Math.round(rate.half.at(-1) ?? 0)} (limit ${limits.half}) and ${Math.round(rate.quarter.at(-1) ?? 0)} rows/s (limit ${limits.quarter})`,
      );
    }
    const p99 = (xs: number[]) => quantile(xs, 0.99);
    const ratio = (xs: number[]) => r2(p99(xs) / p99(lat.idle));
    const result: GentleResult = {
      full_speed_rows_per_s: Math.round(median(rate.full)),
      paced_limit_rows_per_s: limits.half,
      paced_rows_per_s: Math.round(median(rate.half)),
      quarter_paced_limit_rows_per_s: limits.quarter,
      quarter_paced_rows_per_s: Math.round(median(rate.quarter)),
      writer_p99_idle_ms: r2(p99(lat.idle)),
      writer_p99_full_speed_ms: r2(p99(lat.full)),
      writer_p99_paced_ms: r2(p99(lat.half)),
      writer_p99_quarter_paced_ms: r2(p99(lat.quarter)),
      full_speed_writer_p99_ratio: ratio(lat.full),
      paced_writer_p99_ratio: ratio(lat.half),
      quarter_paced_writer_p99_ratio: ratio(lat.quarter),
      gentle_writes: {
        idle: lat.idle.length,
        full: lat.full.length,
        half: lat.half.length,
        quarter: lat.quarter.length,
      },
    };
    log(
      `gentle: writer p99 idle ${result.writer_p99_idle_ms} ms; full speed ${result.writer_p99_full_speed_ms} ms (x${result.full_speed_writer_p99_ratio}); paced at ${limits.half} rows/s ${result.writer_p99_paced_ms} ms (x${result.paced_writer_p99_ratio}, target <= 2); at ${limits.quarter} rows/s ${result.writer_p99_quarter_paced_ms} ms (x${result.quarter_paced_writer_p99_ratio})`,
    );
    return result;
  } finally {
    await Promise.all(Object.values(sets).map((set) => set?.close()));
  }
}

/** `node --import tsx bench/gentle.ts`: this measurement alone, on a database of its own. */
async function alone() {
  const { createTestDatabase } = await import('../test/support/db.ts');
  const rows = Number(process.env.BENCH_ROWS ?? 1_000_000);
  const stale = Number(process.env.BENCH_STALE ?? 100_000);
  const db = await createTestDatabase('bench_gentle');
  try {
    console.log(`gentle: seeding ${rows} rows, ${stale} stale ...`);
    await seedRows(db.pool, rows, stale);
    const result = await measureGentle({
      pool: db.pool,
      databaseUrl: db.url,
      stale,
      rounds: Number(process.env.BENCH_ROUNDS ?? 3),
      reset: () => resetStale(db.pool),
      log: console.log,
    });
    console.log(JSON.stringify(result));
  } finally {
    await db.drop();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await alone();
