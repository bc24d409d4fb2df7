import { pino } from 'pino';
import { scrubSecrets } from './secrets.ts';

export type Logger = pino.Logger;

/** Fields that may hold a credential: never logged, whatever the message. */
const REDACT = ['DATABASE_URL', 'REDIS_URL', 'DASHBOARD_PASSWORD', 'connectionString'].flatMap(
  (field) => [field, `*.${field}`],
);

/**
 * JSON lines on stdout, one logger per process; `component` tells the pieces apart. Every line
 * passes through scrubSecrets on its way out, so a password inside a URL or an error message
 * (from a driver, say) is masked too, not only the fields named above.
 */
export function createLogger(level: string, component: string): Logger {
  const stdout = pino.destination({ dest: 1, sync: true });
  return pino(
    {
      level,
      base: { component, pid: process.pid },
      redact: { paths: [...REDACT, '*.password'], censor: '[redacted]' },
    },
    { write: (line: string) => stdout.write(scrubSecrets(line)) },
  );
}

/** For library callers and tests that do not care about logs. */
export const silentLogger: Logger = pino({ level: 'silent' });
