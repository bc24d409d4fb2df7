import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import type { Logger } from '../src/log.ts';

export type Credentials = { user: string; password: string };

const REALM = 'audit-sweeper';

/**
 * HTTP Basic auth, so that browsers, scripts and Prometheus can all use the same credentials.
 * Both the user and the password are compared in constant time (on their SHA-256 digests, which
 * have equal lengths whatever was sent), and both comparisons always run, so the answer's timing
 * tells nothing about which part was wrong or how much of it matched.
 */
export function basicAuth(expected: Credentials) {
  const user = digest(expected.user);
  const password = digest(expected.password);
  return (req: Request, res: Response, next: NextFunction) => {
    const given = parseBasic(req.headers.authorization);
    const userOk = timingSafeEqual(digest(given?.user ?? ''), user);
    const passwordOk = timingSafeEqual(digest(given?.password ?? ''), password);
    if (given && userOk && passwordOk) {
      next();
      return;
    }
    res
      .status(401)
      .set('WWW-Authenticate', `Basic realm="${REALM}", charset="UTF-8"`)
      .json({ error: { message: 'authentication required' } });
  };
}

function parseBasic(header: string | undefined): Credentials | undefined {
  const match = /^Basic ([A-Za-z0-9+/=]+)$/i.exec(header?.trim() ?? '');
  if (!match?.[1]) return undefined;
  const decoded = Buffer.from(match[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

const digest = (value: string) => createHash('sha256').update(value, 'utf8').digest();

/**
 * The configured password, or a random one printed once: the dashboard never runs open just
 * because nobody set DASHBOARD_PASSWORD.
 */
export function resolveCredentials(
  config: { DASHBOARD_USER: string; DASHBOARD_PASSWORD: string | undefined },
  logger: Logger,
): Credentials {
  const user = config.DASHBOARD_USER;
  if (config.DASHBOARD_PASSWORD !== undefined) return { user, password: config.DASHBOARD_PASSWORD };
  const password = randomBytes(18).toString('base64url');
  logger.warn(
    { user, password },
    'DASHBOARD_PASSWORD is not set: generated a password for this process (set DASHBOARD_PASSWORD to keep one across restarts)',
  );
  return { user, password };
}
