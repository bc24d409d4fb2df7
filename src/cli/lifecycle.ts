import { once } from 'node:events';
import type { Server } from 'node:http';
import type { Express } from 'express';
import type { Logger } from '../log.ts';

/** Starts an HTTP server and resolves once it listens. */
export async function listen(app: Express, port: number): Promise<Server> {
  const server = app.listen(port);
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

export async function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}
