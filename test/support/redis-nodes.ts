import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { Redis } from 'ioredis';
import { portIsFree, until } from './private-servers.ts';

/**
 * Building blocks of the private highly available Redis setups (redis-cluster.ts,
 * redis-sentinel.ts): redis-server processes of a test's own on loopback ports, in temporary
 * folders. The shared Redis (6379) is never touched. No persistence; like production's, keys are
 * never evicted (noeviction).
 */

/** A node of ours: one redis-server process in its own folder. */
export type Node = {
  port: number;
  process: ChildProcess;
  /** Output so far, for failure messages. */
  log: () => string;
  alive: () => boolean;
  /** SIGKILL (whatever it held is gone); resolves once it has exited. */
  kill: () => Promise<void>;
};

export const COMMON_ARGS = ['--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];

/** Starts `redis-server <args>` in `dir` and waits until it answers PING on `port`. */
export async function startNode(port: number, dir: string, args: string[]): Promise<Node> {
  const proc = spawn('redis-server', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  const collect = (chunk: Buffer) => {
    log = (log + chunk.toString()).slice(-20_000);
  };
  proc.stdout?.on('data', collect);
  proc.stderr?.on('data', collect);
  const alive = () => proc.exitCode === null && proc.signalCode === null;
  const node: Node = {
    port,
    process: proc,
    log: () => log,
    alive,
    kill: async () => {
      if (!alive()) return;
      const exited = once(proc, 'exit');
      proc.kill('SIGKILL');
      await exited;
    },
  };
  try {
    await until(`redis-server on port ${port}`, 15_000, async () => {
      if (!alive()) throw new Error(`redis-server exited: ${log.slice(-1000)}`);
      return (await command(port, ['PING'])) === 'PONG';
    });
  } catch (err) {
    await node.kill();
    throw err;
  }
  return node;
}

/** Sends one command to 127.0.0.1:`port` on a short-lived connection that never retries. */
export async function command(port: number, args: string[]): Promise<unknown> {
  const client = new Redis({
    port,
    host: '127.0.0.1',
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: 2_000,
  });
  client.on('error', () => {});
  try {
    await client.connect();
    const [name, ...rest] = args as [string, ...string[]];
    return await client.call(name, ...rest);
  } finally {
    client.disconnect();
  }
}

/**
 * `count` distinct ports above 20000 free on 127.0.0.1, each with port+10000 free as well (a
 * cluster node's bus port). Picked at random so that parallel test files rarely collide.
 */
export async function freePortsWithBus(count: number): Promise<number[]> {
  const ports: number[] = [];
  for (let tries = 0; ports.length < count && tries < 10_000; tries++) {
    const port = 20_000 + Math.floor(Math.random() * 25_000);
    if (ports.includes(port) || ports.includes(port + 10_000) || ports.includes(port - 10_000))
      continue;
    if ((await portIsFree(port)) && (await portIsFree(port + 10_000))) ports.push(port);
  }
  if (ports.length < count) throw new Error('no free ports for a private Redis Cluster');
  return ports;
}
