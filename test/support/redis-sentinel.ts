import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { until } from './private-servers.ts';
import { COMMON_ARGS, command, freePortsWithBus, type Node, startNode } from './redis-nodes.ts';

export type PrivateSentinel = {
  primary: Node;
  replica: Node;
  sentinels: Node[];
  masterName: string;
  /** `redis+sentinel://` URL naming the three sentinels and the master. */
  url: string;
  /** The port the sentinels currently name as the primary. */
  primaryPort: () => Promise<number>;
  /** SIGKILLs whichever node is primary now; resolves with its port and the time of the kill. */
  killPrimary: () => Promise<{ port: number; killedAt: number }>;
  /** Waits until every sentinel names another node, which says it is a master. */
  waitForNewPrimary: (deadPort: number, timeoutMs?: number) => Promise<number>;
  destroy: () => Promise<void>;
};

/**
 * A primary, one replica (`--replicaof`) and three sentinels (quorum 2) monitoring them as
 * `masterName`; a dead primary is noticed after 2 s and its replica promoted shortly after.
 */
export async function startPrivateSentinel(masterName = 'audit'): Promise<PrivateSentinel> {
  const [primaryPort, replicaPort, ...sentinelPorts] = await freePortsWithBus(5);
  if (primaryPort === undefined || replicaPort === undefined) throw new Error('no ports');
  const root = mkdtempSync(join(tmpdir(), 'audit-sweeper-sentinel-'));
  const all: Node[] = [];
  const destroy = async () => {
    await Promise.all(all.map((n) => n.kill()));
    rmSync(root, { recursive: true, force: true });
  };
  const dataNode = async (port: number, extra: string[]) => {
    const dir = join(root, String(port));
    mkdirSync(dir);
    const node = await startNode(port, dir, [
      '--port',
      String(port),
      ...COMMON_ARGS,
      '--dir',
      dir,
      '--maxmemory-policy',
      'noeviction',
      ...extra,
    ]);
    all.push(node);
    return node;
  };
  try {
    const primary = await dataNode(primaryPort, []);
    const replica = await dataNode(replicaPort, ['--replicaof', '127.0.0.1', String(primaryPort)]);
    await until('the replica to sync', 30_000, async () =>
      String(await command(replicaPort, ['INFO', 'replication'])).includes('master_link_status:up'),
    );
    const sentinels: Node[] = [];
    for (const port of sentinelPorts) {
      const dir = join(root, `sentinel-${port}`);
      mkdirSync(dir);
      const conf = join(dir, 'sentinel.conf');
      // A sentinel rewrites its own config file, so each gets a writable one of its own.
      writeFileSync(
        conf,
        [
          `port ${port}`,
          'bind 127.0.0.1',
          `dir ${dir}`,
          `sentinel monitor ${masterName} 127.0.0.1 ${primaryPort} 2`,
          `sentinel down-after-milliseconds ${masterName} 2000`,
          `sentinel failover-timeout ${masterName} 10000`,
          `sentinel parallel-syncs ${masterName} 1`,
          '',
        ].join('\n'),
      );
      const node = await startNode(port, dir, [conf, '--sentinel']);
      all.push(node);
      sentinels.push(node);
    }
    const namedPrimaries = async () =>
      Promise.all(
        sentinels
          .filter((s) => s.alive())
          .map(async (s) => {
            const addr = (await command(s.port, [
              'SENTINEL',
              'GET-MASTER-ADDR-BY-NAME',
              masterName,
            ])) as [string, string] | null;
            return addr ? Number(addr[1]) : 0;
          }),
      );
    // Sentinels find each other and the replica through the primary's hello channel.
    await until('the sentinels to see each other and the replica', 30_000, async () => {
      for (const s of sentinels) {
        const master = (await command(s.port, ['SENTINEL', 'MASTER', masterName])) as string[];
        const field = (name: string) => master[master.indexOf(name) + 1];
        if (field('num-other-sentinels') !== '2' || field('num-slaves') !== '1') return false;
      }
      return true;
    });
    const primaryPortNow = async () => {
      const named = await namedPrimaries();
      const port = named[0];
      if (!port || named.some((p) => p !== port)) throw new Error(`sentinels disagree: ${named}`);
      return port;
    };
    return {
      primary,
      replica,
      sentinels,
      masterName,
      url: `redis+sentinel://${sentinelPorts.map((p) => `127.0.0.1:${p}`).join(',')}/${masterName}`,
      primaryPort: primaryPortNow,
      killPrimary: async () => {
        const port = await primaryPortNow();
        const node = all.find((n) => n.port === port);
        if (!node) throw new Error(`primary ${port} is not one of ours`);
        const killedAt = Date.now();
        await node.kill();
        return { port, killedAt };
      },
      waitForNewPrimary: async (deadPort, timeoutMs = 60_000) => {
        let promoted = 0;
        await until(`a new primary instead of ${deadPort}`, timeoutMs, async () => {
          const port = await primaryPortNow();
          if (port === deadPort) return false;
          const role = (await command(port, ['ROLE'])) as unknown[];
          if (role[0] !== 'master') return false;
          promoted = port;
          return true;
        });
        return promoted;
      },
      destroy,
    };
  } catch (err) {
    const logs = all.map((n) => `--- node ${n.port}:\n${n.log().slice(-1500)}`).join('\n');
    await destroy();
    throw new Error(`${(err as Error).message}\n${logs}`, { cause: err });
  }
}
