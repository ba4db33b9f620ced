import { describe, expect, it } from 'vitest';
import { generateKeyPairSync } from 'node:crypto';
import { decodeBootToken, encodeBootToken, vendorKeyId, verifyBootTokenSignature, BOOT_TOKEN_BYTES, type BootToken } from './boot-token.js';

const { privateKey, publicKey } = generateKeyPairSync('ed25519');
const fields = {
  log2Length: 20,
  chainId: new Uint8Array(16).fill(0xab),
  customer: 'alice',
  nodeId: 'node-1',
  mibSecondsPerToken: 256,
  expiresUnix: 2_000_000_000,
  vendorKeyId: vendorKeyId(publicKey),
  anchor: new Uint8Array(32).fill(0xcd),
};

describe('boot token', () => {
  it('round-trips every field and verifies', () => {
    const t = encodeBootToken(fields, privateKey);
    expect(t.bytes.length).toBe(BOOT_TOKEN_BYTES);
    const d = decodeBootToken(t.bytes) as BootToken;
    expect({ ...d, bytes: undefined, signature: undefined }).toEqual({ ...fields, bytes: undefined, signature: undefined });
    expect(verifyBootTokenSignature(d, publicKey)).toBe(true);
  });

  it('rejects a signature after any signed byte changes', () => {
    const t = encodeBootToken(fields, privateKey);
    for (const offset of [5, 8, 24, 56, 88, 96, 104, 112, 143]) {
      const bytes = t.bytes.slice();
      bytes[offset] ^= 1;
      const d = decodeBootToken(bytes);
      if (typeof d === 'string') continue; // layout check caught it first
      expect({ offset, ok: verifyBootTokenSignature(d, publicKey) }).toEqual({ offset, ok: false });
    }
  });

  it('rejects another vendor\'s key', () => {
    const t = encodeBootToken(fields, privateKey);
    expect(verifyBootTokenSignature(decodeBootToken(t.bytes) as BootToken, generateKeyPairSync('ed25519').publicKey)).toBe(false);
  });

  it('names what is malformed', () => {
    const t = encodeBootToken(fields, privateKey).bytes;
    const with_ = (off: number, v: number) => {
      const b = t.slice();
      b[off] = v;
      return b;
    };
    expect(decodeBootToken(with_(0, 0))).toBe('bad-magic');
    expect(decodeBootToken(with_(4, 9))).toBe('bad-version');
    expect(decodeBootToken(with_(5, 33))).toBe('malformed');
    expect(decodeBootToken(with_(7, 1))).toBe('malformed');
    expect(decodeBootToken(with_(24, 0))).toBe('malformed'); // empty customer
    expect(() => decodeBootToken(t.subarray(1))).toThrow('"bootToken" expected Uint8Array of length 208, got length=207');
    expect(() => encodeBootToken({ ...fields, customer: 'x'.repeat(33) }, privateKey)).toThrow('"customer" expected 1..32 UTF-8 bytes');
  });
});
