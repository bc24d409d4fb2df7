import { randomUUID } from 'node:crypto';
import type { Actor, Auth, Completion, NewEntry } from '../store/types.ts';

/**
 * What one simulated operation looks like: who calls what, from where, how long it runs and how
 * it ends. Everything is drawn from one seeded generator, so a seed replays the same mix.
 */

export type OperationPlan = {
  entry: NewEntry;
  crash: boolean;
  /** How long the operation runs between init and complete. */
  delayMs: number;
  result: Completion;
};

type Random = () => number;

/** mulberry32: small, fast, good enough for traffic, and reproducible from a 32-bit seed. */
export function createRandom(seed: number): Random {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const pick = <T>(random: Random, items: readonly T[]): T =>
  items[Math.floor(random() * items.length)] as T;

function weighted<T>(random: Random, items: readonly (readonly [T, number])[]): T {
  const sum = items.reduce((s, [, w]) => s + w, 0);
  let r = random() * sum;
  for (const [item, w] of items) {
    r -= w;
    if (r < 0) return item;
  }
  return (items.at(-1) as readonly [T, number])[0];
}

const int = (random: Random, min: number, max: number) =>
  min + Math.floor(random() * (max - min + 1));

/** A version 4 UUID drawn from the seeded generator, so a seed gives the same population. */
function uuid(random: Random): string {
  const hex = Array.from({ length: 32 }, () => Math.floor(random() * 16).toString(16));
  hex[12] = '4';
  hex[16] = ((Number.parseInt(hex[16] as string, 16) & 0x3) | 0x8).toString(16);
  const s = hex.join('');
  return `${s.slice(0, 8)}-${s.slice(8, 12)}-${s.slice(12, 16)}-${s.slice(16, 20)}-${s.slice(20)}`;
}

const BROWSERS = [
  'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36',
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.2592.87',
  'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0',
  'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15',
];
const API_CLIENTS = [
  'oxide-cli/0.12.0+20250604.0',
  'oxide-rust-sdk/0.12.0',
  'terraform-provider-oxide/0.12.0',
  'python-requests/2.32.3',
  'Go-http-client/2.0',
  'curl/8.5.0',
];
const SCIM_CLIENTS = ['Okta SCIM Client 1.0.0', 'Microsoft.Identity.Provisioning'];

type User = {
  actor: Actor;
  credentials: Auth[];
  ips: string[];
  agents: (string | null)[];
};
type Silo = { id: string; name: string; users: User[]; scim: User; projects: string[] };
export type Population = { silos: Silo[]; builtins: User[]; anonymousIps: string[] };

const PROJECTS = [
  'web-prod',
  'web-staging',
  'data-pipeline',
  'ci-runners',
  'ml-training',
  'billing',
  'observability',
  'sandbox',
];
const SILOS = ['engineering', 'finance', 'research', 'customer-a'];

function ipv4(random: Random, prefix: '203.0.113' | '198.51.100' | '192.0.2' | '10'): string {
  return prefix === '10'
    ? `10.${int(random, 0, 255)}.${int(random, 0, 255)}.${int(random, 1, 254)}`
    : `${prefix}.${int(random, 1, 254)}`;
}
const hex4 = (random: Random) => int(random, 0, 0xffff).toString(16);
/** Documentation (2001:db8::/32) and, for the control plane's own services, its fd00:1122:3344::/48 underlay. */
const ipv6 = (random: Random, prefix: '2001:db8' | 'fd00:1122:3344') =>
  `${prefix}:${hex4(random)}::${hex4(random)}:${hex4(random)}`;

function clientIps(random: Random): string[] {
  return Array.from({ length: int(random, 1, 3) }, () =>
    weighted<() => string>(random, [
      [() => ipv4(random, '203.0.113'), 4],
      [() => ipv4(random, '198.51.100'), 2],
      [() => ipv4(random, '192.0.2'), 1],
      [() => ipv6(random, '2001:db8'), 3],
    ])(),
  );
}

export function createPopulation(random: Random): Population {
  const silos = SILOS.map((name): Silo => {
    const siloId = uuid(random);
    const users = Array.from({ length: int(random, 5, 25) }, (): User => {
      const browser = pick(random, BROWSERS);
      const tools = [pick(random, API_CLIENTS), pick(random, API_CLIENTS)];
      return {
        actor: { kind: 'silo_user', id: uuid(random), siloId },
        credentials: [
          { method: 'session_cookie', credentialId: uuid(random) },
          ...Array.from({ length: int(random, 0, 2) }, () => ({
            method: 'access_token' as const,
            credentialId: uuid(random),
          })),
        ],
        ips: clientIps(random),
        agents: [browser, ...tools],
      };
    });
    return {
      id: siloId,
      name,
      users,
      scim: {
        actor: { kind: 'scim', siloId },
        credentials: [{ method: 'scim_token', credentialId: uuid(random) }],
        ips: [ipv4(random, '198.51.100'), ipv6(random, '2001:db8')],
        agents: [pick(random, SCIM_CLIENTS)],
      },
      projects: PROJECTS.filter(() => random() < 0.6).concat('default'),
    };
  });
  const builtins = ['internal-api', 'service-balancer', 'external-authenticator'].map(
    (): User => ({
      actor: { kind: 'user_builtin', id: uuid(random) },
      credentials: [{ method: 'spoof' }],
      ips: [ipv6(random, 'fd00:1122:3344'), ipv4(random, '10')],
      agents: ['oxide-nexus/1.0', null],
    }),
  );
  return { silos, builtins, anonymousIps: clientIps(random).concat(clientIps(random)) };
}

type Speed = 'fast' | 'medium' | 'slow';
type Operation = {
  id: string;
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** Builds the request URI from a project and an object name. */
  uri: (project: string, name: string) => string;
  status: number;
  speed: Speed;
  /** The errors this operation can plausibly end in, besides the generic ones. */
  errors: ErrorKind[];
  weight: number;
  /** Set for requests that never succeed, like an anonymous call of an authenticated endpoint. */
  alwaysFails?: ErrorKind;
};

type ErrorKind = 'invalid' | 'forbidden' | 'notFound' | 'conflict' | 'unauthorized';

const q = (project: string) => `project=${encodeURIComponent(project)}`;
const op = (
  id: string,
  method: Operation['method'],
  uri: Operation['uri'],
  status: number,
  speed: Speed,
  errors: ErrorKind[],
  weight: number,
): Operation => ({ id, method, uri, status, speed, errors, weight });

const USER_OPERATIONS: Operation[] = [
  op('project_list', 'GET', () => '/v1/projects?limit=100', 200, 'fast', [], 6),
  op('project_view', 'GET', (p) => `/v1/projects/${p}`, 200, 'fast', ['notFound'], 3),
  op('project_create', 'POST', () => '/v1/projects', 201, 'medium', ['invalid', 'conflict'], 2),
  op('project_delete', 'DELETE', (p) => `/v1/projects/${p}`, 204, 'medium', ['notFound'], 1),
  op('instance_list', 'GET', (p) => `/v1/instances?${q(p)}&limit=100`, 200, 'fast', [], 10),
  op('instance_view', 'GET', (p, n) => `/v1/instances/${n}?${q(p)}`, 200, 'fast', ['notFound'], 6),
  op(
    'instance_create',
    'POST',
    (p) => `/v1/instances?${q(p)}`,
    201,
    'slow',
    ['invalid', 'conflict'],
    4,
  ),
  op(
    'instance_start',
    'POST',
    (p, n) => `/v1/instances/${n}/start?${q(p)}`,
    202,
    'medium',
    ['notFound', 'conflict'],
    4,
  ),
  op(
    'instance_stop',
    'POST',
    (p, n) => `/v1/instances/${n}/stop?${q(p)}`,
    202,
    'medium',
    ['notFound', 'conflict'],
    3,
  ),
  op(
    'instance_delete',
    'DELETE',
    (p, n) => `/v1/instances/${n}?${q(p)}`,
    204,
    'medium',
    ['notFound', 'conflict'],
    2,
  ),
  op('disk_list', 'GET', (p) => `/v1/disks?${q(p)}&limit=100`, 200, 'fast', [], 5),
  op('disk_create', 'POST', (p) => `/v1/disks?${q(p)}`, 201, 'slow', ['invalid', 'conflict'], 3),
  op(
    'disk_delete',
    'DELETE',
    (p, n) => `/v1/disks/${n}-data?${q(p)}`,
    204,
    'medium',
    ['notFound', 'conflict'],
    2,
  ),
  op(
    'snapshot_create',
    'POST',
    (p) => `/v1/snapshots?${q(p)}`,
    201,
    'slow',
    ['invalid', 'notFound'],
    1,
  ),
  op('vpc_list', 'GET', (p) => `/v1/vpcs?${q(p)}`, 200, 'fast', [], 2),
  op(
    'vpc_firewall_rules_update',
    'PUT',
    (p) => `/v1/vpc-firewall-rules?${q(p)}&vpc=default`,
    200,
    'medium',
    ['invalid'],
    1,
  ),
  op(
    'floating_ip_create',
    'POST',
    (p) => `/v1/floating-ips?${q(p)}`,
    201,
    'medium',
    ['invalid', 'conflict'],
    1,
  ),
  op('image_list', 'GET', (p) => `/v1/images?${q(p)}`, 200, 'fast', [], 2),
  op('current_user_view', 'GET', () => '/v1/me', 200, 'fast', [], 4),
  op(
    'current_user_access_token_delete',
    'DELETE',
    (_p, n) => `/v1/me/access-tokens/${n}`,
    204,
    'fast',
    ['notFound'],
    1,
  ),
  op('logout', 'POST', () => '/v1/logout', 204, 'fast', [], 1),
];

const SCIM_OPERATIONS: Operation[] = [
  op(
    'scim_v2_list_users',
    'GET',
    () => '/scim/v2/Users?startIndex=1&count=100',
    200,
    'fast',
    [],
    3,
  ),
  op(
    'scim_v2_create_user',
    'POST',
    () => '/scim/v2/Users',
    201,
    'medium',
    ['invalid', 'conflict'],
    2,
  ),
  op(
    'scim_v2_patch_user',
    'PATCH',
    (_p, n) => `/scim/v2/Users/${n}`,
    200,
    'medium',
    ['notFound'],
    2,
  ),
  op(
    'scim_v2_delete_user',
    'DELETE',
    (_p, n) => `/scim/v2/Users/${n}`,
    204,
    'medium',
    ['notFound'],
    1,
  ),
  op(
    'scim_v2_patch_group',
    'PATCH',
    (_p, n) => `/scim/v2/Groups/${n}`,
    200,
    'medium',
    ['notFound', 'invalid'],
    2,
  ),
];

const ANONYMOUS_OPERATIONS: Operation[] = [
  op('login_local', 'POST', (_p, n) => `/v1/login/${n}/local`, 204, 'medium', ['unauthorized'], 5),
  op(
    'login_saml',
    'POST',
    (_p, n) => `/login/${n}/saml/okta`,
    303,
    'medium',
    ['unauthorized', 'invalid'],
    2,
  ),
  op('device_auth_request', 'POST', () => '/device/auth', 200, 'fast', ['invalid'], 1),
  {
    ...op('project_list', 'GET', () => '/v1/projects', 200, 'fast', [], 1),
    alwaysFails: 'unauthorized',
  },
];

const BUILTIN_OPERATIONS: Operation[] = [
  op('silo_create', 'POST', () => '/v1/system/silos', 201, 'slow', ['invalid', 'conflict'], 1),
  op(
    'ip_pool_range_add',
    'POST',
    () => '/v1/system/ip-pools/default/ranges/add',
    201,
    'medium',
    ['invalid', 'conflict'],
    1,
  ),
  op('sled_list', 'GET', () => '/v1/system/hardware/sleds', 200, 'fast', [], 2),
  op(
    'silo_quotas_update',
    'PUT',
    (_p, n) => `/v1/system/silos/${n}/quotas`,
    200,
    'medium',
    ['notFound', 'invalid'],
    1,
  ),
];

const OBJECT_NAMES = ['web', 'db', 'runner', 'worker', 'cache', 'gpu', 'bastion', 'etl'];

type Failure = {
  status: number;
  code: string | null;
  message: (o: Operation, name: string) => string;
};
const FAILURES: Record<ErrorKind | 'internal' | 'unavailable', Failure[]> = {
  invalid: [
    {
      status: 400,
      code: 'InvalidRequest',
      message: () => 'unable to parse JSON body: missing field `name` at line 1 column 42',
    },
    {
      status: 400,
      code: 'InvalidValue',
      message: (_o, n) =>
        `bad value for name: "${n.toUpperCase()}" must begin with a lower case ASCII letter`,
    },
  ],
  forbidden: [{ status: 403, code: 'Forbidden', message: () => 'Forbidden' }],
  notFound: [
    {
      status: 404,
      code: 'ObjectNotFound',
      message: (o, n) => `not found: ${o.id.split('_')[0]} with name "${n}"`,
    },
  ],
  conflict: [
    {
      status: 409,
      code: 'ObjectAlreadyExists',
      message: (o, n) => `already exists: ${o.id.split('_')[0]} "${n}"`,
    },
    {
      status: 409,
      code: 'InvalidRequest',
      message: () => 'cannot change state while the instance is starting',
    },
  ],
  unauthorized: [
    { status: 401, code: 'Unauthorized', message: () => 'credentials missing or invalid' },
  ],
  internal: [{ status: 500, code: 'Internal', message: () => 'Internal Server Error' }],
  unavailable: [
    { status: 503, code: 'ServiceNotAvailable', message: () => 'Service Unavailable' },
    { status: 503, code: null, message: () => 'saga recovery in progress; try again later' },
  ],
};

const SPEED_MS: Record<Speed, readonly [number, number]> = {
  fast: [10, 120],
  medium: [40, 400],
  slow: [150, 1_500],
};

/** Tens to hundreds of milliseconds, log-uniform per speed class, with a tail of seconds. */
function operationDelay(random: Random, speed: Speed): number {
  const [lo, hi] = SPEED_MS[speed];
  let ms = lo * (hi / lo) ** random();
  if (random() < 0.03) ms = Math.max(ms, 1_000 + random() * 4_000);
  return Math.min(Math.round(ms), 5_000);
}

function operationResult(random: Random, o: Operation, name: string): Completion {
  if (o.alwaysFails) return error(random, o.alwaysFails, o, name);
  const r = random();
  if (r < 0.88) return { kind: 'success', httpStatusCode: o.status };
  if (r < 0.95 && o.errors.length > 0) return error(random, pick(random, o.errors), o, name);
  if (r < 0.95) return { kind: 'success', httpStatusCode: o.status };
  if (r < 0.97) return error(random, 'forbidden', o, name);
  if (r < 0.985) return error(random, 'internal', o, name);
  return error(random, 'unavailable', o, name);
}

function error(
  random: Random,
  kind: keyof typeof FAILURES,
  o: Operation,
  name: string,
): Completion {
  const f = pick(random, FAILURES[kind]);
  return {
    kind: 'error',
    httpStatusCode: f.status,
    errorCode: f.code,
    errorMessage: f.message(o, name),
  };
}

/** One operation: who, what, from where, how long it runs, and how it ends (or not). */
export function planOperation(
  population: Population,
  random: Random,
  crashRatio: number,
): OperationPlan {
  const who = weighted(random, [
    ['silo_user', 80],
    ['unauthenticated', 9],
    ['scim', 7],
    ['user_builtin', 4],
  ] as const);
  const silo = pick(random, population.silos);
  let user: User | undefined;
  let operations: Operation[];
  if (who === 'silo_user') {
    user = pick(random, silo.users);
    operations = USER_OPERATIONS;
  } else if (who === 'scim') {
    user = silo.scim;
    operations = SCIM_OPERATIONS;
  } else if (who === 'user_builtin') {
    user = pick(random, population.builtins);
    operations = BUILTIN_OPERATIONS;
  } else {
    operations = ANONYMOUS_OPERATIONS;
  }
  const o = weighted(
    random,
    operations.map((x) => [x, x.weight] as const),
  );
  const project = pick(random, silo.projects);
  const name =
    who === 'unauthenticated' || who === 'user_builtin'
      ? silo.name
      : who === 'scim'
        ? uuid(random)
        : `${pick(random, OBJECT_NAMES)}-${int(random, 1, 24)}`;

  let auth: Auth | null = null;
  let userAgent: string | null;
  let sourceIp: string;
  if (user) {
    auth = pick(random, user.credentials);
    sourceIp = pick(random, user.ips);
    // Browsers carry the session cookie; API clients and scripts use tokens.
    userAgent =
      auth.method === 'session_cookie'
        ? (user.agents[0] ?? null)
        : auth.method === 'access_token'
          ? pick(random, user.agents.slice(1))
          : pick(random, user.agents);
  } else {
    sourceIp = pick(random, population.anonymousIps);
    userAgent = random() < 0.9 ? pick(random, [...BROWSERS, 'curl/8.5.0']) : null;
  }

  const entry: NewEntry = {
    requestId: randomUUID(),
    requestUri: o.uri(project, name),
    operationId: o.id,
    sourceIp,
    userAgent,
    actor: user ? user.actor : { kind: 'unauthenticated' },
    auth,
  };
  const crash = random() < crashRatio;
  const delayMs = operationDelay(random, o.speed);
  const result = operationResult(random, o, name);
  return { entry, crash, delayMs, result };
}

/** The population a seed gives: exported for tests that want plans without a database. */
export function planOperations(seed: number, count: number, crashRatio: number): OperationPlan[] {
  const random = createRandom(seed);
  const population = createPopulation(random);
  return Array.from({ length: count }, () => planOperation(population, random, crashRatio));
}
