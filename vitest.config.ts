import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 120_000,
    hookTimeout: 600_000,
    // Native sessions use both cores; running test files one at a time keeps timings sane on a 2-core machine.
    fileParallelism: false,
  },
});
