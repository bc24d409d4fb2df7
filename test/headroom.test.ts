import { beforeAll, describe, expect, it } from 'vitest';
import { readHeadroom } from '../src/read/headroom.ts';
import { runCli } from './support/cli.ts';
import { sweeperEnv } from './support/harness.ts';
import { seed } from './support/seed.ts';
import { useTestWorld } from './support/world.ts';

/**
 * The cutoff's headroom: how long real operations took (completed with success or error in the
 * last hour) against STALE_AFTER, read cheaply and at most once a minute, and a health reason
 * when they come close to the cutoff.
 */

const world = useTestWorld('headroom');

beforeAll(async () => {
  // History outside the window: a plan over it must not read it.
  await seed(world.db.pool, { kind: 'completed', count: 200_000, tag: 'old' });
  await world.db.pool.query('ANALYZE audit_log');
});
/** Operations completed just now that took `seconds` each, with `kind`. */
async function completed(seconds: number[], kind: 'success' | 'error' | 'timeout' = 'success') {
  await world.db.pool.query(
    `INSERT INTO audit_log (id, request_id, request_uri, operation_id, source_ip, actor_kind,
                           time_started, time_completed, http_status_code, error_message, result_kind)
     SELECT gen_random_uuid(), 'h-' || g, '/x', 'op', '10.0.0.1', 'unauthenticated',
            now() - make_interval(secs => d), now(),
            CASE WHEN $2 = 'timeout' THEN NULL WHEN $2 = 'error' THEN 500 ELSE 200 END,
            CASE WHEN $2 = 'error' THEN 'failed' END, $2::audit_log_result_kind
       FROM unnest($1::float8[]) WITH ORDINALITY AS t(d, g)`,
    [seconds, kind],
  );
}

describe('the cutoff headroom', () => {
  it('reads the newest completions along the completion index, never the history', async () => {
    // An hour of a busy application (300k completions, about 80 a second) over the history.
    await world.db.pool.query(
      `INSERT INTO audit_log (id, request_id, request_uri, operation_id, source_ip, actor_kind,
                             time_started, time_completed, http_status_code, result_kind)
       SELECT gen_random_uuid(), 'w-' || g, '/x', 'op', '10.0.0.1', 'unauthenticated',
              now() - make_interval(secs => g * 0.01 + 1), now() - make_interval(secs => g * 0.01),
              200, 'success'
         FROM generate_series(1, 300000) AS g`,
    );
    await world.db.pool.query('ANALYZE audit_log');
    const { rows } = await world.db.pool.query(
      `EXPLAIN (FORMAT JSON, ANALYZE, BUFFERS)
       SELECT count(*) FROM (SELECT time_completed FROM audit_log
         WHERE time_completed IS NOT NULL AND time_completed > now() - interval '1 hour'
           AND result_kind IN ('success', 'error')
         ORDER BY time_completed DESC, id DESC LIMIT 10000) AS r`,
    );
    const plan = JSON.stringify(rows[0]['QUERY PLAN']);
    expect(plan).toContain('"Scan Direction":"Backward"');
    expect(plan).toContain('audit_log_by_time_completed');
    expect(plan).not.toContain('Seq Scan');
    expect(plan).not.toContain('"Sort"');
    // The newest 10,000 of 500k rows: a few hundred pages, not the window's or the table's.
    const top = rows[0]['QUERY PLAN'][0].Plan;
    expect(top['Shared Hit Blocks'] + top['Shared Read Blocks']).toBeLessThan(1_000);
    await world.db.pool.query(`DELETE FROM audit_log WHERE request_id LIKE 'w-%'`);
  });

  it('gives p99 and max of success and error operations, not of timeouts, cached a minute', async () => {
    const durations = Array.from({ length: 200 }, (_, i) => 1 + (i % 10));
    await completed(durations);
    await completed([120], 'error');
    await completed([7200], 'timeout'); // the sweeper's: not a real operation
    const now = Date.now();
    const h = await readHeadroom(world.db.pool, now);
    expect(h.samples).toBe(201);
    expect(h.maxMs).toBeGreaterThanOrEqual(120_000);
    expect(h.maxMs).toBeLessThan(121_000);
    expect(h.p99Ms).toBeGreaterThanOrEqual(10_000);
    expect(h.p99Ms).toBeLessThan(120_000);
    await completed([600]);
    expect((await readHeadroom(world.db.pool, now + 30_000)).maxMs).toBe(h.maxMs);
    expect((await readHeadroom(world.db.pool, now + 61_000)).maxMs).toBeGreaterThanOrEqual(600_000);
  });

  it('status shows it beside STALE_AFTER, with a health reason when operations come close', async () => {
    const env = sweeperEnv(
      { databaseUrl: world.db.url, prefix: world.prefix },
      { STALE_AFTER: '15m' },
    );
    const { output } = await runCli(['status', '--json'], env);
    const report = JSON.parse(output.trim().split('\n').at(-1) ?? '');
    expect(report.headroom.maxMs).toBeGreaterThanOrEqual(600_000);
    const reason = report.health.reasons.find(
      (r: { code: string }) => r.code === 'cutoff_headroom',
    );
    expect(reason?.message).toMatch(/raise STALE_AFTER/);

    const roomy = await runCli(['status'], { ...env, STALE_AFTER: '4h' });
    expect(roomy.output).toMatch(
      /cutoff headroom: operations of the last 1 h took p99 .* at most 10 min/,
    );
    expect(roomy.output).not.toMatch(/come close to the cutoff/);
  });
});
