import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Files run in parallel: each one owns its database and Redis prefix (test/support).
    pool: 'forks',
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // expect.poll waits out processes and servers: long enough for a drain, at a modest pace
    // (a tight poll steals a core from what it waits for).
    expect: { poll: { timeout: 90_000, interval: 250 } },
    reporters: ['default', 'json'],
    outputFile: { json: 'test-artifacts/vitest.json' },
  },
});
