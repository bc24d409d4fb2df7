import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import type { Logger } from '../src/log.ts';
import { sendError } from './errors.ts';
import type { LoginThrottle } from './login-throttle.ts';

export type Credentials = { user: string; password: string };

/** The operator may do everything; the reader may only read (READER_MAY). */
export type Role = 'operator' | 'reader';
export type Logins = { operator: Credentials; reader?: Credentials };

const REALM = 'audit-sweeper';

/**
 * HTTP Basic auth, so that browsers, scripts and Prometheus can all use the same credentials.
 * Users and passwords are compared in constant time (on their SHA-256 digests, which have equal
 * lengths whatever was sent), against both logins, every time, so the answer's timing tells
 * nothing about which part was wrong, how much of it matched, or whether a reader exists.
 * The role found is left in `res.locals.role` for readerLimits. Wrong credentials count toward
 * the login back-off (login-throttle.ts); a client in back-off gets 429 without being checked.
 */
export function basicAuth(logins: Logins, throttle: LoginThrottle) {
  const expected = (['operator', 'reader'] as const).flatMap((role) => {
    const c = logins[role];
    return c ? [{ role, user: digest(c.user), password: digest(c.password) }] : [];
  });
  return (req: Request, res: Response, next: NextFunction) => {
    const given = parseBasic(req.headers.authorization);
    if (!given) {
      challenge(res);
      return;
    }
    const address = req.ip ?? req.socket.remoteAddress ?? 'unknown';
    const wait = throttle.waitMs(given.user, address);
    if (wait > 0) {
      const seconds = Math.ceil(wait / 1000);
      res.set('Retry-After', String(seconds));
      sendError(res, 429, `too many failed logins: retry in ${seconds} s`);
      return;
    }
    const user = digest(given.user);
    const password = digest(given.password);
    let role: Role | undefined;
    for (const e of expected) {
      const userOk = timingSafeEqual(user, e.user);
      const passwordOk = timingSafeEqual(password, e.password);
      if (userOk && passwordOk) role ??= e.role;
    }
    if (!role) {
      throttle.failed(given.user, address);
      challenge(res);
      return;
    }
    throttle.succeeded(given.user, address);
    res.locals.role = role;
    next();
  };
}

function challenge(res: Response) {
  res
    .status(401)
    .set('WWW-Authenticate', `Basic realm="${REALM}", charset="UTF-8"`)
    .json({ error: { message: 'authentication required' } });
}

/**
 * What the reader may do: read the audit log (auditors, SIEM exports), the overview and its
 * JSON (the state of the sweeper, which tells an auditor whether the log is complete; it holds
 * no credential and no audit data beyond what the log shows), and /metrics (a scraper needs no
 * more). Everything else, every action, Bull Board, and any route added later, is the
 * operator's: this is a list of what is allowed, not of what is refused.
 */
const READER_MAY = new Set([
  '/',
  '/api/overview',
  '/assets/overview.js',
  '/assets/overview.css',
  '/v1/audit-log',
  '/metrics',
]);

/** 403 for the reader on anything but READER_MAY (after basicAuth). */
export function readerLimits(req: Request, res: Response, next: NextFunction) {
  if (roleOf(res) === 'operator') {
    next();
    return;
  }
  const reading = req.method === 'GET' || req.method === 'HEAD';
  if (reading && READER_MAY.has(req.path)) {
    next();
    return;
  }
  sendError(
    res,
    403,
    'the reader login may only read the overview, the audit log and the metrics: this needs the operator login (DASHBOARD_USER)',
  );
}

export const roleOf = (res: Response): Role =>
  res.locals.role === 'operator' ? 'operator' : 'reader';

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
 * The operator's login with the configured password, or a random one printed once (the
 * dashboard never runs open just because nobody set DASHBOARD_PASSWORD); the reader's only when
 * DASHBOARD_READER_PASSWORD is set.
 */
export function resolveCredentials(
  config: {
    DASHBOARD_USER: string;
    DASHBOARD_PASSWORD: string | undefined;
    DASHBOARD_READER_USER: string;
    DASHBOARD_READER_PASSWORD: string | undefined;
  },
  logger: Logger,
): Logins {
  const user = config.DASHBOARD_USER;
  const reader =
    config.DASHBOARD_READER_PASSWORD === undefined
      ? undefined
      : { user: config.DASHBOARD_READER_USER, password: config.DASHBOARD_READER_PASSWORD };
  if (config.DASHBOARD_PASSWORD !== undefined)
    return { operator: { user, password: config.DASHBOARD_PASSWORD }, reader };
  const password = randomBytes(18).toString('base64url');
  logger.warn(
    { user, password },
    'DASHBOARD_PASSWORD is not set: generated a password for this process (set DASHBOARD_PASSWORD to keep one across restarts)',
  );
  return { operator: { user, password }, reader };
}
