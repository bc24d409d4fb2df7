import { once } from 'node:events';
import { createServer, type Server, Socket } from 'node:net';

/**
 * A TCP proxy listener in front of one server (Redis or PostgreSQL), one per client process, so a
 * fault can target one worker's traffic: added latency per chunk, a reset of every connection
 * (RST), and a blackhole that holds every byte in both directions until healed, as a network
 * partition does while TCP keeps retransmitting. Healing either delivers what was held (the
 * partition ended in time) or resets the connections (TCP gave up).
 */
export type FaultyProxy = {
  name: string;
  port: number;
  latencyMs: number;
  blackholed: boolean;
  /** Connections opened so far. */
  opened: number;
  /** Upstream local ports and when they were in use: who a database session belonged to. */
  upstreamPorts: { port: number; from: number; to: number | null }[];
  reset: () => number;
  heal: (how: 'deliver' | 'reset') => void;
  close: () => Promise<void>;
};

type Pipe = { flush: () => void };

export async function startProxy(name: string, targetPort: number): Promise<FaultyProxy> {
  const conns = new Set<{ client: Socket; upstream: Socket; pipes: Pipe[] }>();
  const proxy: FaultyProxy = {
    name,
    port: 0,
    latencyMs: 0,
    blackholed: false,
    opened: 0,
    upstreamPorts: [],
    reset: () => {
      const n = conns.size;
      for (const c of conns) {
        c.client.resetAndDestroy();
        c.upstream.resetAndDestroy();
      }
      conns.clear();
      return n;
    },
    heal: (how) => {
      proxy.blackholed = false;
      if (how === 'reset') proxy.reset();
      else for (const c of conns) for (const p of c.pipes) p.flush();
    },
    close: async () => {
      proxy.reset();
      await new Promise((resolve) => server.close(resolve));
    },
  };

  const server: Server = createServer((client) => {
    proxy.opened += 1;
    const upstream = new Socket();
    const conn = { client, upstream, pipes: [] as Pipe[] };
    conns.add(conn);
    const record = { port: 0, from: Date.now(), to: null as number | null };
    const drop = () => {
      // Also after a reset (which clears conns first): a session left open-ended would take
      // the writes of a later session on the same port (ports are reused) for its own.
      record.to ??= Date.now();
      if (!conns.delete(conn)) return;
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    upstream.connect(targetPort, '127.0.0.1', () => {
      record.port = upstream.localPort ?? 0;
      proxy.upstreamPorts.push(record);
    });
    conn.pipes.push(pipe(client, upstream, proxy), pipe(upstream, client, proxy));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('proxy has no port');
  proxy.port = address.port;
  return proxy;
}

/** Forwards `from` to `to`, each chunk no earlier than latencyMs after it came, never while blackholed. */
function pipe(from: Socket, to: Socket, proxy: FaultyProxy): Pipe {
  const queue: { at: number; data: Buffer }[] = [];
  let timer: NodeJS.Timeout | undefined;
  let ended = false;
  const flush = () => {
    if (proxy.blackholed || to.destroyed) return;
    const now = Date.now();
    while (queue[0] && queue[0].at <= now) {
      const item = queue.shift();
      if (item) to.write(item.data);
    }
    if (queue[0] && !timer) {
      timer = setTimeout(() => {
        timer = undefined;
        flush();
      }, queue[0].at - now);
    }
    if (!queue.length && ended) to.end();
  };
  from.on('data', (data: Buffer) => {
    queue.push({ at: Date.now() + proxy.latencyMs, data });
    flush();
  });
  from.on('end', () => {
    ended = true;
    flush();
  });
  return { flush };
}
