/**
 * Partitions are ranges of ids: partition i of n holds the ids whose first 32 bits fall in
 * [floor(i * 2^32 / n), floor((i + 1) * 2^32 / n)). Random (v4) ids spread evenly over them.
 * Nothing about a partition is stored, so n can change between runs without a migration.
 */
export type IdRange = { low: string; high: string };

const SPACE = 2 ** 32;

export function partitionRange(partition: number, partitions: number): IdRange {
  if (!Number.isInteger(partitions) || partitions < 1 || partitions > 65_536) {
    throw new RangeError(`partitions must be a whole number from 1 to 65536, got ${partitions}`);
  }
  if (!Number.isInteger(partition) || partition < 0 || partition >= partitions) {
    throw new RangeError(`partition must be from 0 to ${partitions - 1}, got ${partition}`);
  }
  const first = Math.floor((partition * SPACE) / partitions);
  const last = Math.floor(((partition + 1) * SPACE) / partitions) - 1;
  return {
    low: `${hex8(first)}-0000-0000-0000-000000000000`,
    high: `${hex8(last)}-ffff-ffff-ffff-ffffffffffff`,
  };
}

/** The partition an id belongs to (for tests and the per-partition backlog). */
export function partitionOf(id: string, partitions: number): number {
  const prefix = Number.parseInt(id.slice(0, 8), 16);
  // floor(p * n / 2^32) is the inverse of partitionRange's bounds.
  const guess = Math.floor((prefix * partitions) / SPACE);
  return Math.floor(((guess + 1) * SPACE) / partitions) <= prefix ? guess + 1 : guess;
}

const hex8 = (n: number) => n.toString(16).padStart(8, '0');
