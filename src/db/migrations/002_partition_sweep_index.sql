-- Each sweep partition is a range of ids. Ordering by id inside that range, with time_started
-- checked on the index tuple, keeps a partition's chunk from walking past the other partitions'
-- stale entries (what (time_started, id) would do) and costs nothing once the partition is clean.
CREATE INDEX audit_log_incomplete_by_id
  ON audit_log (id, time_started) WHERE time_completed IS NULL;
