// The C core against the shared vectors (through the selftest binary and the
// addon), and the C wire layout against its TS mirror.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadAddon, REPO_ROOT } from './addon.js';
import { fromHex } from '../tokens/_assert.js';
import { chainWalk, CHAIN_ID_BYTES, CHAIN_MAX_LOG2_LENGTH, CHAIN_MAX_SKIP, CHAIN_VALUE_BYTES } from '../tokens/chain.js';
import { verifyToken } from '../node-agent/verifier.js';
import { BOOT_OFFSETS, BOOT_TOKEN_BYTES, BOOT_TOKEN_SIGNED_BYTES, NAME_BYTES, WIRE_VERSION } from '../tokens/boot-token.js';
import * as wire from '../node-agent/wire.js';

interface Vectors {
  walk: { chainId: string; from: number; steps: number; value: string; expected: string }[];
  verify: { name: string; chainId: string; lastIndex: number; lastValue: string; index: number; value: string; verdict: number }[];
}
const vectors = JSON.parse(readFileSync(join(REPO_ROOT, 'native/test/vectors/chain.json'), 'utf8')) as Vectors;
const addon = loadAddon();
const b = (hex: string, n: number) => fromHex(hex, n, 'vector');

describe('shared chain vectors', () => {
  it('the C selftest binary passes every vector and the SHA-256 known answers', () => {
    const lines = [
      ...vectors.walk.map((v) => `walk ${v.chainId} ${v.from} ${v.steps} ${v.value} ${v.expected}`),
      ...vectors.verify.map((v) => `verify ${v.chainId} ${v.lastIndex} ${v.lastValue} ${v.index} ${v.value} ${v.verdict}`),
    ];
    const r = spawnSync(join(REPO_ROOT, 'native/build/mcg_core_selftest'), { input: lines.join('\n') + '\n', encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe(`${lines.length + 10} passed, 0 failed`);
    expect(r.status).toBe(0);
  });

  it('the C selftest fails a wrong vector (it can fail)', () => {
    const v = vectors.walk[3];
    const wrong = v.expected.replace(/^./, (c) => (c === '0' ? '1' : '0'));
    const r = spawnSync(join(REPO_ROOT, 'native/build/mcg_core_selftest'), { input: `walk ${v.chainId} ${v.from} ${v.steps} ${v.value} ${wrong}\n`, encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stdout.trim()).toBe("10 passed, 1 failed");
  });

  it.each(vectors.walk)('walk from $from by $steps: TS and addon agree with the vector', (v) => {
    const id = b(v.chainId, CHAIN_ID_BYTES);
    const value = b(v.value, CHAIN_VALUE_BYTES);
    expect(Buffer.from(chainWalk(id, v.from, v.steps, value)).toString('hex')).toBe(v.expected);
    expect(addon.chainWalk(id, v.from, v.steps, value).toString('hex')).toBe(v.expected);
  });

  it.each(vectors.verify)('verify "$name": TS and addon give verdict $verdict', (v) => {
    const args = [b(v.chainId, 16), v.lastIndex, b(v.lastValue, 32), v.index, b(v.value, 32)] as const;
    expect(verifyToken(...args)).toBe(v.verdict);
    expect(addon.chainVerify(...args)).toBe(v.verdict);
  });

  it('vectors cover every verdict', () => {
    expect(new Set(vectors.verify.map((v) => v.verdict))).toEqual(new Set([0, 1, 2, 3]));
  });
});

describe('wire layout: C header and TS mirror', () => {
  const L = addon.layout;
  it('chain constants match', () => {
    expect([L.CHAIN_ID_BYTES, L.CHAIN_VALUE_BYTES, L.CHAIN_MAX_SKIP, L.CHAIN_MAX_LOG2_LENGTH]).toEqual([CHAIN_ID_BYTES, CHAIN_VALUE_BYTES, CHAIN_MAX_SKIP, CHAIN_MAX_LOG2_LENGTH]);
  });
  it('boot token sizes and offsets match', () => {
    expect([L.BOOT_TOKEN_BYTES, L.BOOT_TOKEN_SIGNED_BYTES, L.NAME_BYTES, L.WIRE_VERSION]).toEqual([BOOT_TOKEN_BYTES, BOOT_TOKEN_SIGNED_BYTES, NAME_BYTES, WIRE_VERSION]);
    for (const f of ['log2_length', 'chain_id', 'customer', 'node_id', 'mib_seconds_per_token', 'expires_unix', 'vendor_key_id', 'anchor', 'signature'] as const) {
      expect({ f, at: L[`boot.${f}`] }).toEqual({ f, at: BOOT_OFFSETS[f] });
    }
  });
  it('datagram sizes, offsets, types and error codes match', () => {
    expect([L.MSG_HEADER_BYTES, L.MSG_BOOT_BYTES, L.MSG_PAY_BYTES, L.MSG_STATUS_BYTES, L.MSG_OK_BYTES, L.MSG_ERR_BYTES, L.MAX_DATAGRAM_BYTES]).toEqual([
      wire.MSG_HEADER_BYTES, wire.MSG_BOOT_BYTES, wire.MSG_PAY_BYTES, wire.MSG_STATUS_BYTES, wire.MSG_OK_BYTES, wire.MSG_ERR_BYTES, wire.MAX_DATAGRAM_BYTES,
    ]);
    expect([L['pay.chain_id'], L['pay.payment'], L['boot.payment']]).toEqual([12, 28, 12 + BOOT_TOKEN_BYTES]);
    expect([L['ok.last_index'], L['ok.granted_mib_seconds'], L['ok.expires_unix'], L['err.code'], L['err.chain_id']]).toEqual([28, 36, 44, 12, 16]);
    for (const [name, v] of Object.entries(wire.MsgType)) expect({ name, v: L[`MSG_${name}`] }).toEqual({ name, v });
    for (const [name, v] of Object.entries(wire.ErrCode)) expect({ name, v: L[`ERR_${name}`] }).toEqual({ name, v });
  });
  it('encoded replies put fields where the C structs have them', () => {
    const ok = wire.encodeReply({ type: 'OK', requestId: 7, chainId: new Uint8Array(16).fill(9), lastIndex: 0x01020304, grantedMibSeconds: 5, expiresUnix: 6 });
    expect(ok.length).toBe(L.MSG_OK_BYTES);
    expect(ok.readUInt32BE(L['ok.last_index'])).toBe(0x01020304);
    expect(ok.readBigUInt64BE(L['ok.granted_mib_seconds'])).toBe(5n);
    expect(ok.readBigUInt64BE(L['ok.expires_unix'])).toBe(6n);
    expect(ok[L['header.type']]).toBe(L.MSG_OK);
    expect(ok.readUInt32BE(L['header.request_id'])).toBe(7);
  });
});
