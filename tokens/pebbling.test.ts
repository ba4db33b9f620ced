// Properties of the vendor's traversal: every released value verifies against
// the previous one, in spending order; storage and per-token cost stay within
// the optimal-binary-pebbling bounds; a persisted state resumes exactly.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { randomBytes } from 'node:crypto';
import { Pebbler } from './pebbling.js';
import { chainStep, chainWalk } from './chain.js';
import { verifyToken, Verdict } from '../node-agent/verifier.js';

/** A counting chain whose values encode their position: checks order cheaply for large k. */
function positionalChain() {
  const enc = (p: number) => {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setFloat64(0, p);
    return b;
  };
  const dec = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, 8).getFloat64(0);
  const step = (i: number, prev: Uint8Array) => {
    if (dec(prev) !== i - 1) throw new Error(`step ${i} fed v[${dec(prev)}]`);
    return enc(i);
  };
  const walk = (from: number, steps: number, v: Uint8Array) => {
    if (dec(v) !== from) throw new Error('walk from the wrong value');
    return enc(from + steps);
  };
  return { enc, dec, step, walk };
}

describe('pebbling traversal', () => {
  it.each([1, 2, 3, 5, 8, 11, 14])('k=%i: releases n-1..0 in order with <= ceil(k/2) hashes and <= k+1 values each', (k) => {
    const c = positionalChain();
    const { pebbler, anchor } = Pebbler.mint(k, c.enc(0), c.walk, c.step);
    expect(c.dec(anchor)).toBe(2 ** k);
    let maxHashes = 0;
    let maxStored = 0;
    for (let i = 2 ** k - 1; i >= 0; i--) {
      const before = pebbler.hashes;
      maxStored = Math.max(maxStored, pebbler.storedValues);
      const r = pebbler.next();
      expect(r.index).toBe(i);
      expect(c.dec(r.value)).toBe(i);
      maxHashes = Math.max(maxHashes, pebbler.hashes - before);
    }
    expect(maxHashes).toBeLessThanOrEqual(Math.ceil(k / 2));
    expect(maxStored).toBeLessThanOrEqual(k + 1);
    expect(pebbler.remaining).toBe(0);
    expect(() => pebbler.next()).toThrow('chain exhausted');
  });

  it('with real SHA-256: every released token verifies against the one before it, starting at the anchor', () => {
    const id = new Uint8Array(randomBytes(16));
    const seed = new Uint8Array(randomBytes(32));
    const k = 9;
    const { pebbler, anchor } = Pebbler.mint(k, seed, (f, s, v) => chainWalk(id, f, s, v), (i, p) => chainStep(id, i, p));
    expect(Buffer.from(anchor)).toEqual(Buffer.from(chainWalk(id, 0, 2 ** k, seed)));
    let lastIndex = 2 ** k;
    let lastValue = anchor;
    while (pebbler.remaining > 0) {
      const t = pebbler.next();
      expect(verifyToken(id, lastIndex, lastValue, t.index, t.value)).toBe(Verdict.OK);
      lastIndex = t.index;
      lastValue = t.value;
    }
    expect(lastIndex).toBe(0);
    expect(Buffer.from(lastValue)).toEqual(Buffer.from(seed));
  });

  it('a snapshot taken at any point resumes with the same sequence', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 10 }), fc.nat(), (k, cut) => {
        const c = positionalChain();
        const { pebbler } = Pebbler.mint(k, c.enc(0), c.walk, c.step);
        const at = cut % 2 ** k;
        for (let i = 0; i < at; i++) pebbler.next();
        const resumed = Pebbler.restore(JSON.parse(JSON.stringify(pebbler.snapshot(), (_, v) => (v instanceof Uint8Array ? Array.from(v) : v)), (_, v) => (Array.isArray(v) && v.length === 8 && v.every((x) => typeof x === 'number') ? new Uint8Array(v) : v)), c.step);
        while (pebbler.remaining > 0) {
          const a = pebbler.next();
          const b = resumed.next();
          expect(b.index).toBe(a.index);
          expect(c.dec(b.value)).toBe(c.dec(a.value));
        }
      }),
      { numRuns: 60 },
    );
  });

  it('k=32 (2^32 tokens): the first 2^16 releases stay within 16 hashes and 33 values', () => {
    const c = positionalChain();
    const { pebbler } = Pebbler.mint(32, c.enc(0), c.walk, c.step);
    let maxHashes = 0;
    for (let i = 0; i < 2 ** 16; i++) {
      const before = pebbler.hashes;
      expect(pebbler.next().index).toBe(2 ** 32 - 1 - i);
      maxHashes = Math.max(maxHashes, pebbler.hashes - before);
      expect(pebbler.storedValues).toBeLessThanOrEqual(33);
    }
    expect(maxHashes).toBeLessThanOrEqual(16);
  });

  it('rejects a chain length out of range', () => {
    const c = positionalChain();
    expect(() => Pebbler.mint(0, c.enc(0), c.walk, c.step)).toThrow('"log2Length" expected integer in [1, 32], got 0');
    expect(() => Pebbler.mint(33, c.enc(0), c.walk, c.step)).toThrow(RangeError);
  });
});
