import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { partitionOf, partitionRange } from '../src/sweep/partitions.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';

/**
 * Sweep partitions are id ranges: for any n they must be disjoint, cover every uuid, and agree
 * with partitionOf. Ids compare as lowercase hex text, which is PostgreSQL's uuid order (bytes,
 * big-endian); the last test checks that against PostgreSQL itself.
 */

/** Any 128-bit id, not only v4: the ranges must cover the whole space. */
const anyId = fc.uint8Array({ minLength: 16, maxLength: 16 }).map((bytes) => {
  const hex = Buffer.from(bytes).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
});
const someId = fc.oneof(anyId, fc.uuid());
const count = fc.integer({ min: 1, max: 1024 });

const MIN = '00000000-0000-0000-0000-000000000000';
const MAX = 'ffffffff-ffff-ffff-ffff-ffffffffffff';

const ranges = (n: number) => Array.from({ length: n }, (_, i) => partitionRange(i, n));
const inRange = (id: string, r: { low: string; high: string }) => {
  const x = id.toLowerCase();
  return r.low <= x && x <= r.high;
};
/** The id right after this one in uuid order (the high one has none). */
function next(id: string): string {
  const hex = id.replaceAll('-', '');
  const n = (BigInt(`0x${hex}`) + 1n).toString(16).padStart(32, '0');
  return `${n.slice(0, 8)}-${n.slice(8, 12)}-${n.slice(12, 16)}-${n.slice(16, 20)}-${n.slice(20)}`;
}

describe('partitionRange and partitionOf', () => {
  it('partitions are ordered, disjoint and adjacent, from the lowest id to the highest', () => {
    fc.assert(
      fc.property(count, (n) => {
        const rs = ranges(n);
        expect(rs[0]?.low).toBe(MIN);
        expect(rs.at(-1)?.high).toBe(MAX);
        for (const [i, r] of rs.entries()) {
          expect(r.low <= r.high).toBe(true);
          expect(r.low).toMatch(/^[0-9a-f]{8}-0000-0000-0000-000000000000$/);
          expect(r.high).toMatch(/^[0-9a-f]{8}-ffff-ffff-ffff-ffffffffffff$/);
          const following = rs[i + 1];
          // No gap and no overlap: the next partition starts right after this one ends.
          if (following) expect(following.low).toBe(next(r.high));
        }
      }),
      { numRuns: 100 },
    );
  });

  it('every id is in exactly one partition, the one partitionOf names', () => {
    fc.assert(
      fc.property(count, fc.array(someId, { minLength: 1, maxLength: 50 }), (n, ids) => {
        const rs = ranges(n);
        for (const id of ids) {
          const p = partitionOf(id, n);
          expect(Number.isInteger(p) && p >= 0 && p < n).toBe(true);
          expect(rs.filter((r) => inRange(id, r))).toEqual([rs[p]]);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('partitionOf agrees with the bounds at every edge', () => {
    fc.assert(
      fc.property(
        count.chain((n) => fc.tuple(fc.constant(n), fc.integer({ min: 0, max: n - 1 }))),
        ([n, i]) => {
          const r = partitionRange(i, n);
          expect(partitionOf(r.low, n)).toBe(i);
          expect(partitionOf(r.high, n)).toBe(i);
          expect(partitionOf(r.high.toUpperCase(), n)).toBe(i);
          if (i + 1 < n) expect(partitionOf(next(r.high), n)).toBe(i + 1);
        },
      ),
      { numRuns: 500 },
    );
    expect(partitionOf(MIN, 1024)).toBe(0);
    expect(partitionOf(MAX, 1024)).toBe(1023);
    expect(partitionOf(MAX, 1)).toBe(0);
  });

  it('changing n between runs still covers every id, once under each n', () => {
    fc.assert(
      fc.property(count, count, fc.array(someId, { minLength: 1, maxLength: 30 }), (a, b, ids) => {
        const before = ranges(a);
        const after = ranges(b);
        for (const id of ids) {
          expect(before.filter((r) => inRange(id, r))).toHaveLength(1);
          expect(after.filter((r) => inRange(id, r))).toHaveLength(1);
          expect(inRange(id, after[partitionOf(id, b)] as { low: string; high: string })).toBe(
            true,
          );
        }
      }),
      { numRuns: 100 },
    );
  });

  it('random v4 ids spread evenly', () => {
    const n = 16;
    const counts = new Array(n).fill(0);
    for (let i = 0; i < 16_000; i++) counts[partitionOf(crypto.randomUUID(), n)]++;
    // Expect 1000 each; 800..1200 is more than 6 standard deviations.
    for (const c of counts) expect(c).toBeGreaterThan(800);
    for (const c of counts) expect(c).toBeLessThan(1200);
  });

  it.each([
    [0, 0],
    [0, 65_537],
    [0, 1.5],
    [-1, 4],
    [4, 4],
    [0.5, 4],
  ])('partitionRange(%s, %s) is a RangeError', (i, n) => {
    expect(() => partitionRange(i, n)).toThrow(RangeError);
  });
});

describe('in PostgreSQL', () => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase('partitions');
    await db.pool.query('CREATE TABLE ids (id uuid PRIMARY KEY)');
    await db.pool.query('INSERT INTO ids SELECT gen_random_uuid() FROM generate_series(1, 4000)');
    // Ids of any version, and every edge of the 7- and 1024-partition layouts.
    const edges = [MIN, MAX, ...fc.sample(anyId, { numRuns: 1000, seed: 42 })];
    for (const n of [7, 1024]) {
      for (const r of ranges(n)) edges.push(r.low, r.high);
    }
    await db.pool.query('INSERT INTO ids SELECT unnest($1::uuid[]) ON CONFLICT DO NOTHING', [
      edges,
    ]);
  });

  afterAll(async () => {
    await db?.drop();
  });

  it.each([1, 2, 3, 7, 16, 100, 1000, 1024])(
    'id BETWEEN low AND high over all %i partitions counts every row exactly once, in the partition partitionOf names',
    async (n) => {
      const rs = ranges(n);
      const { rows } = await db.pool.query<{ id: string; partition: number; hits: number }>(
        `SELECT ids.id, min(r.i)::int AS partition, count(r.i)::int AS hits
           FROM ids
           LEFT JOIN unnest($1::uuid[], $2::uuid[]) WITH ORDINALITY AS r(low, high, i)
             ON ids.id BETWEEN r.low AND r.high
          GROUP BY ids.id`,
        [rs.map((r) => r.low), rs.map((r) => r.high)],
      );
      const total = (await db.pool.query('SELECT count(*)::int AS n FROM ids')).rows[0].n;
      expect(total).toBeGreaterThan(5000);
      expect(rows).toHaveLength(total);
      expect(rows.filter((r) => r.hits !== 1)).toEqual([]);
      // ORDINALITY counts from 1.
      expect(rows.filter((r) => r.partition - 1 !== partitionOf(r.id, n))).toEqual([]);

      // The sweeper's own statement shape, partition by partition, adds up to every row.
      let sum = 0;
      for (const r of rs) {
        const { rows: c } = await db.pool.query(
          'SELECT count(*)::int AS n FROM ids WHERE id BETWEEN $1::uuid AND $2::uuid',
          [r.low, r.high],
        );
        sum += c[0].n;
      }
      expect(sum).toBe(total);
    },
  );
});
