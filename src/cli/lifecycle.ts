import { once } from 'node:events';
import type { Server, ServerResponse } from 'node:http';
import type { Express } from 'express';
import type { Logger } from '../log.ts';

/** How long requests in flight at shutdown get to finish before their connections are cut. */
export const DRAIN_TIMEOUT_MS = 10_000;

const draining = new WeakSet<Server>();
const inFlight = new WeakMap<Server, Set<ServerResponse>>();

/** Starts an HTTP server and resolves once it listens; closeServer drains it. */
export async function listen(app: Express, port: number): Promise<Server> {
  const server = app.listen(port);
  const answering = new Set<ServerResponse>();
  inFlight.set(server, answering);
  server.on('request', (_req, res: ServerResponse) => {
    answering.add(res);
    if (draining.has(server)) res.shouldKeepAlive = false;
    res.on('close', () => {
      answering.delete(res);
      // Its keep-alive connection is idle now: close it, so the server can finish closing.
      if (draining.has(server)) setImmediate(() => server.closeIdleConnections());
    });
  });
  await once(server, 'listening');
  return server;
}

/**
 * Keeps a long-running command alive until SIGTERM or SIGINT, then closes it and resolves with
 * exit code 0 (1 if closing failed). A second signal exits at once, and so does a close that
 * takes longer than `closeTimeoutMs` (a hung query): whatever it left is retried elsewhere.
 */
export async function runUntilSignal(
  logger: Logger,
  close: () => Promise<void>,
  closeTimeoutMs = 60_000,
  signalled: Promise<string> = waitForSignal(),
): Promise<number> {
  const signal = await signalled;
  logger.info({ signal }, 'shutting down');
  const again = () => {
    logger.warn('second signal: exiting now');
    process.exit(1);
  };
  process.once('SIGTERM', again).once('SIGINT', again);
  const deadline = setTimeout(() => {
    logger.error({ closeTimeoutMs }, 'shutdown did not finish in time: exiting anyway');
    process.exit(1);
  }, closeTimeoutMs);
  deadline.unref();
  try {
    await close();
    logger.info('shut down cleanly');
    return 0;
  } catch (err) {
    logger.error({ err }, 'shutdown failed');
    return 1;
  } finally {
    clearTimeout(deadline);
  }
}

/**
 * The first SIGTERM or SIGINT. Listening replaces Node's default (exit at once with 128 + n), so
 * a command that calls this first, before any slow start-up, can shut down cleanly at any time.
 */
export function waitForSignal(): Promise<string> {
  return Promise.race(
    (['SIGTERM', 'SIGINT'] as const).map((name) => once(process, name).then(() => name)),
  );
}

/**
 * A graceful close: stop accepting connections, close the idle keep-alive ones, let the requests
 * in flight finish (each answer says `Connection: close` if it can still say so, and its
 * connection is closed once it is sent), and after `drainMs` cut whatever is left.
 */
export async function closeServer(server: Server, drainMs = DRAIN_TIMEOUT_MS): Promise<void> {
  draining.add(server);
  for (const res of inFlight.get(server) ?? [])
    if (!res.headersSent) res.setHeader('Connection', 'close');
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  const cut = setTimeout(() => server.closeAllConnections(), drainMs);
  try {
    await closed;
  } finally {
    clearTimeout(cut);
  }
}
