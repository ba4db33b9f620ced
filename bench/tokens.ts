// `npm run bench -- tokens`: verifier throughput against raw SHA-256, the
// vendor's release cost across chain lengths, and UDP admission through a real
// agent process on loopback. Prints tables; --json adds one JSON line at the end.
import { createSocket } from 'node:dgram';
import { createHash, hash as oneShotHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { interruptSafeTempDir } from '../node-agent/on-interrupt.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadAddon } from '../native/addon.js';
import { chainWalk } from '../tokens/chain.js';
import { Pebbler } from '../tokens/pebbling.js';
import { VendorStore } from '../tokens/vendor-store.js';
import { fromHex } from '../tokens/_assert.js';
import { verifyToken } from '../node-agent/verifier.js';
import { decodeReply, encodeRequest } from '../node-agent/wire.js';
import { startAgentProcess } from '../orchestrator/agent-process.js';
import { machineLine, opsPerSecond, table } from './machine.js';

const addon = loadAddon();

function verifyThroughput() {
  const id = new Uint8Array(randomBytes(16));
  const v0 = new Uint8Array(randomBytes(32));
  const v1 = chainWalk(id, 99, 1, v0);
  const block = new Uint8Array(52);
  const rawNode = opsPerSecond(() => oneShotHash('sha256', block, 'buffer'));
  const rawNodeObj = opsPerSecond(() => createHash('sha256').update(block).digest());
  const steps = 2_000_000;
  const t0 = performance.now();
  addon.chainWalk(id, 0, steps, v0);
  const rawC = steps / ((performance.now() - t0) / 1000);
  const ts = opsPerSecond(() => verifyToken(id, 100, v1, 99, v0));
  const c = opsPerSecond(() => addon.chainVerify(id, 100, v1, 99, v0));
  const rows = [
    ['raw SHA-256, node:crypto one-shot (52 B)', rawNode, 1],
    ['raw SHA-256, node:crypto Hash object', rawNodeObj, rawNodeObj / rawNode],
    ['raw SHA-256, our C (in-C loop)', rawC, rawC / rawNode],
    ['verify 1 token: TS port (agent)', ts, ts / rawNode],
    ['verify 1 token: C via addon', c, c / rawNode],
  ] as const;
  console.log('\nVerify throughput (one token = one chain step + constant-time compare)');
  console.log(table(['what', 'ops/s', 'ratio to node:crypto SHA-256'], rows.map(([w, o, r]) => [w, Math.round(o).toLocaleString('en'), r.toFixed(2)])));
  return { rawNodeSha256: rawNode, rawCSha256: rawC, tsVerify: ts, cVerify: c, tsVerifyRatio: ts / rawNode };
}

function releaseCost() {
  // Positions as values: the schedule's hash count and storage do not depend on
  // the hash function, so chains up to 2^32 can be traversed without SHA-256 cost.
  const enc = (p: number) => {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setFloat64(0, p);
    return b;
  };
  const rows: (string | number)[][] = [];
  const out: Record<string, unknown>[] = [];
  for (const k of [10, 16, 20, 24, 32]) {
    const { pebbler } = Pebbler.mint(k, enc(0), (f, s) => enc(f + s), (i) => enc(i));
    const sample = Math.min(2 ** k, 2 ** 20);
    let max = 0;
    let maxStored = 0;
    for (let i = 0; i < sample; i++) {
      const before = pebbler.hashes;
      maxStored = Math.max(maxStored, pebbler.storedValues);
      pebbler.next();
      max = Math.max(max, pebbler.hashes - before);
    }
    const avg = pebbler.hashes / sample;
    rows.push([`2^${k}`, sample === 2 ** k ? 'all' : `first 2^20`, avg.toFixed(2), max, Math.ceil(k / 2), maxStored, k + 1]);
    out.push({ log2Length: k, sampled: sample, avgHashes: avg, maxHashes: max, maxStoredValues: maxStored });
  }
  // Real SHA-256 wall time for one chain of 2^20: mint in C, release in TS.
  const dir = mkdtempSync(join(tmpdir(), 'mcg-bench-vendor-'));
  const store = new VendorStore(dir).lock();
  store.init();
  let t0 = performance.now();
  const { chainId } = store.mint({ customer: 'b', nodeId: 'n', log2Length: 20, mibSecondsPerToken: 1, expiresUnix: Math.floor(Date.now() / 1000) + 60 });
  const mintMs = performance.now() - t0;
  t0 = performance.now();
  store.release(chainId, 100_000);
  const releaseUs = ((performance.now() - t0) * 1000) / 100_000;
  store.unlock();
  rmSync(dir, { recursive: true, force: true });
  console.log('\nVendor release cost (optimal binary pebbling; bound: ceil(k/2) hashes, k+1 values)');
  console.log(table(['chain', 'released', 'avg hashes/token', 'max', 'bound', 'max stored values', 'bound'], rows));
  console.log(`2^20 chain with SHA-256: mint ${mintMs.toFixed(0)} ms (2^20 hashes in C); release of 100,000 tokens ${releaseUs.toFixed(2)} us/token incl. one durable state write`);
  return { chains: out, mint2p20Ms: mintMs, releaseUsPerToken: releaseUs };
}

async function admission() {
  const CHAINS = 32;
  const WINDOW = 16;
  const PER_CHAIN = 4000;
  const tmp = interruptSafeTempDir(join(tmpdir(), 'mcg-bench-node-'));
  const dir = tmp.path;
  const store = new VendorStore(join(dir, 'vendor')).lock();
  store.init();
  const chains = [];
  for (let i = 0; i < CHAINS; i++) {
    const { chainId, bootToken } = store.mint({ customer: `c${i}`, nodeId: 'n', log2Length: 13, mibSecondsPerToken: 1, expiresUnix: Math.floor(Date.now() / 1000) + 600 });
    const t = store.release(chainId, PER_CHAIN).tokens.map((x) => ({ index: x.index, value: fromHex(x.value, 32, 'v') }));
    chains.push({ boot: bootToken.bytes, id: bootToken.chainId, tokens: t });
  }
  store.unlock();
  const agent = await startAgentProcess(['--node-id', 'n', '--vendor-key', store.publicKeyPath, '--state', join(dir, 'node'), '--rate-limit', '0']);
  const port = Number(agent.address.split(':')[1]);
  const sock = createSocket({ type: 'udp4', recvBufferSize: 4 << 20, sendBufferSize: 4 << 20 });
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  const waiting = new Map<number, { t0: number; resolve: (ok: boolean) => void }>();
  const latencies: number[] = [];
  sock.on('message', (m) => {
    const r = decodeReply(m);
    const w = r && waiting.get(r.requestId);
    if (!w) return;
    waiting.delete(r!.requestId);
    latencies.push(performance.now() - w.t0);
    w.resolve(r!.type === 'OK');
  });
  let id = 1;
  const send = (req: Parameters<typeof encodeRequest>[0]) =>
    new Promise<boolean>((resolve) => {
      waiting.set(req.requestId, { t0: performance.now(), resolve });
      sock.send(encodeRequest(req), port, '127.0.0.1');
    });
  // Open every chain, then measure PAY only.
  await Promise.all(chains.map((c) => send({ type: 'BOOT', requestId: id++, token: c.boot, payment: c.tokens[0] })));
  latencies.length = 0;
  let accepted = 0;
  const t0 = performance.now();
  await Promise.all(
    chains.map(async (c) => {
      for (let i = 1; i < PER_CHAIN; i += WINDOW) {
        const oks = await Promise.all(c.tokens.slice(i, i + WINDOW).map((p) => send({ type: 'PAY', requestId: id++, chainId: c.id, payment: p })));
        accepted += oks.filter(Boolean).length;
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  sock.close();
  await agent.stop();
  tmp.remove();
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))];
  const rate = accepted / seconds;
  console.log(`\nUDP admission on loopback: agent process (fdatasync per batch) and one client process, ${CHAINS} chains x ${WINDOW} in flight`);
  console.log(table(['payments accepted', 'seconds', 'payments/s', 'p50 ms', 'p99 ms', 'goal'], [[accepted, seconds.toFixed(2), Math.round(rate).toLocaleString('en'), pct(50).toFixed(2), pct(99).toFixed(2), '>= 50,000/s']]));
  return { accepted, paymentsPerSecond: rate, p50Ms: pct(50), p99Ms: pct(99) };
}

export async function benchTokens(json: boolean): Promise<void> {
  console.log(`mcg token benchmarks\n${machineLine()}`);
  const verify = verifyThroughput();
  const release = releaseCost();
  const runs = [];
  for (let i = 0; i < 3; i++) runs.push(await admission());
  const median = [...runs].sort((a, b) => a.paymentsPerSecond - b.paymentsPerSecond)[1];
  console.log(`\nUDP admission, median of 3 runs: ${Math.round(median.paymentsPerSecond).toLocaleString('en')} payments/s (goal >= 50,000/s: ${median.paymentsPerSecond >= 50_000 ? 'met' : 'NOT met'}); p50 ${median.p50Ms.toFixed(2)} ms, p99 ${median.p99Ms.toFixed(2)} ms`);
  if (json) console.log(JSON.stringify({ verify, release, udp: { runs, median } }));
}


