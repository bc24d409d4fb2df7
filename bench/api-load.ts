/**
 * The audit-log API under load: BENCH_API_ROWS completed rows (default 1,000,000), a real
 * `audit-sweeper dashboard` process on default settings, and autocannon sending
 * BENCH_API_REQUESTS requests (2000) over BENCH_API_CONNECTIONS connections (50) to
 *   - the first page of a range that covers the whole table (2020 to now), both orders;
 *   - deep pages: page tokens for 200 random positions in the table, both orders;
 * alternating the two BENCH_ROUNDS (3) times each, while /readyz (no auth) and /api/overview are
 * polled one after the other. Figures: each scenario's median p50/p99 over the rounds;
 * api_p50_ms/api_p99_ms are the worse of the two scenarios; api_errors counts connection errors,
 * timeouts and non-2xx answers over every round; readyz_failures and overview_failures count
 * probes that were not 200 within 5 s.
 *
 * `npm run bench` runs this after the sweeper's figures; `npm run bench:api` runs it alone. The
 * last line printed is the figures as one JSON object.
 */

import { randomBytes } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import autocannon from 'autocannon';
import { migrate } from '../src/db/migrate.ts';
import { createPool } from '../src/db/pool.ts';
import { silentLogger } from '../src/log.ts';
import { encodePageToken } from '../src/store/page-token.ts';
import { startCli } from '../test/support/cli.ts';
import { adminQuery } from '../test/support/db.ts';
import { freePort } from '../test/support/private-servers.ts';
import { seed } from '../test/support/seed.ts';

export type ApiLoadResult = {
  api_rows: number;
  api_requests: number;
  api_connections: number;
  api_rounds: number;
  api_p50_ms: number;
  api_p99_ms: number;
  api_errors: number;
  readyz_failures: number;
  readyz_probes: number;
  overview_failures: number;
  api_first_page_p50_ms: number;
  api_first_page_p99_ms: number;
  api_deep_page_p50_ms: number;
  api_deep_page_p99_ms: number;
  api_requests_per_s: number;
};

const PASSWORD = 'bench-password-not-secret';
const START = '2020-01-01T00:00:00Z';
/** The start time as the service binds it into a page token (UTC, microseconds). */
const START_BOUND = '2020-01-01T00:00:00.000000Z';
const median = (xs: number[]) =>
  [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;

export async function runApiLoadBench(
  options: {
    rows?: number;
    requests?: number;
    connections?: number;
    rounds?: number;
    log?: (line: string) => void;
  } = {},
): Promise<ApiLoadResult> {
  const rows = options.rows ?? Number(process.env.BENCH_API_ROWS ?? 1_000_000);
  const requests = options.requests ?? Number(process.env.BENCH_API_REQUESTS ?? 2000);
  const connections = options.connections ?? Number(process.env.BENCH_API_CONNECTIONS ?? 50);
  const rounds = options.rounds ?? Number(process.env.BENCH_ROUNDS ?? 3);
  const log = options.log ?? ((line: string) => console.log(line));

  const name = `bench_api_${randomBytes(4).toString('hex')}`;
  const url = new URL(process.env.TEST_DATABASE_URL ?? 'postgres://root@127.0.0.1:5432/postgres');
  url.pathname = `/${name}`;
  await migrate(url.toString(), silentLogger);
  const pool = createPool(url.toString(), silentLogger, { max: 2 });
  let dashboard: ReturnType<typeof startCli> | undefined;
  try {
    log(`api bench: seeding ${rows} completed rows in ${name} ...`);
    await seed(pool, { kind: 'completed', count: rows, tag: 'api' });
    await pool.query('VACUUM ANALYZE audit_log');
    const deepPaths = await deepPagePaths(pool, 200);

    const port = await freePort();
    dashboard = startCli(['dashboard'], {
      DATABASE_URL: url.toString(),
      QUEUE_PREFIX: `{bench-api-${randomBytes(4).toString('hex')}}`,
      DASHBOARD_PORT: String(port),
      DASHBOARD_PASSWORD: PASSWORD,
      LOG_LEVEL: 'warn',
      RETENTION: 'off',
    });
    const origin = `http://127.0.0.1:${port}`;
    await waitUntilReady(origin, dashboard);
    const authorization = `Basic ${Buffer.from(`admin:${PASSWORD}`).toString('base64')}`;

    let turn = 0;
    const firstPaths = ['ascending', 'descending'].map(
      (sort) => `/v1/audit-log?start_time=${START}&sort=${sort}`,
    );
    const load = (paths: string[], amount: number) =>
      new Promise<autocannon.Result>((resolve, reject) => {
        autocannon(
          {
            url: origin,
            connections,
            amount,
            timeout: 10,
            headers: { authorization },
            requests: [
              {
                method: 'GET',
                setupRequest: (req) => ({ ...req, path: paths[turn++ % paths.length] as string }),
              },
            ],
          },
          (err, result) => (err ? reject(err) : resolve(result)),
        );
      });

    // Warm-up (pools, JIT, caches), not counted.
    await load([...firstPaths, ...deepPaths], Math.min(500, requests));

    const figures = { first: { p50: [], p99: [] }, deep: { p50: [], p99: [] } } as Record<
      'first' | 'deep',
      { p50: number[]; p99: number[] }
    >;
    let errors = 0;
    let throughput = 0;
    const probes = { readyz: 0, readyzFailures: 0, overviewFailures: 0 };
    for (let round = 0; round < rounds; round++) {
      const order: ('first' | 'deep')[] = round % 2 ? ['deep', 'first'] : ['first', 'deep'];
      for (const scenario of order) {
        const running = load(scenario === 'first' ? firstPaths : deepPaths, requests);
        const probing = probeWhile(origin, authorization, running, probes);
        const result = await running;
        await probing;
        figures[scenario].p50.push(result.latency.p50);
        figures[scenario].p99.push(result.latency.p99);
        errors += result.errors + result.timeouts + result.non2xx;
        throughput = Math.max(throughput, result.requests.average);
        log(
          `api bench round ${round + 1} ${scenario} pages: p50 ${result.latency.p50} ms, p99 ${result.latency.p99} ms, ${result.non2xx} non-2xx, ${result.errors} errors, ${Math.round(result.requests.average)} req/s`,
        );
      }
    }
    const p = (s: 'first' | 'deep', q: 'p50' | 'p99') => median(figures[s][q]);
    return {
      api_rows: rows,
      api_requests: requests,
      api_connections: connections,
      api_rounds: rounds,
      api_p50_ms: Math.max(p('first', 'p50'), p('deep', 'p50')),
      api_p99_ms: Math.max(p('first', 'p99'), p('deep', 'p99')),
      api_errors: errors,
      readyz_failures: probes.readyzFailures,
      readyz_probes: probes.readyz,
      overview_failures: probes.overviewFailures,
      api_first_page_p50_ms: p('first', 'p50'),
      api_first_page_p99_ms: p('first', 'p99'),
      api_deep_page_p50_ms: p('deep', 'p50'),
      api_deep_page_p99_ms: p('deep', 'p99'),
      api_requests_per_s: Math.round(throughput),
    };
  } finally {
    if (dashboard) {
      dashboard.child.kill('SIGTERM');
      await dashboard.exited;
    }
    await pool.end();
    await adminQuery(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  }
}

/**
 * Paths to pages that start at `count` random positions in the table, half in each order, with
 * page tokens signed by the database's key exactly as the service signs them.
 */
async function deepPagePaths(pool: ReturnType<typeof createPool>, count: number) {
  const { rows } = await pool.query(
    `SELECT to_char(time_completed AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS time, id
       FROM audit_log TABLESAMPLE SYSTEM (1) WHERE time_completed IS NOT NULL LIMIT $1`,
    [count],
  );
  const { rows: key } = await pool.query(
    `SELECT value FROM audit_sweeper_secret WHERE name = 'page_token_key'`,
  );
  return rows.map((row, i) => {
    const sort = i % 2 ? 'descending' : 'ascending';
    const token = encodePageToken(
      key[0].value,
      { order: sort, startTime: START_BOUND, endTime: null },
      { time: row.time, id: row.id },
    );
    return `/v1/audit-log?start_time=${START}&sort=${sort}&page_token=${token}`;
  });
}

async function waitUntilReady(origin: string, dashboard: ReturnType<typeof startCli>) {
  for (let i = 0; i < 300; i++) {
    const ok = await fetch(`${origin}/readyz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return;
    if (dashboard.child.exitCode !== null)
      throw new Error(`dashboard exited:\n${dashboard.output()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`dashboard not ready:\n${dashboard.output()}`);
}

/** /readyz and /api/overview one after the other, every 100 ms, until `until` settles. */
async function probeWhile(
  origin: string,
  authorization: string,
  until: Promise<unknown>,
  counts: { readyz: number; readyzFailures: number; overviewFailures: number },
) {
  let done = false;
  void until.finally(() => {
    done = true;
  });
  const ok = (path: string, headers: Record<string, string> = {}) =>
    fetch(`${origin}${path}`, { headers, signal: AbortSignal.timeout(5_000) }).then(
      async (r) => {
        await r.arrayBuffer();
        return r.status === 200;
      },
      () => false,
    );
  while (!done) {
    counts.readyz++;
    if (!(await ok('/readyz'))) counts.readyzFailures++;
    if (!(await ok('/api/overview', { authorization }))) counts.overviewFailures++;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const result = await runApiLoadBench();
  console.table(result);
  console.log(JSON.stringify(result));
}
