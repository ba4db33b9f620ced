// The `mcg` command: role subcommands for token vendors, cluster admins (nodes)
// and grid users. Errors end in one handler that maps them to exit codes;
// `--json` puts only JSON on stdout, progress and logs go to stderr.
import { Command, CommanderError, Option } from 'commander';
import { readFileSync, existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { aint } from '../tokens/_assert.js';
import { writeFileAtomic, LockBusyError } from '../tokens/_durable.js';
import { loadPublicKey, BOOT_TOKEN_BYTES } from '../tokens/boot-token.js';
import { VendorError, VendorStore } from '../tokens/vendor-store.js';
import { createVendorServer } from '../tokens/vendor-service.js';
import { NodeAgent } from '../node-agent/agent.js';
import { grantedMibSeconds, Ledger } from '../node-agent/ledger.js';
import { NodeClient, parseHostPort, PayError, readTokensFile } from '../node-agent/client.js';
import { REPO_ROOT } from '../native/addon.js';
import { runDemo } from './demo.js';
import { buildGuest, runMigration } from './selfmig.js';
import { VendorHttpError } from './vendor-client.js';
import { buildXenTestbed, runXenScript } from './xen-testbed.js';
import { runXenMigration, type XenMode } from './xen-selfmig.js';

export const EXIT = { OK: 0, FAILURE: 1, USAGE: 2, STATE: 3, REFUSED: 4 } as const;

const EXIT_HELP = `
Exit codes: 0 ok; 1 failure; 2 bad usage or input; 3 state problem (not initialized,
in use, unknown or exhausted chain, no funds); 4 refused by a node or vendor.
With --json, stdout holds only JSON; progress and logs go to stderr.`;

const defaultVendorState = () => process.env.MCG_VENDOR_STATE ?? join(homedir(), '.mcg', 'vendor');
const defaultNodeState = () => process.env.MCG_NODE_STATE ?? join(homedir(), '.mcg', 'node');

function out(json: boolean, value: unknown, human: string): void {
  process.stdout.write(json ? JSON.stringify(value) + '\n' : human + '\n');
}

function progress(msg: string): void {
  process.stderr.write(msg);
}

export function parseDuration(s: string): number {
  const m = /^(\d+)([smhd])$/.exec(s);
  if (!m) throw new RangeError(`expected a duration like 3600s, 90m, 12h or 30d, got "${s}"`);
  return Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[m[2] as 's' | 'm' | 'h' | 'd'];
}

function int(name: string, min: number, max: number) {
  return (v: string) => aint(Number(v), min, max, name);
}

function withVendor<T>(dir: string, fn: (store: VendorStore) => T): T {
  const store = new VendorStore(dir).lock();
  try {
    return fn(store);
  } finally {
    store.unlock();
  }
}

function readFileArg(path: string, what: string): Buffer {
  if (!existsSync(path)) throw new RangeError(`${what} file not found: ${path}`);
  return readFileSync(path);
}

export function buildProgram(): Command {
  const program = new Command('mcg')
    .description('Minimal Configuration Grid: self-migrating Linux guests, admitted to grid nodes by hash-chain tokens')
    .addHelpText('after', EXIT_HELP)
    .exitOverride()
    .showHelpAfterError(false);

  // --- token vendors -------------------------------------------------------
  const vendor = program.command('vendor').description('token vendor: mint hash chains and sell their tokens');
  const stateOpt = () => new Option('--state <dir>', 'vendor state directory (private, 0700)').default(defaultVendorState(), '$MCG_VENDOR_STATE or ~/.mcg/vendor');

  vendor
    .command('init')
    .description('create the vendor signing key (Ed25519); prints the public key file nodes need')
    .addOption(stateOpt())
    .option('--json', 'machine-readable output')
    .action((o) => {
      const r = withVendor(o.state, (s) => s.init());
      out(o.json, r, `vendor key ${r.keyId}\npublic key for nodes (--vendor-key): ${r.publicKeyPath}`);
    });

  vendor
    .command('mint')
    .description('mint a chain for one customer-node pair and write its signed boot token')
    .addOption(stateOpt())
    .requiredOption('--customer <name>', 'customer the chain is sold to')
    .requiredOption('--node <id>', 'node id the tokens are valid on')
    .option('--log2-length <k>', 'chain length 2^k tokens (1..32)', int('log2-length', 1, 32), 16)
    .option('--mib-seconds-per-token <n>', 'resource one token buys', int('mib-seconds-per-token', 1, Number.MAX_SAFE_INTEGER), 256)
    .option('--expires-in <duration>', 'validity of the boot token (s, m, h, d)', '30d')
    .requiredOption('--out <file>', 'where to write the boot token (208 bytes)')
    .option('--json', 'machine-readable output')
    .action((o) => {
      const expiresUnix = Math.floor(Date.now() / 1000) + parseDuration(o.expiresIn);
      const r = withVendor(o.state, (s) =>
        s.mint({ customer: o.customer, nodeId: o.node, log2Length: o.log2Length, mibSecondsPerToken: o.mibSecondsPerToken, expiresUnix }, (done, total) => {
          if (total >= 2 ** 24) progress(`\rminting: ${((100 * done) / total).toFixed(1)}% of ${total} hashes`);
        }),
      );
      writeFileAtomic(o.out, r.bootToken.bytes, 0o644);
      out(o.json, { chainId: r.chainId, bootToken: o.out, length: 2 ** o.log2Length, expiresUnix }, `chain ${r.chainId} (${2 ** o.log2Length} tokens) for ${o.customer} on ${o.node}\nboot token: ${o.out}`);
    });

  vendor
    .command('release')
    .description('release the next tokens of a chain in spending order (vendor side, uncharged)')
    .addOption(stateOpt())
    .requiredOption('--chain <id>', 'chain id (32 hex digits)')
    .requiredOption('--count <n>', 'tokens to release', int('count', 1, 100_000))
    .requiredOption('--out <file>', 'tokens file to write (JSON)')
    .option('--json', 'machine-readable output')
    .action((o) => {
      const r = withVendor(o.state, (s) => s.release(o.chain, o.count));
      writeFileAtomic(o.out, JSON.stringify(r), 0o600);
      const first = r.tokens[0].index;
      const last = r.tokens[r.tokens.length - 1].index;
      out(o.json, { chainId: r.chainId, count: r.tokens.length, firstIndex: first, lastIndex: last, out: o.out }, `released ${r.tokens.length} tokens (index ${first} down to ${last}) to ${o.out}`);
    });

  vendor
    .command('list')
    .description('list chains and how much of each is released')
    .addOption(stateOpt())
    .option('--json', 'machine-readable output')
    .action((o) => {
      const chains = new VendorStore(o.state).list();
      const lines = chains.map((c) => `${c.chainId}  ${c.customer.padEnd(16)} ${c.nodeId.padEnd(16)} ${String(c.released).padStart(10)} / ${c.length}`);
      out(o.json, chains, ['chain                             customer         node              released / length', ...lines].join('\n'));
    });

  vendor
    .command('account')
    .description('create a prepaid customer account (prints its API key) or add credits')
    .addOption(stateOpt())
    .requiredOption('--customer <name>', 'customer name')
    .option('--create', 'create the account and print a new API key')
    .option('--deposit <tokens>', 'add token credits', int('deposit', 1, Number.MAX_SAFE_INTEGER))
    .option('--json', 'machine-readable output')
    .action((o) => {
      const r = withVendor(o.state, (s) => {
        const created = o.create ? s.createAccount(o.customer) : undefined;
        const balanceTokens = o.deposit ? s.deposit(o.customer, o.deposit) : s.balance(o.customer);
        return { customer: o.customer, ...created, balanceTokens };
      });
      out(o.json, r, `${r.customer}: ${r.balanceTokens} token credits${'apiKey' in r && r.apiKey ? `\nAPI key (shown once): ${r.apiKey}` : ''}`);
    });

  vendor
    .command('serve')
    .description('serve the vendor HTTP API (accounts, minting, buying tokens)')
    .addOption(stateOpt())
    .option('--listen <host:port>', 'address to listen on', '127.0.0.1:7080')
    .action(async (o) => {
      const { host, port } = parseHostPort(o.listen, true);
      const store = new VendorStore(o.state).lock();
      store.publicKey(); // fail now if not initialized
      const server = createVendorServer(store);
      await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, host, resolve));
      const addr = server.address() as { port: number };
      process.stderr.write(`mcg vendor: serving on http://${host}:${addr.port} (admin key in ${join(o.state, 'admin-key')})\n`);
      process.stdout.write(JSON.stringify({ listening: `${host}:${addr.port}` }) + '\n');
      await stopOnSignal(async () => {
        await new Promise((r) => server.close(r));
        store.unlock();
      });
    });

  // --- cluster admins ------------------------------------------------------
  const node = program.command('node').description('cluster admin: run a token-gated grid node');
  const nodeStateOpt = () => new Option('--state <dir>', 'node state directory (the spend ledger)').default(defaultNodeState(), '$MCG_NODE_STATE or ~/.mcg/node');

  node
    .command('start')
    .description('start the node agent: admits work only for valid boot tokens and payments (UDP)')
    .requiredOption('--node-id <id>', 'this node\'s id (boot tokens must name it)')
    .requiredOption('--vendor-key <file...>', 'trusted vendor public key(s), PEM')
    .option('--listen <host:port>', 'UDP address', '127.0.0.1:7070')
    .addOption(nodeStateOpt())
    .option('--rate-limit <n>', 'datagrams per second per source address (0: off)', int('rate-limit', 0, 10_000_000), 100_000)
    .option('--burst <n>', 'burst allowance per source', int('burst', 1, 10_000_000))
    .action(async (o) => {
      const { host, port } = parseHostPort(o.listen, true);
      const keys = (o.vendorKey as string[]).map((f) => loadPublicKey(readFileArg(f, 'vendor key').toString('utf8')));
      const agent = await NodeAgent.start({ nodeId: o.nodeId, vendorKeys: keys, host, port, stateDir: o.state, rateLimitPerSecond: o.rateLimit, rateLimitBurst: o.burst ?? o.rateLimit });
      const addr = agent.address();
      process.stderr.write(`mcg node: ${o.nodeId} admitting on udp ${addr.address}:${addr.port}, ledger ${o.state} (${agent.ledger.chains.size} chains)\n`);
      process.stdout.write(JSON.stringify({ listening: `${addr.address}:${addr.port}`, nodeId: o.nodeId }) + '\n');
      await stopOnSignal(() => agent.stop());
    });

  node
    .command('status')
    .description('show the allowance records in a node\'s ledger')
    .addOption(nodeStateOpt())
    .option('--json', 'machine-readable output')
    .action((o) => {
      if (!existsSync(o.state)) throw new RangeError(`no node state at ${o.state}; start a node with 'mcg node start --state ${o.state} ...'`);
      const rows = [...Ledger.read(o.state).values()].map((c) => ({
        chainId: c.chainIdHex,
        customer: c.token.customer,
        nodeId: c.token.nodeId,
        tokensSpent: 2 ** c.token.log2Length - c.lastIndex,
        tokensLeft: c.lastIndex,
        grantedMibSeconds: grantedMibSeconds(c),
        expiresUnix: c.token.expiresUnix,
      }));
      const lines = rows.map((r) => `${r.chainId}  ${r.customer.padEnd(16)} ${String(r.tokensSpent).padStart(10)} ${String(r.grantedMibSeconds).padStart(14)}`);
      out(o.json, rows, ['chain                             customer             spent  granted MiB*s', ...lines].join('\n'));
    });

  // --- grid users ----------------------------------------------------------
  program
    .command('pay')
    .description('pay a node with tokens (opens the chain with its boot token first if needed)')
    .requiredOption('--node <host:port>', 'node agent address')
    .requiredOption('--boot <file>', 'boot token file from the vendor')
    .requiredOption('--tokens <file>', 'tokens file from the vendor')
    .option('--count <k>', 'pay at most k tokens', int('count', 1, Number.MAX_SAFE_INTEGER))
    .option('--json', 'machine-readable output')
    .action(async (o) => {
      parseHostPort(o.node);
      const boot = readFileArg(o.boot, 'boot token');
      if (boot.length !== BOOT_TOKEN_BYTES) throw new RangeError(`boot token file ${o.boot} expected ${BOOT_TOKEN_BYTES} bytes, got ${boot.length}`);
      const tokens = readTokensFile(readFileArg(o.tokens, 'tokens').toString('utf8'));
      const client = await NodeClient.connect(o.node);
      try {
        const r = await client.pay(new Uint8Array(boot), tokens, o.count ?? Infinity, (n) => {
          if (!o.json && n % 100 === 0) progress(`\rpaid ${n}`);
        });
        out(o.json, r, `paid ${r.paid} tokens on chain ${r.chainId}: ${r.lastIndex} left, ${r.grantedMibSeconds} MiB*s granted`);
      } finally {
        await client.close();
      }
    });

  program
    .command('guest')
    .description('the guest OS image')
    .command('build')
    .description('build the guest kernel and initramfs (cached by input hash) and print where they are')
    .option('--overlay <dir>', 'extra files for /root in the guest')
    .action((o) => {
      const r = spawnSync('bash', [join(REPO_ROOT, 'guest-linux', 'build.sh'), ...(o.overlay ? ['--overlay', o.overlay] : [])], { stdio: 'inherit' });
      if (r.status !== 0) throw new Error('guest build failed (see above)');
    });

  const xen = program.command('xen').description('the Xen testbed: Xen 4.17 with a dom0 toolstack, booted in QEMU (guest-linux/xen)');
  xen
    .command('build')
    .description('build the testbed (Debian\'s Xen and dom0 kernel, a dom0 initramfs with xl; cached) and print where it is')
    .action(() => {
      process.stdout.write(buildXenTestbed().dir + '\n');
    });
  xen
    .command('run')
    .description('boot Xen + dom0 in QEMU, run a bash script in dom0 (the mcg guest kernel and initramfs are in /guest), power off; exits 0 if the script succeeded, 1 if not')
    .argument('<script>', 'bash script to run in dom0')
    .option('--timeout <seconds>', 'limit for the script', int('--timeout', 1, 86400), 1800)
    .option('--log-dir <dir>', 'where the serial log is kept', process.cwd())
    .option('--json', 'machine-readable result')
    .action(async (scriptPath: string, o) => {
      readFileArg(scriptPath, 'script');
      if (!existsSync(o.logDir)) throw new RangeError(`--log-dir not found: ${o.logDir}`);
      const guest = buildGuest();
      const r = await runXenScript(scriptPath, { bzImage: guest.kernel, 'initramfs.cpio.gz': guest.initrd }, o.logDir, o.timeout * 1000);
      out(o.json, r, `${r.output.join('\n')}\n[dom0 script exited ${r.status}; serial log: ${r.serialLog}]`);
      if (r.status !== 0) process.exitCode = EXIT.FAILURE;
    });
  xen
    .command('migrate')
    .description('one measured migration of the mcg guest between two PVH domains on the testbed (root: a private network namespace)')
    .addOption(new Option('--mode <mode>', 'self-migration (precopy, stopcopy) or dom0\'s managed xl migrate').choices(['precopy', 'stopcopy', 'xl']).default('precopy'))
    .option('--json', 'machine-readable result')
    .action(async (o) => {
      if (process.getuid?.() !== 0) throw new Error('the Xen migration testbed needs root (network namespace, taps)');
      const say = (line: string) => process.stderr.write(`xen: ${line}\n`);
      const r = await runXenMigration({ mode: o.mode as XenMode, guest: buildGuest(), xen: buildXenTestbed(), log: say });
      const { consoles: _consoles, ...result } = r;
      out(o.json, result, `${o.mode}: ${r.migrated ? 'migrated' : 'did NOT migrate'}; downtime ${r.probe.udp.maxGapMs.toFixed(0)} ms; ` +
        `total ${(r.totalMs / 1000).toFixed(1)} s; ${(r.bytes / 1e6).toFixed(1)} MB; workload: ${r.verify}; domains left: ${r.domains.join(', ') || 'none'}`);
      if (!r.migrated || !r.verify.startsWith('verify ok')) process.exitCode = EXIT.FAILURE;
    });

  program
    .command('demo')
    .description('the main job end to end: the token economy on loopback, then a running guest migrating itself between two QEMU VMs (root; builds the guest once)')
    .option('--no-guest', 'skip the self-migration part')
    .option('--json', 'machine-readable summary')
    .action(async (o) => {
      const say = (line: string) => process.stderr.write(line + '\n');
      const tokens = await runDemo(say);
      let migration: unknown;
      if (o.guest) {
        if (process.getuid?.() !== 0) throw new Error('the self-migration demo needs root (network namespaces, taps); run as root or pass --no-guest');
        say('\nguest: building (cached after the first time) ...');
        const guest = buildGuest();
        const r = await runMigration({ mode: 'precopy', guest, log: (l) => say(`guest: ${l}`) });
        const s = r.sourceStats as { rounds: { pages: number }[]; final_pages: number; total_bytes: number } | undefined;
        say(`guest: ${r.migrated ? 'migrated itself' : 'did NOT migrate'} in ${s?.rounds.length ?? 0} pre-copy rounds + a final round carrying ${r.image?.copied ?? '?'} changed pages of the ${r.image?.pages ?? '?'} in the image (${((s?.total_bytes ?? 0) / 1e6).toFixed(1)} MB sent in all)`);
        say(`guest: downtime seen from outside ${r.probe.udp.maxGapMs.toFixed(0)} ms; workload after migration: ${r.verify}; counters lost/repeated: ${r.probe.udp.missing + r.probe.tcp.missing}/${r.probe.udp.duplicates + r.probe.tcp.duplicates}; TCP connection kept: ${!r.probe.tcp.closed}; source powered off: ${!r.sourceRunning}`);
        migration = { migrated: r.migrated, downtimeMs: r.probe.udp.maxGapMs, verify: r.verify, rounds: s?.rounds.length, finalChangedPages: r.image?.copied, imagePages: r.image?.pages, bytes: s?.total_bytes, sourceRunning: r.sourceRunning, targetRunning: r.targetRunning };
        if (!r.migrated || !r.verify.startsWith('verify ok')) throw new Error('the guest did not migrate cleanly (see above)');
      }
      if (o.json) process.stdout.write(JSON.stringify({ tokens, migration }) + '\n');
    });

  return program;
}

async function stopOnSignal(stop: () => Promise<void> | void): Promise<void> {
  await new Promise<void>((resolve) => {
    const handler = () => resolve();
    process.once('SIGINT', handler);
    process.once('SIGTERM', handler);
  });
  await stop();
}

export function exitCodeFor(err: unknown): { code: number; message: string } {
  if (err instanceof CommanderError) return { code: err.exitCode === 0 ? 0 : EXIT.USAGE, message: '' };
  if (err instanceof VendorError) return { code: EXIT.STATE, message: err.message };
  if (err instanceof LockBusyError) return { code: EXIT.STATE, message: err.message };
  if (err instanceof PayError) return { code: err.code === 'TIMEOUT' ? EXIT.FAILURE : EXIT.REFUSED, message: err.message };
  if (err instanceof VendorHttpError) return { code: EXIT.REFUSED, message: err.message };
  if (err instanceof TypeError || err instanceof RangeError || err instanceof SyntaxError) return { code: EXIT.USAGE, message: err.message };
  const e = err as NodeJS.ErrnoException;
  if (e?.code === 'EADDRINUSE') return { code: EXIT.FAILURE, message: `address in use: ${e.message}` };
  return { code: EXIT.FAILURE, message: e?.message ?? String(err) };
}

export async function main(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv);
    return EXIT.OK;
  } catch (err) {
    const { code, message } = exitCodeFor(err);
    if (message) process.stderr.write(`mcg: ${message}\n`);
    return code;
  }
}

