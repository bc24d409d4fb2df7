-- migrate: no-transaction
-- Each sweep partition is a range of ids. Ordering by id inside that range, with time_started
-- checked on the index tuple, keeps a partition's chunk from walking past the other partitions'
-- stale entries (what (time_started, id) would do) and costs nothing once the partition is clean.
-- Built CONCURRENTLY, outside a transaction: the application's writes go on while it builds on
-- a large existing table (a plain CREATE INDEX would hold them until it is done). A build that
-- failed is dropped and redone by the next `migrate` (src/db/migrate.ts).
CREATE INDEX CONCURRENTLY IF NOT EXISTS audit_log_incomplete_by_id
  ON audit_log (id, time_started) WHERE time_completed IS NULL;
