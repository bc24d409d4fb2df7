/**
 * The idle cost of a full run (nothing stale) at two table sizes: the time of a sweep through
 * the queue, end to end, alternating the sizes, and the buffers the run's chunks touch (one
 * chunk per partition, read from EXPLAIN (ANALYZE, BUFFERS) in a rolled-back transaction).
 * A run whose cost followed the table's size instead of its backlog would show here.
 */

import { loadConfig } from '../src/config.ts';
import { finalizeStaleChunk, staleCutoff } from '../src/sql/sweep.ts';
import { partitionRange } from '../src/sweep/partitions.ts';
import { createTestDatabase, type TestDatabase } from '../test/support/db.ts';
import { explain } from '../test/support/explain.ts';
import { median, round2, seedRows, spread, startWorkers, type WorkerSet } from './support.ts';

/** Shared buffers hit or read by one run's chunks (every partition once, nothing to finalize). */
async function runBuffers(db: TestDatabase): Promise<number> {
  const config = loadConfig({});
  const client = await db.pool.connect();
  try {
    const cutoff = await staleCutoff(client, { staleAfterMs: 3_600_000 });
    let buffers = 0;
    for (let p = 0; p < config.SWEEP_PARTITIONS; p++) {
      const { low, high } = partitionRange(p, config.SWEEP_PARTITIONS);
      await client.query('BEGIN');
      const plan = await explain(client, 'ANALYZE, BUFFERS', (db) =>
        finalizeStaleChunk(db, { cutoff, low, high, limit: config.SWEEP_CHUNK_SIZE }),
      );
      await client.query('ROLLBACK');
      buffers += Number(plan['Shared Hit Blocks']) + Number(plan['Shared Read Blocks']);
    }
    return buffers;
  } finally {
    client.release();
  }
}

export async function measureIdle(o: {
  small: number;
  big: number;
  rounds: number;
  workers: number;
  log: (line: string) => void;
  /** Where the databases are recorded, for the caller to drop. */
  databases: TestDatabase[];
}) {
  const sizes = [o.small, o.big];
  const dbs: TestDatabase[] = [];
  const sets: WorkerSet[] = [];
  try {
    for (const rows of sizes) {
      const db = await createTestDatabase(`bench_idle_${rows}`);
      o.databases.push(db);
      dbs.push(db);
      o.log(`idle: seeding ${rows} rows, none stale ...`);
      const t = performance.now();
      await seedRows(db.pool, rows, 0);
      o.log(`idle: seeded ${rows} rows in ${Math.round((performance.now() - t) / 1000)} s`);
      sets.push(await startWorkers(db.url, o.workers));
    }
    for (const set of sets) await set.sweep(); // not timed: opens the workers' pools
    const times: number[][] = [[], []];
    for (let round = 0; round < o.rounds; round++) {
      const order = round % 2 ? [1, 0] : [0, 1];
      for (const i of order) times[i]?.push((await sets[i]?.sweep())?.ms ?? Number.NaN);
    }
    const buffers = await Promise.all(dbs.map(runBuffers));
    for (const [i, rows] of sizes.entries())
      o.log(`idle run at ${rows} rows: ${spread(times[i] ?? [])}, ${buffers[i]} buffers`);
    return {
      idle_ratio: round2(median(times[1] ?? []) / median(times[0] ?? [])),
      idle_buffers_ratio: round2((buffers[1] ?? 0) / (buffers[0] ?? 1)),
      idle_ms: {
        small: Math.round(median(times[0] ?? [])),
        big: Math.round(median(times[1] ?? [])),
      },
      idle_buffers: { small: buffers[0], big: buffers[1] },
      idle_rows: { small: o.small, big: o.big },
    };
  } finally {
    for (const set of sets) await set.close();
    for (const db of dbs) {
      await db.drop();
      o.databases.splice(o.databases.indexOf(db), 1);
    }
  }
}
