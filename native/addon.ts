// Loads the Node-API addon built from native/ by `npm install`.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface NativeAddon {
  sha256(data: Uint8Array): Buffer;
  chainWalk(chainId: Uint8Array, from: number, steps: number, value: Uint8Array): Buffer;
  chainVerify(chainId: Uint8Array, lastIndex: number, lastValue: Uint8Array, index: number, value: Uint8Array): number;
  layout: Record<string, number>;
}

function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json')) || !existsSync(join(dir, 'native', 'CMakeLists.txt'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('mcg: cannot find the repository root from ' + import.meta.url);
    dir = up;
  }
  return dir;
}

export const REPO_ROOT = findRoot();
const addonPath = join(REPO_ROOT, 'native', 'build', 'Release', 'mcg_native.node');
let cached: NativeAddon | undefined;

export function loadAddon(): NativeAddon {
  if (cached) return cached;
  if (!existsSync(addonPath)) {
    throw new Error(`mcg: native addon missing at ${addonPath}; run 'npm install' (it builds native/ with cmake-js)`);
  }
  cached = createRequire(import.meta.url)(addonPath) as NativeAddon;
  return cached;
}
