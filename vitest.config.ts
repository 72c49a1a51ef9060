import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

// Most test files spend their time waiting on child processes (the CLI, redis-server, chromium),
// not on this process's CPU, so one fork per core leaves cores idle; vitest's default (cores - 1)
// runs a 2-core CI machine's files one after another.
const forks = Math.max(3, availableParallelism());

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    poolOptions: { forks: { maxForks: forks, minForks: 1 } },
  },
});
