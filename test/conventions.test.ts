import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ENV_EXAMPLE_FILE, envExample } from '../deploy/env-example.ts';
import { loadConfig, SETTINGS } from '../src/config.ts';

/** The files a newcomer looks for: .env.example, the licence, the changelog. */

const read = (path: string) => readFileSync(new URL(`../${path}`, import.meta.url), 'utf8');

describe('.env.example', () => {
  const lines = read('.env.example')
    .split('\n')
    .filter((l) => l && !l.startsWith('#'));
  const entries = lines.map((l) => {
    const at = l.indexOf('=');
    return [l.slice(0, at), l.slice(at + 1)] as const;
  });

  it('sets every setting the code reads, once, and nothing else', () => {
    expect(entries.map(([name]) => name)).toEqual(Object.keys(SETTINGS));
  });

  it('gives each setting its default (empty where there is none), which the code accepts', () => {
    for (const [name, value] of entries)
      expect(value, name).toBe(SETTINGS[name as keyof typeof SETTINGS].default ?? '');
    expect(() => loadConfig(Object.fromEntries(entries))).not.toThrow();
  });

  it('explains each setting in a comment above it', () => {
    const text = read('.env.example');
    for (const name of Object.keys(SETTINGS))
      expect(text, name).toMatch(new RegExp(`#[^\\n]*\\n(#[^\\n]*\\n)*${name}=`));
  });

  it('is what `npm run generate:env-example` makes from the code and the README', () => {
    expect(read(ENV_EXAMPLE_FILE)).toBe(envExample(read('README.md')));
  });
});

describe('licence and changelog', () => {
  it('LICENSE is the MIT licence, and package.json says so', () => {
    expect(read('LICENSE')).toMatch(/^MIT License\n\nCopyright \(c\) \d{4} /);
    expect(JSON.parse(read('package.json')).license).toBe('MIT');
  });

  it('CHANGELOG.md keeps the Keep a Changelog form: Unreleased first, then dated versions', () => {
    const headings = [...read('CHANGELOG.md').matchAll(/^## (.+)$/gm)].map((m) => m[1]);
    expect(headings[0]).toBe('[Unreleased]');
    expect(headings.length).toBeGreaterThan(1);
    for (const h of headings.slice(1)) expect(h).toMatch(/^\[\d+\.\d+\.\d+\] - \d{4}-\d{2}-\d{2}$/);
    const version = JSON.parse(read('package.json')).version;
    expect(
      headings.some((h) => h?.startsWith(`[${version}] - `)),
      `${version} listed`,
    ).toBe(true);
  });
});
