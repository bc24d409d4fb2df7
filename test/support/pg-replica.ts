import { appendFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { pollUntil } from './poll.ts';
import { freePort, initCluster, postgresFolder, startCluster } from './private-servers.ts';

/**
 * A PostgreSQL primary and a streaming replica of it, private to one test file: `initdb` a
 * primary (wal_level = replica, a `replication` line in pg_hba.conf), `pg_basebackup -R` a copy
 * and start it on another port. Both listen on 127.0.0.1 with trust auth as `postgres`, their
 * files in one temporary folder that `destroy` removes. The shared server is never touched.
 *
 * Replication lag on demand: `pauseReplay` stops the replica applying WAL (it keeps receiving
 * it), so every commit on the primary from then on is missing on the replica until
 * `resumeReplay`; `lag` reads how far behind it is, as the primary sees it.
 *
 *   const pair = await startReplicatedPostgres();
 *   await migrate(pair.primary.url('app'), logger);   // the replica gets it by replication
 *   await pair.waitForCatchUp();
 *   await pair.pauseReplay();  ... commits on the primary ...  (await pair.lag()).bytesBehind > 0
 *   await pair.resumeReplay(); await pair.waitForCatchUp();
 *   await pair.destroy();
 */

export type Server = {
  port: number;
  /** A URL for `database` on this server, as the superuser `postgres`. */
  url: (database: string) => string;
};

export type ReplicationLag = {
  /** WAL the primary has written that the replica has not replayed yet. */
  bytesBehind: number;
  /** pg_stat_replication.replay_lag in ms: null when the primary has no recent measure. */
  replayLagMs: number | null;
};

export type ReplicatedPostgres = {
  primary: Server;
  replica: Server;
  /** Stops WAL replay on the replica (pg_wal_replay_pause) and waits until it has stopped. */
  pauseReplay: () => Promise<void>;
  /** Resumes WAL replay (pg_wal_replay_resume). */
  resumeReplay: () => Promise<void>;
  /** How far the replica is behind, read on the primary (pg_stat_replication). */
  lag: () => Promise<ReplicationLag>;
  /** Waits until the replica has replayed everything the primary had written when called. */
  waitForCatchUp: (timeoutMs?: number) => Promise<void>;
  /** Stops both servers and removes their files. */
  destroy: () => Promise<void>;
};

export async function startReplicatedPostgres(): Promise<ReplicatedPostgres> {
  // pg_basebackup may take longer than a start or a stop.
  const { dir, exec } = await postgresFolder('audit-sweeper-pg-replica-', 120_000);
  const server = (port: number): Server => ({
    port,
    url: (database) => `postgres://postgres@127.0.0.1:${port}/${database}`,
  });
  const options = (port: number) =>
    [
      `-p ${port}`,
      '-c listen_addresses=127.0.0.1',
      `-k ${dir}`,
      '-c fsync=off',
      '-c max_connections=50',
      '-c wal_level=replica',
      '-c max_wal_senders=5',
      '-c hot_standby=on',
    ].join(' ');
  const primaryData = join(dir, 'primary');
  const replicaData = join(dir, 'replica');
  const [primaryPort, replicaPort] = [await freePort(), await freePort()];
  const started: string[] = [];
  const start = async (data: string, port: number) => {
    await startCluster(exec, data, join(dir, `${port}.log`), options(port));
    started.push(data);
  };
  const stopAll = async () => {
    for (const data of started.reverse())
      await exec('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']).catch(() => {});
    started.length = 0;
  };

  const query = async (port: number, text: string, values: unknown[] = []) => {
    const client = new pg.Client({ connectionString: server(port).url('postgres') });
    client.on('error', () => {});
    await client.connect();
    try {
      return (await client.query(text, values)).rows;
    } finally {
      await client.end();
    }
  };

  try {
    await initCluster(exec, primaryData);
    // initdb's default pg_hba.conf already allows local replication; say it, for any version.
    appendFileSync(
      join(primaryData, 'pg_hba.conf'),
      '\nhost replication postgres 127.0.0.1/32 trust\n',
    );
    await start(primaryData, primaryPort);
    // -R writes standby.signal and primary_conninfo: the copy starts as a streaming replica.
    await exec('pg_basebackup', [
      '-D',
      replicaData,
      '-R',
      '-X',
      'stream',
      '-c',
      'fast',
      '-h',
      '127.0.0.1',
      '-p',
      String(primaryPort),
      '-U',
      'postgres',
    ]);
    await start(replicaData, replicaPort);
    await pollUntil(
      'the replica streaming from the primary',
      async () =>
        (await query(primaryPort, `SELECT 1 FROM pg_stat_replication WHERE state = 'streaming'`))
          .length === 1,
      { timeoutMs: 60_000, intervalMs: 200, ignoreErrors: true },
    );
  } catch (err) {
    await stopAll();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }

  const waitForCatchUp = async (timeoutMs = 60_000) => {
    const [{ lsn }] = (await query(primaryPort, 'SELECT pg_current_wal_lsn()::text AS lsn')) as [
      { lsn: string },
    ];
    await pollUntil(
      `the replica replaying up to ${lsn}`,
      async () =>
        (
          (await query(replicaPort, 'SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS done', [
            lsn,
          ])) as [{ done: boolean }]
        )[0].done,
      { timeoutMs, intervalMs: 100 },
    );
  };

  return {
    primary: server(primaryPort),
    replica: server(replicaPort),
    pauseReplay: async () => {
      await query(replicaPort, 'SELECT pg_wal_replay_pause()');
      await pollUntil(
        'WAL replay paused',
        async () =>
          (
            (await query(replicaPort, 'SELECT pg_get_wal_replay_pause_state() AS s')) as [
              { s: string },
            ]
          )[0].s === 'paused',
        { timeoutMs: 30_000, intervalMs: 100 },
      );
    },
    resumeReplay: async () => {
      await query(replicaPort, 'SELECT pg_wal_replay_resume()');
    },
    lag: async () => {
      const rows = (await query(
        primaryPort,
        `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::float8 AS bytes,
                (extract(epoch FROM replay_lag) * 1000)::float8 AS ms
           FROM pg_stat_replication`,
      )) as { bytes: number | null; ms: number | null }[];
      const row = rows[0];
      if (!row) throw new Error('the primary has no replica attached');
      return { bytesBehind: row.bytes ?? 0, replayLagMs: row.ms };
    },
    waitForCatchUp,
    destroy: async () => {
      await stopAll();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
