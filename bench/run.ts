// `npm run bench -- <name> [--json]`: benchmarks print tables, machine and date noted.
import { benchMigration } from './migration.js';
import { benchTokens } from './tokens.js';
import { benchXen } from './xen.js';

const benches: Record<string, (json: boolean, args: string[]) => Promise<void>> = {
  tokens: benchTokens,
  migration: benchMigration,
  xen: benchXen,
};

const [name, ...rest] = process.argv.slice(2);
const run = benches[name ?? ''];
if (!run) {
  console.error(`usage: npm run bench -- <${Object.keys(benches).join('|')}> [--json] (migration, xen: [--runs N])`);
  process.exit(2);
}
try {
  await run(rest.includes('--json'), rest);
} catch (err) {
  console.error(`bench ${name}: ${(err as Error).message}`);
  process.exit(1);
}
