-- Finished sweep runs and retention runs, so that the history, the chart and `status --runs`
-- survive a Redis that lost its data, and can be queried with SQL. Bounded: every insert trims
-- the table to the newest rows of its kind (see src/sql/run-history.ts).
CREATE TABLE audit_sweeper_runs (
  run_id             text PRIMARY KEY,
  kind               text NOT NULL CHECK (kind IN ('sweep', 'retention')),
  trigger            text,
  started_at         timestamptz NOT NULL,
  finished_at        timestamptz NOT NULL,
  duration_ms        bigint NOT NULL,
  -- rows timed out (sweep) or deleted (retention)
  rows               bigint NOT NULL,
  chunks             int NOT NULL,
  partitions         int,
  failed_partitions  int[] NOT NULL DEFAULT '{}',
  skipped_partitions int[] NOT NULL DEFAULT '{}',
  -- the whole summary as the run job returned it (errors included)
  summary            jsonb NOT NULL
);
CREATE INDEX audit_sweeper_runs_by_kind_time ON audit_sweeper_runs (kind, finished_at DESC);
