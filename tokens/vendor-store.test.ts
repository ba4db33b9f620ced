import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VendorStore } from './vendor-store.js';
import { decodeBootToken, loadPublicKey, verifyBootTokenSignature, type BootToken } from './boot-token.js';
import { verifyToken, Verdict } from '../node-agent/verifier.js';
import { fromHex } from './_assert.js';

const dirs: string[] = [];
function fresh(): VendorStore {
  const d = mkdtempSync(join(tmpdir(), 'mcg-vendor-test-'));
  dirs.push(d);
  const s = new VendorStore(d).lock();
  s.init();
  return s;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const future = () => Math.floor(Date.now() / 1000) + 3600;

describe('vendor store', () => {
  it('mints a signed chain and releases tokens that verify in order, across restarts', () => {
    const s = fresh();
    const { chainId, bootToken } = s.mint({ customer: 'alice', nodeId: 'n1', log2Length: 12, mibSecondsPerToken: 10, expiresUnix: future() });
    const pub = loadPublicKey(readFileSync(s.publicKeyPath, 'utf8'));
    const token = decodeBootToken(bootToken.bytes) as BootToken;
    expect(verifyBootTokenSignature(token, pub)).toBe(true);
    let lastIndex = 4096;
    let lastValue = token.anchor;
    for (let round = 0; round < 5; round++) {
      s.unlock();
      const again = new VendorStore(s.dir).lock(); // a new process
      const { tokens } = again.release(chainId, 37);
      for (const t of tokens) {
        const v = fromHex(t.value, 32, 'v');
        expect(verifyToken(token.chainId, lastIndex, lastValue, t.index, v)).toBe(Verdict.OK);
        lastIndex = t.index;
        lastValue = v;
      }
      again.unlock();
      s.lock();
    }
    expect(s.chain(chainId)).toMatchObject({ released: 185, remaining: 4096 - 185 });
  });

  it('keeps every state file private and never writes the seed in the clear outside the chain file', () => {
    const s = fresh();
    s.mint({ customer: 'alice', nodeId: 'n1', log2Length: 4, mibSecondsPerToken: 1, expiresUnix: future() });
    for (const f of ['vendor-key.pem', ...readdirSync(join(s.dir, 'chains')).map((c) => join('chains', c))]) {
      expect({ f, mode: statSync(join(s.dir, f)).mode & 0o777 }).toEqual({ f, mode: 0o600 });
    }
    expect(statSync(s.dir).mode & 0o777).toBe(0o700);
  });

  it('refuses to release past the end of the chain and changes nothing', () => {
    const s = fresh();
    const { chainId } = s.mint({ customer: 'a', nodeId: 'n', log2Length: 3, mibSecondsPerToken: 1, expiresUnix: future() });
    s.release(chainId, 5);
    expect(() => s.release(chainId, 4)).toThrow('has 3 tokens left, asked for 4');
    expect(s.release(chainId, 3).tokens.map((t) => t.index)).toEqual([2, 1, 0]);
  });

  it('charges prepaid accounts, refuses without funds, and refunds nothing wrongly', () => {
    const s = fresh();
    const { apiKey } = s.createAccount('bob');
    expect(s.authenticate(apiKey)).toBe('bob');
    expect(s.authenticate('nope')).toBeUndefined();
    s.deposit('bob', 10);
    const { chainId } = s.mint({ customer: 'bob', nodeId: 'n', log2Length: 8, mibSecondsPerToken: 1, expiresUnix: future() });
    expect(s.buy('bob', chainId, 7).balanceTokens).toBe(3);
    expect(() => s.buy('bob', chainId, 4)).toThrow('has 3 token credits, needs 4');
    expect(s.balance('bob')).toBe(3);
    expect(s.chain(chainId).released).toBe(7);
  });

  it('rejects bad mint input with what was expected', () => {
    const s = fresh();
    expect(() => s.mint({ customer: '', nodeId: 'n', log2Length: 4, mibSecondsPerToken: 1, expiresUnix: future() })).toThrow('"customer" expected 1..32 UTF-8 bytes');
    expect(() => s.mint({ customer: 'a', nodeId: 'n', log2Length: 4, mibSecondsPerToken: 1, expiresUnix: 5 })).toThrow('"expiresUnix"');
    expect(() => s.release('zz', 1)).toThrow('is not a chain id');
    expect(s.list()).toEqual([]);
  });
});
