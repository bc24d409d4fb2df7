import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export type CliProcess = {
  child: ChildProcess;
  /** Everything written so far to stdout and stderr. */
  output: () => string;
  /** Resolves with the exit code (or the signal's name). */
  exited: Promise<number | string>;
  /** Resolves once a line of output matches. */
  waitForOutput: (pattern: RegExp, timeoutMs?: number) => Promise<string>;
};

/**
 * Starts `audit-sweeper <args>` as a real child process, from the built code as users run it
 * (bin/audit-sweeper.js; vitest's global setup rebuilds dist/ first, so it is always the code
 * under test), with the given environment added.
 */
export function startCli(args: string[], env: Record<string, string>): CliProcess {
  const child = spawn(process.execPath, ['bin/audit-sweeper.js', ...args], {
    cwd: ROOT,
    env: { ...process.env, LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const listeners = new Set<() => void>();
  const onData = (chunk: Buffer) => {
    output += chunk.toString();
    for (const l of listeners) l();
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  const exited = once(child, 'exit').then(([code, signal]) => (code ?? signal) as number | string);
  return {
    child,
    output: () => output,
    exited,
    waitForOutput: (pattern, timeoutMs = 60_000) =>
      new Promise((resolve, reject) => {
        const check = () => {
          const line = output.split('\n').find((l) => pattern.test(l));
          if (line !== undefined) {
            listeners.delete(check);
            clearTimeout(timer);
            resolve(line);
          }
        };
        const timer = setTimeout(() => {
          listeners.delete(check);
          reject(
            new Error(
              `no output matching ${pattern} within ${timeoutMs} ms; output:\n${output.slice(-4000)}`,
            ),
          );
        }, timeoutMs);
        listeners.add(check);
        check();
      }),
  };
}

/** Runs `audit-sweeper <args>` to the end; returns its exit code and output. */
export async function runCli(args: string[], env: Record<string, string>) {
  const p = startCli(args, env);
  const code = await p.exited;
  return { code, output: p.output() };
}
