import { defineConfig } from 'vitest/config';

// `npm run test:docker`: the image and the compose stack built and run on a Docker engine
// (test/docker). Apart from `npm test`: it needs root or a running engine, and minutes.
export default defineConfig({
  test: {
    include: ['test/docker/**/*.docker.ts'],
    // One stack at a time, its steps in order.
    fileParallelism: false,
    testTimeout: 600_000,
    hookTimeout: 600_000,
    reporters: ['default', 'json'],
    outputFile: { json: 'test-artifacts/vitest-docker.json' },
  },
});
