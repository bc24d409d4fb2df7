-- The adaptive throttle's probe (src/control/adaptive.ts): one row the elected sampler updates
-- with a synchronous commit every few hundred ms. Its latency is what an application's audit
-- write pays (the same WAL flush), and the sweeper owns the table, so nothing else is touched.
CREATE TABLE IF NOT EXISTS audit_sweeper_probe (
  id int PRIMARY KEY CHECK (id = 1),
  at timestamptz NOT NULL
);
INSERT INTO audit_sweeper_probe (id, at) VALUES (1, now()) ON CONFLICT (id) DO NOTHING;
