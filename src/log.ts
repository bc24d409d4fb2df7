import { pino } from 'pino';

export type Logger = pino.Logger;

/** JSON lines on stdout, one logger per process; `component` tells the pieces apart. */
export function createLogger(level: string, component: string): Logger {
  return pino({ level, base: { component, pid: process.pid } });
}

/** For library callers and tests that do not care about logs. */
export const silentLogger: Logger = pino({ level: 'silent' });
