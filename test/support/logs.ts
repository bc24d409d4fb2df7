import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { Logger } from '../../src/log.ts';

/** A pino logger whose output lands in memory: `lines` as written, `records()` parsed. */
export function captureLogger(level = 'info'): {
  logger: Logger;
  lines: string[];
  records: () => Record<string, unknown>[];
} {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n')) if (line.trim()) lines.push(line);
      done();
    },
  });
  return {
    logger: pino({ level }, stream),
    lines,
    records: () => lines.map((line) => JSON.parse(line)),
  };
}
