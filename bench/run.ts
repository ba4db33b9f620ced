// `npm run bench -- <name> [--json]`: benchmarks print tables, machine and date noted.
import { benchMigration } from './migration.js';
import { benchTokens } from './tokens.js';

const benches: Record<string, (json: boolean) => Promise<void>> = {
  tokens: benchTokens,
  migration: benchMigration,
};

const [name, ...rest] = process.argv.slice(2);
const run = benches[name ?? ''];
if (!run) {
  console.error(`usage: npm run bench -- <${Object.keys(benches).join('|')}> [--json]`);
  process.exit(2);
}
await run(rest.includes('--json'));
