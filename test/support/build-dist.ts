import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/**
 * Vitest's global setup: the tests spawn the CLI from the built code (dist/, what users run),
 * so it is rebuilt first, incrementally (a few seconds when little changed), and a test never
 * runs stale code.
 */
export default function buildDist(): void {
  execFileSync('npm', ['run', '--silent', 'build'], {
    cwd: fileURLToPath(new URL('../../', import.meta.url)),
    stdio: 'inherit',
  });
}
