import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['**/*.test.ts'],
    exclude: ['node_modules/**', 'dist/**'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // QEMU tests each take a core; run files two at a time (the machine has 2 cores).
    maxWorkers: 2,
    reporters: ['default'],
  },
});
