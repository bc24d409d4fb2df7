import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { isStoreOutage } from '../src/last-resort.ts';

/**
 * The process-wide last resort: a rejection nobody awaited keeps a worker alive when Redis or
 * PostgreSQL is away (logged once, scrubbed), and ends it when it is anything else.
 */

describe('isStoreOutage', () => {
  const replyError = (message: string) => Object.assign(new Error(message), { name: 'ReplyError' });
  it.each([
    ['a Redis Cluster that is down', replyError('CLUSTERDOWN The cluster is down')],
    [
      "ioredis's redirection limit, caused by CLUSTERDOWN",
      Object.assign(
        new Error('Too many Cluster redirections. Last error: ReplyError: CLUSTERDOWN'),
        {
          lastNodeError: replyError('CLUSTERDOWN The cluster is down'),
        },
      ),
    ],
    [
      'a refused connection',
      Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }),
    ],
    [
      'PostgreSQL shutting down',
      Object.assign(new Error('terminating connection'), { code: '57P01' }),
    ],
    ['a closed ioredis connection', new Error('Connection is closed.')],
    [
      'an outage wrapped as a cause',
      new Error('sweep failed', { cause: new Error('Connection terminated unexpectedly') }),
    ],
  ])('%s is an outage', (_what, err) => {
    expect(isStoreOutage(err)).toBe(true);
  });

  it.each([
    ['a TypeError', new TypeError("Cannot read properties of undefined (reading 'x')")],
    ['a SQL error', Object.assign(new Error('syntax error at or near "SELEC"'), { code: '42601' })],
    ['a string', 'boom'],
    ['nothing', undefined],
  ])('%s is not', (_what, err) => {
    expect(isStoreOutage(err)).toBe(false);
  });
});

/** A real process with the last resort installed, that rejects `error` unawaited. */
async function rejectInChild(error: string) {
  const lastResort = fileURLToPath(new URL('../src/last-resort.ts', import.meta.url));
  const log = fileURLToPath(new URL('../src/log.ts', import.meta.url));
  const script = `
    const { installLastResort } = await import(${JSON.stringify(lastResort)});
    const { createLogger } = await import(${JSON.stringify(log)});
    const { registerSecret } = await import(${JSON.stringify(fileURLToPath(new URL('../src/secrets.ts', import.meta.url)))});
    registerSecret('s3cretpw99');
    installLastResort(createLogger('info', 'process'));
    for (let i = 0; i < 3; i++) Promise.reject(${error});
    setTimeout(() => { console.log('still alive'); process.exit(0); }, 500);
  `;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (c) => (output += c));
  child.stderr.on('data', (c) => (output += c));
  const [code] = await once(child, 'exit');
  return { code: code as number, output };
}

describe('the last resort in a real process', () => {
  it('an unawaited CLUSTERDOWN keeps the process alive, logged once and scrubbed', async () => {
    const { code, output } = await rejectInChild(
      `Object.assign(new Error('CLUSTERDOWN The cluster is down (auth s3cretpw99)'), { name: 'ReplyError' })`,
    );
    expect(code, output).toBe(0);
    expect(output).toContain('still alive');
    const warnings = output.split('\n').filter((l) => l.includes('unhandled rejection'));
    expect(warnings).toHaveLength(1);
    expect(output).not.toContain('s3cretpw99');
  });

  it('an unawaited bug ends the process with exit 1, saying why', async () => {
    const { code, output } = await rejectInChild(`new TypeError('x is not a function')`);
    expect(code, output).toBe(1);
    expect(output).not.toContain('still alive');
    expect(output).toMatch(/"level":60.*x is not a function/);
  });
});
