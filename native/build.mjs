// Builds the native addon (cmake-js) during `npm install`, with an error that
// says what to install when the C toolchain is missing.
import { execFileSync, spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');

for (const [tool, pkg] of [['cmake', 'cmake'], ['cc', 'build-essential'], ['c++', 'build-essential'], ['make', 'build-essential']]) {
  if (spawnSync(tool, ['--version'], { stdio: 'ignore' }).status !== 0) {
    console.error(`mcg: cannot build native/: '${tool}' not found. Install it (Debian: apt-get install ${pkg}) and run 'npm install' again.`);
    process.exit(1);
  }
}
try {
  execFileSync(join(root, 'node_modules', '.bin', 'cmake-js'), ['compile', '--directory', here, '--out', join(here, 'build')], {
    stdio: ['ignore', 'inherit', 'inherit'],
    cwd: root,
  });
} catch {
  console.error('mcg: building native/ failed (see the compiler output above).');
  process.exit(1);
}
