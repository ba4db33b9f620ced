import { defineConfig } from 'vitest/config';

// The Xen suite (guest-linux/xen): nested emulation, one QEMU with two CPUs; it
// runs alone, after the main suite.
export default defineConfig({
  test: {
    include: ['guest-linux/xen/**/*.test.ts'],
    exclude: ['node_modules/**', 'dist/**'],
    testTimeout: 900_000,
    hookTimeout: 30 * 60_000,
    maxWorkers: 1,
    reporters: ['default'],
  },
});
