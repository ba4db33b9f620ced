// Randomized differential test: the TS port and the C reference (through the
// addon) must agree on every walk and every verdict, good tokens and bad.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { createHash } from 'node:crypto';
import { loadAddon } from '../native/addon.js';
import { chainStep, chainWalk, CHAIN_MAX_INDEX, CHAIN_MAX_SKIP } from './chain.js';
import { verifyToken } from '../node-agent/verifier.js';

const addon = loadAddon();
const bytes = (n: number) => fc.uint8Array({ minLength: n, maxLength: n });

describe('chain construction', () => {
  it('one step is SHA-256(chain_id || be32(index) || prev), per docs/tokens.md', () => {
    const id = new Uint8Array(16).fill(1);
    const prev = new Uint8Array(32).fill(2);
    const input = Buffer.concat([id, Buffer.from([0, 0, 1, 0]), prev]);
    expect(Buffer.from(chainStep(id, 256, prev))).toEqual(createHash('sha256').update(input).digest());
  });

  it('the salt makes the same value hash differently per chain and per index', () => {
    const v = new Uint8Array(32);
    const a = Buffer.from(chainStep(new Uint8Array(16), 1, v)).toString('hex');
    expect(Buffer.from(chainStep(new Uint8Array(16), 2, v)).toString('hex')).not.toBe(a);
    expect(Buffer.from(chainStep(new Uint8Array(16).fill(1), 1, v)).toString('hex')).not.toBe(a);
  });

  it('rejects bad input at the boundary with what was expected', () => {
    expect(() => chainWalk(new Uint8Array(15), 0, 1, new Uint8Array(32))).toThrow('"chainId" expected Uint8Array of length 16, got length=15');
    expect(() => chainWalk(new Uint8Array(16), -1, 1, new Uint8Array(32))).toThrow(RangeError);
    expect(() => addon.chainWalk(new Uint8Array(16), 0, 1, new Uint8Array(31))).toThrow('"value" expected Uint8Array of length 32, got length=31');
  });
});

describe('differential: TS port vs C reference', () => {
  it('walks agree', () => {
    fc.assert(
      fc.property(bytes(16), bytes(32), fc.integer({ min: 0, max: CHAIN_MAX_INDEX - 40 }), fc.integer({ min: 0, max: 40 }), (id, v, from, steps) => {
        expect(Buffer.from(chainWalk(id, from, steps, v))).toEqual(addon.chainWalk(id, from, steps, v));
      }),
      { numRuns: 300 },
    );
  });

  it('verdicts agree on genuine, replayed, skipped and forged tokens', () => {
    const seen = new Set<number>();
    fc.assert(
      fc.property(
        bytes(16), bytes(32), fc.integer({ min: 0, max: 2 ** 31 }), fc.integer({ min: 1, max: 24 }), fc.integer({ min: -3, max: 3 }), fc.boolean(), bytes(32),
        (id, base, at, distance, shift, forge, junk) => {
          const lastIndex = at + distance;
          const lastValue = chainWalk(id, at, distance, base);
          const index = Math.max(0, at + shift);
          const value = forge ? junk : chainWalk(id, at, index - at >= 0 ? index - at : 0, base);
          const ts = verifyToken(id, lastIndex, lastValue, index, value);
          const c = addon.chainVerify(id, lastIndex, lastValue, index, value);
          seen.add(ts);
          expect(ts).toBe(c);
          if (!forge && index < lastIndex && lastIndex - index <= CHAIN_MAX_SKIP && index >= at) expect(ts).toBe(0);
        },
      ),
      { numRuns: 2000 },
    );
    expect(seen).toEqual(new Set([0, 1, 2, 3]));
  });
});
