import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { until } from './private-servers.ts';
import { COMMON_ARGS, command, freePortsWithBus, type Node, startNode } from './redis-nodes.ts';

const run = promisify(execFile);

export type ClusterNodeInfo = {
  id: string;
  port: number;
  role: 'master' | 'replica';
  failed: boolean;
  /** [first, last] slot ranges (masters only). */
  slots: [number, number][];
};

export type PrivateRedisCluster = {
  nodes: Node[];
  /** `redis+cluster://` URL with the three first nodes as seeds. */
  url: string;
  /** A plain `redis://` URL at one live node (what a user might set by mistake). */
  nodeUrl: () => string;
  /** The cluster's view from any live node. */
  topology: () => Promise<ClusterNodeInfo[]>;
  /** The port of the live master serving `slot`. */
  masterOf: (slot: number) => Promise<number>;
  /**
   * SIGKILLs the master serving `slot`; resolves with the killed port and the time of the kill
   * (Date.now()). `waitForFailover` then waits for the replica's promotion.
   */
  killMasterOf: (slot: number) => Promise<{ port: number; killedAt: number }>;
  /** Waits until a live node other than `deadPort` serves `slot` and the cluster is ok. */
  waitForFailover: (slot: number, deadPort: number, timeoutMs?: number) => Promise<number>;
  /** Starts a killed node again on its port and folder (its nodes.conf: same id and slots). */
  restart: (port: number) => Promise<void>;
  /** Whether every live node says cluster_state:ok. */
  isOk: () => Promise<boolean>;
  destroy: () => Promise<void>;
};

/** The slot of `{audit}`-style keys is CLUSTER KEYSLOT's: `cluster keyslot '{audit}'` = 1463. */
export async function keySlot(port: number, key: string): Promise<number> {
  return Number(await command(port, ['CLUSTER', 'KEYSLOT', key]));
}

function parseClusterNodes(text: string): ClusterNodeInfo[] {
  return text
    .trim()
    .split('\n')
    .map((line) => {
      const [id, address, flags, , , , , , ...slotFields] = line.split(' ') as string[];
      const port = Number((address ?? '').split('@')[0]?.split(':')[1]);
      const flagList = (flags ?? '').split(',');
      const slots = slotFields
        .filter((s) => !s.startsWith('['))
        .map((s) => {
          const [first, last] = s.split('-').map(Number);
          return [first, last ?? first] as [number, number];
        });
      return {
        id: id ?? '',
        port,
        role: flagList.includes('master') ? 'master' : 'replica',
        failed: flagList.includes('fail') || flagList.includes('fail?'),
        slots,
      };
    });
}

/**
 * A 3-master Redis Cluster on loopback, made with `redis-cli --cluster create`, with a replica
 * per master (default) or none (`replicas: 0`: a killed master's slots stay down until it is
 * restarted, the cluster CLUSTERDOWN meanwhile). cluster-node-timeout is 2 s, so a killed
 * master's replica is promoted a few seconds later.
 */
export async function startPrivateRedisCluster(
  options: { replicas?: 0 | 1 } = {},
): Promise<PrivateRedisCluster> {
  const replicas = options.replicas ?? 1;
  const ports = await freePortsWithBus(3 * (1 + replicas));
  const root = mkdtempSync(join(tmpdir(), 'audit-sweeper-cluster-'));
  const nodes: Node[] = [];
  const destroy = async () => {
    await Promise.all(nodes.map((n) => n.kill()));
    rmSync(root, { recursive: true, force: true });
  };
  try {
    for (const port of ports) {
      mkdirSync(join(root, String(port)));
      nodes.push(await startClusterNode(port));
    }
    async function startClusterNode(port: number) {
      const dir = join(root, String(port));
      return startNode(port, dir, [
        '--port',
        String(port),
        ...COMMON_ARGS,
        '--dir',
        dir,
        '--cluster-enabled',
        'yes',
        '--cluster-config-file',
        'nodes.conf',
        '--cluster-node-timeout',
        '2000',
        // Promote a replica however long it has been cut off from its master.
        '--cluster-replica-validity-factor',
        '0',
        '--maxmemory-policy',
        'noeviction',
      ]);
    }
    await run(
      'redis-cli',
      [
        '--cluster',
        'create',
        ...ports.map((p) => `127.0.0.1:${p}`),
        '--cluster-replicas',
        String(replicas),
        '--cluster-yes',
      ],
      { timeout: 60_000 },
    );
    const live = () => nodes.filter((n) => n.alive());
    const topology = async () => {
      let lastErr: unknown;
      for (const n of live()) {
        try {
          return parseClusterNodes(String(await command(n.port, ['CLUSTER', 'NODES'])));
        } catch (err) {
          lastErr = err;
        }
      }
      throw new Error(`no live cluster node answers: ${lastErr}`);
    };
    const clusterOk = async (): Promise<boolean> => {
      for (const n of live()) {
        const info = String(await command(n.port, ['CLUSTER', 'INFO']));
        if (!info.includes('cluster_state:ok')) return false;
      }
      return true;
    };
    // Every node knows all six, the cluster is ok, and every replica is in sync with its master
    // (a replica that never synced could not take over).
    await until('the private Redis Cluster to be ok', 60_000, async () => {
      if (!(await clusterOk())) return false;
      const view = await topology();
      if (view.length !== ports.length || view.filter((n) => n.role === 'master').length !== 3)
        return false;
      for (const n of replicas ? view.filter((v) => v.role === 'master') : []) {
        const info = String(await command(n.port, ['INFO', 'replication']));
        if (!/slave0:.*state=online/.test(info)) return false;
      }
      return true;
    });

    const masterOf = async (slot: number) => {
      const owner = (await topology()).find(
        (n) => n.role === 'master' && !n.failed && n.slots.some(([a, b]) => slot >= a && slot <= b),
      );
      if (!owner) throw new Error(`no master serves slot ${slot}`);
      return owner.port;
    };
    const waitForFailover = async (slot: number, deadPort: number, timeoutMs = 60_000) => {
      let promoted = 0;
      await until(`a replica to take over slot ${slot} from ${deadPort}`, timeoutMs, async () => {
        const port = await masterOf(slot);
        if (port === deadPort) return false;
        const role = (await command(port, ['ROLE'])) as unknown[];
        if (role[0] !== 'master' || !(await clusterOk())) return false;
        promoted = port;
        return true;
      });
      return promoted;
    };
    const first = ports.slice(0, 3).map((p) => `127.0.0.1:${p}`);
    return {
      nodes,
      url: `redis+cluster://${first.join(',')}`,
      nodeUrl: () => `redis://127.0.0.1:${live()[0]?.port}`,
      topology,
      masterOf,
      killMasterOf: async (slot) => {
        const port = await masterOf(slot);
        const node = nodes.find((n) => n.port === port);
        if (!node) throw new Error(`slot ${slot} is served by ${port}, not one of ours`);
        const killedAt = Date.now();
        await node.kill();
        return { port, killedAt };
      },
      waitForFailover,
      restart: async (port) => {
        const i = nodes.findIndex((n) => n.port === port);
        if (i === -1 || nodes[i]?.alive())
          throw new Error(`node ${port} is not a dead node of ours`);
        nodes[i] = await startClusterNode(port);
      },
      isOk: clusterOk,
      destroy,
    };
  } catch (err) {
    const logs = nodes.map((n) => `--- node ${n.port}:\n${n.log().slice(-1500)}`).join('\n');
    await destroy();
    throw new Error(`${(err as Error).message}\n${logs}`, { cause: err });
  }
}
