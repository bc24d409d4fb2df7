import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.ts';
import {
  describeRedisTarget,
  parseRedisUrl,
  RedisUrlError,
  redactRedisUrl,
} from '../src/redis-url.ts';

/** REDIS_URL's scheme names the topology: one server, a Redis Cluster, or Sentinel. */

describe('parseRedisUrl', () => {
  it('a redis:// or rediss:// URL is one server, passed on as given', () => {
    expect(parseRedisUrl('redis://127.0.0.1:6379')).toEqual({
      kind: 'single',
      url: 'redis://127.0.0.1:6379',
      tls: false,
    });
    expect(parseRedisUrl('rediss://default:s%40cret@cache.internal:6380/2')).toEqual({
      kind: 'single',
      url: 'rediss://default:s%40cret@cache.internal:6380/2',
      tls: true,
      username: 'default',
      password: 's@cret',
    });
  });

  it('redis+cluster:// lists seed nodes, with optional user and password', () => {
    expect(parseRedisUrl('redis+cluster://10.0.0.1:7000,10.0.0.2:7001,node-3.internal')).toEqual({
      kind: 'cluster',
      nodes: [
        { host: '10.0.0.1', port: 7000 },
        { host: '10.0.0.2', port: 7001 },
        { host: 'node-3.internal', port: 6379 },
      ],
      tls: false,
    });
    expect(parseRedisUrl('rediss+cluster://app:p%3Ass@[::1]:7000/')).toEqual({
      kind: 'cluster',
      nodes: [{ host: '::1', port: 7000 }],
      tls: true,
      username: 'app',
      password: 'p:ss',
    });
    // `:password@` is a password with no user name (requirepass).
    expect(parseRedisUrl('redis+cluster://:pw@h:1')).toMatchObject({ password: 'pw' });
    expect(parseRedisUrl('redis+cluster://:pw@h:1')).not.toHaveProperty('username');
  });

  it('redis+sentinel:// lists sentinels and names the master after them', () => {
    expect(parseRedisUrl('redis+sentinel://s1:26379,s2:26380,s3/mymaster')).toEqual({
      kind: 'sentinel',
      sentinels: [
        { host: 's1', port: 26379 },
        { host: 's2', port: 26380 },
        { host: 's3', port: 26379 },
      ],
      masterName: 'mymaster',
      tls: false,
    });
    expect(
      parseRedisUrl(
        'rediss+sentinel://u:pw@s1:26379/audit?sentinelUsername=sent&sentinelPassword=sp',
      ),
    ).toEqual({
      kind: 'sentinel',
      sentinels: [{ host: 's1', port: 26379 }],
      masterName: 'audit',
      tls: true,
      username: 'u',
      password: 'pw',
      sentinelUsername: 'sent',
      sentinelPassword: 'sp',
    });
  });

  it('the scheme is case-insensitive', () => {
    expect(parseRedisUrl('REDIS+CLUSTER://h:1')).toMatchObject({ kind: 'cluster' });
  });

  const bad: [string, RegExp][] = [
    ['nope', /not a URL/],
    ['http://127.0.0.1:6379', /unknown scheme "http:\/\/"/],
    ['redis+replica://h:1', /unknown scheme/],
    ['redis://h1:6379,h2:6379', /redis\+cluster:\/\/.*redis\+sentinel/],
    ['redis://h:6379/db', /database number/],
    ['redis+cluster://', /names no seed node/],
    ['redis+cluster://h:0', /valid port/],
    ['redis+cluster://h:65536', /valid port/],
    ['redis+cluster://h:', /valid port/],
    ['redis+cluster://h:1,,h:2', /a seed node is not host:port/],
    ['redis+cluster://h 1:1', /is not host:port/],
    ['redis+cluster://h:1,h:1', /twice/],
    ['redis+cluster://h:1/0', /no path/],
    ['redis+cluster://h:1?foo=1', /unknown parameter "foo"/],
    ['redis+sentinel://s1:26379', /names no master/],
    ['redis+sentinel://s1:26379/', /names no master/],
    ['redis+sentinel://s1:26379/a/b', /master name has a "\/"/],
    ['redis+sentinel://s1:26379/m?db=1', /unknown parameter "db"/],
    ['redis+sentinel://u:%zz@s1/m', /bad %-escape/],
  ];

  it.each(bad)('%j is refused saying what is wrong', (raw, message) => {
    expect(() => parseRedisUrl(raw)).toThrow(RedisUrlError);
    expect(() => parseRedisUrl(raw)).toThrow(message);
  });

  it('never repeats a password in an error', () => {
    // Passwords holding "/", "@" or "," break the authority apart: the pieces land in the host
    // list or the master name, which the errors name without quoting.
    for (const raw of [
      'redis+cluster://u:hunter22@h:99999',
      'redis+sentinel://u:hunter22@s',
      'redis+sentinel://:hun/ter22@s1:26379/m',
      'redis+cluster://:hunter22,x@h:0',
      'redis+sentinel://s1:26379/m/hunter22',
      'redis://u:hunter22@h/9/hunter22',
    ]) {
      expect(() => parseRedisUrl(raw)).toThrow(RedisUrlError);
      try {
        parseRedisUrl(raw);
      } catch (err) {
        expect((err as Error).message).not.toMatch(/hun|ter22/);
      }
    }
  });
});

describe('redactRedisUrl and describeRedisTarget', () => {
  it('hide passwords', () => {
    expect(redactRedisUrl('redis://u:hunter22@h:1/0')).toBe('redis://u:***@h:1/0');
    expect(redactRedisUrl('rediss+cluster://:hunter22@a:1,b:2')).toBe(
      'rediss+cluster://:***@a:1,b:2',
    );
    expect(redactRedisUrl('redis+sentinel://s:1/m?sentinelPassword=hunter22')).toBe(
      'redis+sentinel://s:1/m?sentinelPassword=***',
    );
    expect(redactRedisUrl('redis://h:1')).toBe('redis://h:1');
  });

  it('say where each topology points', () => {
    expect(describeRedisTarget(parseRedisUrl('redis://u:hunter22@h:1'))).toBe(
      'Redis at redis://u:***@h:1',
    );
    expect(describeRedisTarget(parseRedisUrl('redis+cluster://a:1,[::1]:2'))).toBe(
      'Redis Cluster via a:1,[::1]:2',
    );
    expect(describeRedisTarget(parseRedisUrl('redis+sentinel://u:hunter22@s:1/audit'))).toBe(
      'Redis primary "audit" via Sentinel s:1',
    );
  });
});

describe('REDIS_URL and QUEUE_PREFIX in loadConfig', () => {
  it('accepts each topology', () => {
    for (const url of [
      'redis://127.0.0.1:6379',
      'rediss://:pw@cache:6380/1',
      'redis+cluster://a:7000,b:7001',
      'rediss+sentinel://s1:26379,s2:26379/audit',
    ])
      expect(loadConfig({ REDIS_URL: url }).REDIS_URL).toBe(url);
  });

  it('a bad REDIS_URL is a ConfigError saying what is wrong, without the password', () => {
    let error: unknown;
    try {
      loadConfig({ REDIS_URL: 'redis+sentinel://u:hunter22@s1:26379' });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const e = error as ConfigError;
    expect(e.variable).toBe('REDIS_URL');
    expect(e.message).toMatch(
      /^invalid setting REDIS_URL \(scheme redis\+sentinel:\/\/, host s1; value not shown.*names no master/,
    );
    expect(e.message).toContain('redis+cluster://');
    expect(e.message).not.toContain('hunter22');
  });

  it('on a cluster, QUEUE_PREFIX must keep a hash tag', () => {
    expect(() =>
      loadConfig({ REDIS_URL: 'redis+cluster://a:7000', QUEUE_PREFIX: 'audit' }),
    ).toThrow(/QUEUE_PREFIX.*hash tag/);
    expect(
      loadConfig({ REDIS_URL: 'redis+cluster://a:7000', QUEUE_PREFIX: 'x{ops}' }).QUEUE_PREFIX,
    ).toBe('x{ops}');
    // One server has a single slot space: any prefix works there.
    expect(loadConfig({ REDIS_URL: 'redis://a:6379', QUEUE_PREFIX: 'audit' }).QUEUE_PREFIX).toBe(
      'audit',
    );
  });
});
