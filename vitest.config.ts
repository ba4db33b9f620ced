import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['**/*.test.ts'],
    // The Xen suite runs alone afterwards (vitest.xen.config.ts).
    exclude: ['node_modules/**', 'dist/**', 'guest-linux/xen/**'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // QEMU tests each take a core; run files two at a time (the machine has 2 cores).
    maxWorkers: 2,
    reporters: ['default'],
  },
});
