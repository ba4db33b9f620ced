// Admission: the happy path and every attack in the issue. Each bad datagram
// gets its specific error (or is dropped when an error reply would be larger
// than it), changes nothing in the ledger, and the agent keeps serving.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSocket, type Socket } from 'node:dgram';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NodeAgent } from './agent.js';
import { Ledger } from './ledger.js';
import { decodeReply, encodeRequest, ErrCode, ERR_NAMES, MSG_ERR_BYTES, type Reply, type Request } from './wire.js';
import { VendorStore, type TokensFile } from '../tokens/vendor-store.js';
import { encodeBootToken, vendorKeyId, loadPublicKey, type BootToken, decodeBootToken } from '../tokens/boot-token.js';
import { fromHex } from '../tokens/_assert.js';

let dir: string;
let vendor: VendorStore;
let agent: NodeAgent;
let sock: Socket;
let port: number;
let nowUnix = Math.floor(Date.now() / 1000);

interface Chain {
  boot: Uint8Array;
  token: BootToken;
  tokens: TokensFile;
}
function mint(nodeId = 'node-1', log2Length = 10): Chain {
  const { chainId, bootToken } = vendor.mint({ customer: 'alice', nodeId, log2Length, mibSecondsPerToken: 64, expiresUnix: nowUnix + 3600 });
  return { boot: bootToken.bytes, token: decodeBootToken(bootToken.bytes) as BootToken, tokens: vendor.release(chainId, 200) };
}
const pay = (c: Chain, i: number) => ({ index: c.tokens.tokens[i].index, value: fromHex(c.tokens.tokens[i].value, 32, 'v') });

let nextId = 1;
function raw(buf: Buffer, waitMs = 300): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      sock.off('message', on);
      resolve(undefined);
    }, waitMs);
    const on = (m: Buffer) => {
      clearTimeout(t);
      sock.off('message', on);
      resolve(m);
    };
    sock.on('message', on);
    sock.send(buf, port, '127.0.0.1');
  });
}
async function send(req: Omit<Request, 'requestId'>): Promise<Reply> {
  const requestId = nextId++;
  const r = decodeReply((await raw(encodeRequest({ ...req, requestId } as Request)))!);
  expect(r?.requestId).toBe(requestId);
  return r!;
}
const errName = (r: Reply | undefined) => (r?.type === 'ERR' ? ERR_NAMES[r.code] : r?.type);
const ledgerImage = () => readFileSync(join(dir, 'ledger.log')).toString('hex');

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mcg-agent-test-'));
  vendor = new VendorStore(join(dir, 'vendor')).lock();
  vendor.init();
  agent = await NodeAgent.start({
    nodeId: 'node-1',
    vendorKeys: [loadPublicKey(readFileSync(vendor.publicKeyPath, 'utf8'))],
    host: '127.0.0.1',
    port: 0,
    stateDir: join(dir, 'node'),
    nowUnix: () => nowUnix,
  });
  dir = join(dir, 'node');
  port = agent.address().port;
  sock = createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
});
afterAll(async () => {
  sock?.close();
  await agent?.stop();
  vendor?.unlock();
  rmSync(join(dir, '..'), { recursive: true, force: true });
});

describe('admission', () => {
  it('opens a chain with BOOT + first token, then accepts PAY in order; status shows the allowance', async () => {
    const c = mint();
    const boot = await send({ type: 'BOOT', token: c.boot, payment: pay(c, 0) });
    expect(boot).toMatchObject({ type: 'OK', lastIndex: 1023, grantedMibSeconds: 64 });
    for (let i = 1; i < 20; i++) expect(await send({ type: 'PAY', chainId: c.token.chainId, payment: pay(c, i) })).toMatchObject({ type: 'OK', lastIndex: 1023 - i });
    expect(await send({ type: 'STATUS', chainId: c.token.chainId })).toMatchObject({ type: 'OK', lastIndex: 1004, grantedMibSeconds: 20 * 64 });
    const rec = Ledger.read(dir).get(c.tokens.chainId)!;
    expect(rec.lastIndex).toBe(1004); // durable before the OK was sent
  });

  it('accepts a skip within the window (a lost datagram) and counts the skipped tokens', async () => {
    const c = mint();
    await send({ type: 'BOOT', token: c.boot, payment: pay(c, 0) });
    expect(await send({ type: 'PAY', chainId: c.token.chainId, payment: pay(c, 5) })).toMatchObject({ type: 'OK', lastIndex: 1018, grantedMibSeconds: 6 * 64 });
  });

  it('a resent BOOT (lost reply) continues the same chain', async () => {
    const c = mint();
    await send({ type: 'BOOT', token: c.boot, payment: pay(c, 0) });
    expect(await send({ type: 'BOOT', token: c.boot, payment: pay(c, 1) })).toMatchObject({ type: 'OK', lastIndex: 1022 });
  });
});

describe('attacks are refused with a specific code and change nothing', () => {
  let c: Chain;
  beforeAll(async () => {
    c = mint();
    await send({ type: 'BOOT', token: c.boot, payment: pay(c, 0) });
  });

  const refusedWithoutChange = async (datagram: Buffer, expected: string | undefined) => {
    const before = ledgerImage();
    const reply = await raw(datagram);
    expect(errName(reply ? decodeReply(reply) : undefined)).toBe(expected);
    if (reply) expect(reply.length).toBeLessThanOrEqual(datagram.length);
    expect(ledgerImage()).toBe(before);
  };
  const payDatagram = (p: { index: number; value: Uint8Array }, chainId = c.token.chainId) => encodeRequest({ type: 'PAY', requestId: nextId++, chainId, payment: p });

  it('truncated datagram', async () => {
    await refusedWithoutChange(payDatagram(pay(c, 1)).subarray(0, 40), 'TRUNCATED');
  });
  it('oversized datagram', async () => {
    await refusedWithoutChange(Buffer.concat([payDatagram(pay(c, 1)), Buffer.alloc(300)]), 'OVERSIZED');
  });
  it('garbage: bad magic', async () => {
    await refusedWithoutChange(randomBytes(64), 'BAD_MAGIC');
  });
  it('garbage smaller than an error reply is dropped silently', async () => {
    await refusedWithoutChange(randomBytes(MSG_ERR_BYTES - 1), undefined);
  });
  it('bad version and unknown type', async () => {
    const v = payDatagram(pay(c, 1));
    v[4] = 9;
    await refusedWithoutChange(v, 'BAD_VERSION');
    const t = payDatagram(pay(c, 1));
    t[5] = 0x7f;
    await refusedWithoutChange(t, 'BAD_TYPE');
  });
  it('replay of a spent token', async () => {
    await refusedWithoutChange(payDatagram(pay(c, 0)), 'REPLAY');
  });
  it('value from another chain', async () => {
    const other = mint();
    await refusedWithoutChange(payDatagram(pay(other, 1)), 'MISMATCH');
  });
  it('counterfeit value', async () => {
    await refusedWithoutChange(payDatagram({ index: 1022, value: new Uint8Array(randomBytes(32)) }), 'MISMATCH');
  });
  it('skip beyond the window', async () => {
    await refusedWithoutChange(payDatagram(pay(c, 18)), 'SKIP_TOO_FAR');
  });
  it('PAY on a chain that was never opened', async () => {
    const other = mint();
    await refusedWithoutChange(payDatagram(pay(other, 0), other.token.chainId), 'UNKNOWN_CHAIN');
  });
  it('boot token for another node', async () => {
    const other = mint('node-2');
    await refusedWithoutChange(encodeRequest({ type: 'BOOT', requestId: 1, token: other.boot, payment: pay(other, 0) }), 'WRONG_NODE');
  });
  it('boot token from an unknown vendor key', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const forged = encodeBootToken({ ...c.token, chainId: new Uint8Array(randomBytes(16)), vendorKeyId: vendorKeyId(publicKey) }, privateKey);
    await refusedWithoutChange(encodeRequest({ type: 'BOOT', requestId: 1, token: forged.bytes, payment: pay(c, 0) }), 'UNKNOWN_VENDOR_KEY');
  });
  it('boot token with a bad signature (a field changed after signing)', async () => {
    const other = mint();
    const tampered = other.boot.slice();
    tampered[88 + 7] ^= 0xff; // more MiB-seconds per token
    await refusedWithoutChange(encodeRequest({ type: 'BOOT', requestId: 1, token: tampered, payment: pay(other, 0) }), 'BAD_SIGNATURE');
  });
  it('first payment that does not hash to the anchor', async () => {
    const other = mint();
    await refusedWithoutChange(encodeRequest({ type: 'BOOT', requestId: 1, token: other.boot, payment: { index: 1023, value: new Uint8Array(32) } }), 'MISMATCH');
    expect(Ledger.read(dir).has(other.tokens.chainId)).toBe(false); // no state before a token verifies
  });
  it('expired boot token, and payments after expiry', async () => {
    const other = mint();
    const saved = nowUnix;
    nowUnix += 7200;
    try {
      await refusedWithoutChange(encodeRequest({ type: 'BOOT', requestId: 1, token: other.boot, payment: pay(other, 0) }), 'EXPIRED');
      await refusedWithoutChange(payDatagram(pay(c, 1)), 'EXPIRED');
    } finally {
      nowUnix = saved;
    }
  });
  it('malformed boot token and non-zero STATUS padding', async () => {
    const bad = c.boot.slice();
    bad[5] = 40; // chain length 2^40
    await refusedWithoutChange(encodeRequest({ type: 'BOOT', requestId: 1, token: bad, payment: pay(c, 1) }), 'MALFORMED');
    const st = encodeRequest({ type: 'STATUS', requestId: 1, chainId: c.token.chainId });
    st[63] = 1;
    await refusedWithoutChange(st, 'MALFORMED');
  });
  it('after all of that the agent still accepts the next genuine token', async () => {
    expect(await send({ type: 'PAY', chainId: c.token.chainId, payment: pay(c, 1) })).toMatchObject({ type: 'OK', lastIndex: 1022 });
    expect(agent.stats.refused.REPLAY).toBeGreaterThan(0);
  });
});

describe('flooding', () => {
  it('one source over its rate is refused (told once per second, then dropped); others are served', async () => {
    const fdir = mkdtempSync(join(tmpdir(), 'mcg-flood-'));
    const limited = await NodeAgent.start({
      nodeId: 'node-1', vendorKeys: [loadPublicKey(readFileSync(vendor.publicKeyPath, 'utf8'))], host: '127.0.0.1', port: 0,
      stateDir: fdir, rateLimitPerSecond: 20, rateLimitBurst: 20,
    });
    const flooder = createSocket('udp4');
    const replies: Buffer[] = [];
    flooder.on('message', (m) => replies.push(m));
    await new Promise<void>((r) => flooder.bind(0, '127.0.0.1', r));
    try {
      const st = encodeRequest({ type: 'STATUS', requestId: 5, chainId: new Uint8Array(16) });
      for (let i = 0; i < 500; i++) flooder.send(st, limited.address().port, '127.0.0.1');
      await new Promise((r) => setTimeout(r, 400));
      const codes = replies.map((m) => errName(decodeReply(m)));
      expect(codes.filter((c) => c === 'UNKNOWN_CHAIN').length).toBeLessThanOrEqual(30);
      expect(codes.filter((c) => c === 'RATE_LIMITED').length).toBe(1);
      expect(limited.stats.dropped).toBeGreaterThan(400);
      // A different source is not affected.
      port = limited.address().port;
      expect(errName(await send({ type: 'STATUS', chainId: new Uint8Array(16) }))).toBe('UNKNOWN_CHAIN');
    } finally {
      port = agent.address().port;
      flooder.close();
      await limited.stop();
      rmSync(fdir, { recursive: true, force: true });
    }
  });
});

export { ErrCode };
