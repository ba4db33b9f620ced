// The mcg command as a user runs it: real processes, documented exit codes,
// errors as one line without a stack trace, --json with only JSON on stdout.
import { afterAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MCG_BIN, startAgentProcess, type AgentProcess } from './agent-process.js';

const dir = mkdtempSync(join(tmpdir(), 'mcg-cli-'));
const agents: AgentProcess[] = [];
afterAll(async () => {
  for (const a of agents) await a.stop('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

function mcg(...args: string[]) {
  const r = spawnSync(process.execPath, [MCG_BIN, ...args], { encoding: 'utf8', env: { ...process.env, MCG_VENDOR_STATE: join(dir, 'default-vendor') } });
  return { code: r.status, out: r.stdout, err: r.stderr };
}
const noStack = (s: string) => expect(s).not.toMatch(/\n\s+at /);

describe('mcg CLI', () => {
  it('--help names every role command and the exit codes', () => {
    const r = mcg('--help');
    expect(r.code).toBe(0);
    for (const c of ['vendor', 'node', 'pay', 'guest', 'xen', 'demo', 'Exit codes']) expect(r.out).toContain(c);
  });

  it('the Xen testbed commands refuse bad input before booting anything', () => {
    const missing = mcg('xen', 'run', join(dir, 'no-such-script.sh'));
    expect(missing.code).toBe(2);
    expect(missing.err).toContain('script file not found');
    noStack(missing.err);
    const mode = mcg('xen', 'migrate', '--mode', 'teleport');
    expect(mode.code).toBe(2);
    expect(mode.err).toContain('teleport');
    expect(mcg('xen', '--help').out).toMatch(/build[\s\S]*run[\s\S]*migrate/);
  });

  it('bad usage exits 2 with one line and no stack', () => {
    const r = mcg('vendor', 'mint', '--state', join(dir, 'v'), '--customer', 'a', '--node', 'n', '--log2-length', '40', '--out', join(dir, 'b'));
    expect(r.code).toBe(2);
    expect(r.err).toContain('"log2-length" expected integer in [1, 32], got 40');
    noStack(r.err);
    expect(mcg('frobnicate').code).toBe(2);
  });

  it('a vendor that was never initialized exits 3 and says which command fixes it', () => {
    const r = mcg('vendor', 'mint', '--state', join(dir, 'nothing'), '--customer', 'a', '--node', 'n', '--out', join(dir, 'b'));
    expect(r.code).toBe(3);
    expect(r.err).toContain("run 'mcg vendor init --state");
    noStack(r.err);
  });

  it('vendor init, mint, release; node start; pay; node status; a second pay of the same tokens pays nothing', async () => {
    const v = join(dir, 'vendor');
    const init = JSON.parse(mcg('vendor', 'init', '--state', v, '--json').out);
    expect(init.keyId).toMatch(/^[0-9a-f]{16}$/);
    expect(mcg('vendor', 'init', '--state', v).code).toBe(3);
    const mint = JSON.parse(mcg('vendor', 'mint', '--state', v, '--customer', 'alice', '--node', 'n1', '--log2-length', '12', '--out', join(dir, 'boot.tok'), '--json').out);
    expect(statSync(join(dir, 'boot.tok')).size).toBe(208);
    const rel = mcg('vendor', 'release', '--state', v, '--chain', mint.chainId, '--count', '50', '--out', join(dir, 'tokens.json'), '--json');
    expect(JSON.parse(rel.out)).toMatchObject({ count: 50, firstIndex: 4095, lastIndex: 4046 });
    expect(statSync(join(dir, 'tokens.json')).mode & 0o777).toBe(0o600);
    const list = JSON.parse(mcg('vendor', 'list', '--state', v, '--json').out);
    expect(list).toMatchObject([{ chainId: mint.chainId, released: 50, length: 4096 }]);
    expect(readFileSync(join(dir, 'tokens.json'), 'utf8')).not.toContain(readFileSync(join(v, 'vendor-key.pem'), 'utf8').slice(30, 60));

    const agent = await startAgentProcess(['--node-id', 'n1', '--vendor-key', init.publicKeyPath, '--state', join(dir, 'node')]);
    agents.push(agent);
    const pay = await runAsync(['pay', '--node', agent.address, '--boot', join(dir, 'boot.tok'), '--tokens', join(dir, 'tokens.json'), '--count', '30', '--json']);
    expect(pay.code).toBe(0);
    expect(JSON.parse(pay.out)).toMatchObject({ paid: 30, lastIndex: 4066, grantedMibSeconds: 30 * 256 });
    const rest = await runAsync(['pay', '--node', agent.address, '--boot', join(dir, 'boot.tok'), '--tokens', join(dir, 'tokens.json'), '--json']);
    expect(JSON.parse(rest.out)).toMatchObject({ paid: 20, lastIndex: 4046 });
    const again = await runAsync(['pay', '--node', agent.address, '--boot', join(dir, 'boot.tok'), '--tokens', join(dir, 'tokens.json'), '--json']);
    expect(JSON.parse(again.out)).toMatchObject({ paid: 0, lastIndex: 4046 });
    const status = JSON.parse(mcg('node', 'status', '--state', join(dir, 'node'), '--json').out);
    expect(status).toEqual([expect.objectContaining({ chainId: mint.chainId, customer: 'alice', tokensSpent: 50, grantedMibSeconds: 50 * 256 })]);

    // A second agent on the same ledger is refused: one writer per ledger.
    const second = mcg('node', 'start', '--node-id', 'n1', '--vendor-key', init.publicKeyPath, '--state', join(dir, 'node'), '--listen', '127.0.0.1:0');
    expect(second.code).toBe(3);
    expect(second.err).toContain('in use by process');
  });

  it('pay refuses a boot token file of the wrong size and a malformed node address', async () => {
    const r = mcg('pay', '--node', '127.0.0.1:9', '--boot', join(dir, 'tokens.json'), '--tokens', join(dir, 'tokens.json'));
    expect(r.code).toBe(2);
    expect(r.err).toContain('expected 208 bytes');
    noStack(r.err);
    expect(mcg('pay', '--node', 'nowhere', '--boot', 'x', '--tokens', 'y').err).toContain('expected HOST:PORT');
  });

  it('demo --json prints one JSON object on stdout and refuses every attack', async () => {
    const r = await runAsync(['demo', '--no-guest', '--json']);
    expect(r.code).toBe(0);
    const summary = JSON.parse(r.out).tokens;
    expect(summary.paid).toBe(500);
    expect(summary.refused).toEqual({ 'replay of a spent token': 'REPLAY', 'counterfeit token': 'MISMATCH', 'token minted for another node': 'WRONG_NODE' });
    expect(summary.afterRestart.replay).toBe('REPLAY');
  });
});

function runAsync(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [MCG_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('exit', (code) => resolve({ code, out, err }));
  });
}
