import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SETTINGS } from '../src/config.ts';

/** The README's settings table is what operators read: it must list every setting the code reads. */
const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
const rows = new Map(
  [...readme.matchAll(/^\| `([A-Z_]+)` \| ([^|]*) \|/gm)].map((m) => [
    m[1] ?? '',
    (m[2] ?? '').trim(),
  ]),
);

describe('README', () => {
  it.each(Object.entries(SETTINGS))('documents %s with its default', (name, setting) => {
    expect(rows.has(name), `${name} missing from the settings table`).toBe(true);
    const documented = rows.get(name) ?? '';
    if (setting.default) expect(documented).toContain(`\`${setting.default}\``);
    else expect(documented).toMatch(/none|empty/i);
  });

  it('documents no setting the code does not read', () => {
    const unknown = [...rows.keys()].filter((name) => !(name in SETTINGS));
    expect(unknown).toEqual([]);
  });

  it('gives the run and test commands', () => {
    expect(readme).toContain('npm start');
    expect(readme).toContain('npm test');
  });
});
