// Crash safety of the spend ledger with a real agent process: payments flow
// from several pipelined clients while the agent is killed with SIGKILL at
// random moments and restarted on the same state. Afterwards: no token was
// acknowledged twice (no double spend) and every acknowledged token is still
// recorded as spent (none lost), and replays of acknowledged tokens are refused.
import { afterAll, describe, expect, it } from 'vitest';
import { createSocket } from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VendorStore, type TokensFile } from '../tokens/vendor-store.js';
import { fromHex } from '../tokens/_assert.js';
import { decodeReply, encodeRequest, ErrCode } from './wire.js';
import { startAgentProcess, type AgentProcess } from '../orchestrator/agent-process.js';

const CHAINS = 4;
const TOKENS_PER_CHAIN = 4000;
const WINDOW = 8;
const MAX_RUNS = 40;

const dir = mkdtempSync(join(tmpdir(), 'mcg-crash-'));
let agent: AgentProcess | undefined;
afterAll(async () => {
  await agent?.stop('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

interface ChainRun {
  chainId: Uint8Array;
  boot: Uint8Array;
  tokens: TokensFile['tokens'];
  acks: Map<number, number>; // index -> OKs received
  lowestAck: number;
  /** Where the node says the chain stands (spent whether or not we saw the OK). */
  spentTo: number;
}

describe('ledger crash safety', () => {
  it('SIGKILL at random moments during thousands of payments: zero double spends, zero lost acknowledged tokens', async () => {
    const vendor = new VendorStore(join(dir, 'vendor')).lock();
    vendor.init();
    const chains: ChainRun[] = [];
    for (let i = 0; i < CHAINS; i++) {
      const { chainId, bootToken } = vendor.mint({ customer: `c${i}`, nodeId: 'n1', log2Length: 13, mibSecondsPerToken: 1, expiresUnix: Math.floor(Date.now() / 1000) + 3600 });
      chains.push({ chainId: bootToken.chainId, boot: bootToken.bytes, tokens: vendor.release(chainId, TOKENS_PER_CHAIN).tokens, acks: new Map(), lowestAck: 8192, spentTo: 8192 });
    }
    vendor.unlock();
    const args = ['--node-id', 'n1', '--vendor-key', vendor.publicKeyPath, '--state', join(dir, 'node'), '--rate-limit', '0'];
    const sock = createSocket('udp4');
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
    const waiting = new Map<number, (m: ReturnType<typeof decodeReply>) => void>();
    sock.on('message', (m) => {
      const r = decodeReply(m);
      if (r) waiting.get(r.requestId)?.(r);
    });
    let reqId = 1;
    const ask = (port: number, req: Parameters<typeof encodeRequest>[0] extends infer R ? Omit<R & object, 'requestId'> : never, timeoutMs = 300) =>
      new Promise<ReturnType<typeof decodeReply>>((resolve) => {
        const id = reqId++;
        const t = setTimeout(() => {
          waiting.delete(id);
          resolve(undefined);
        }, timeoutMs);
        waiting.set(id, (r) => {
          clearTimeout(t);
          waiting.delete(id);
          resolve(r);
        });
        sock.send(encodeRequest({ ...(req as object), requestId: id } as never), port, '127.0.0.1');
      });

    let kills = 0;
    let replaysRefused = 0;
    for (let run = 0; run < MAX_RUNS && chains.some((c) => c.spentTo > 8192 - TOKENS_PER_CHAIN); run++) {
      agent = await startAgentProcess(args);
      const port = Number(agent.address.split(':')[1]);
      // What the durable ledger says must cover every OK we have ever seen.
      for (const c of chains) {
        const st = await ask(port, { type: 'STATUS', chainId: c.chainId }, 2000);
        if (c.acks.size === 0) {
          expect(st?.type === 'ERR' ? st.code : -1).toBe(ErrCode.UNKNOWN_CHAIN);
          continue;
        }
        expect(st?.type).toBe('OK');
        if (st?.type === 'OK') {
          expect(st.lastIndex).toBeLessThanOrEqual(c.lowestAck);
          c.spentTo = st.lastIndex;
        }
        // Replaying an acknowledged token is refused after the restart.
        const t = c.tokens.find((x) => x.index === c.lowestAck)!;
        const replay = await ask(port, { type: 'PAY', chainId: c.chainId, payment: { index: t.index, value: fromHex(t.value, 32, 'v') } }, 2000);
        expect(replay?.type === 'ERR' ? replay.code : -1).toBe(ErrCode.REPLAY);
        replaysRefused++;
      }
      const killAfterMs = 20 + Math.random() * 150;
      const killer = setTimeout(() => {
        kills++;
        agent!.child.kill('SIGKILL');
      }, killAfterMs);
      await Promise.all(
        chains.map(async (c) => {
          let next = c.tokens.findIndex((t) => t.index < c.spentTo);
          let opened = c.acks.size > 0;
          while (next !== -1 && next < c.tokens.length && agent!.child.exitCode === null && agent!.child.signalCode === null) {
            const batch = c.tokens.slice(next, next + (opened ? WINDOW : 1));
            const replies = await Promise.all(
              batch.map((t) => {
                const payment = { index: t.index, value: fromHex(t.value, 32, 'v') };
                return ask(port, opened ? { type: 'PAY', chainId: c.chainId, payment } : { type: 'BOOT', token: c.boot, payment }, 300).then((r) => ({ t, r }));
              }),
            );
            for (const { t, r } of replies) {
              if (r?.type === 'OK') {
                c.acks.set(t.index, (c.acks.get(t.index) ?? 0) + 1);
                c.lowestAck = Math.min(c.lowestAck, t.index);
                c.spentTo = Math.min(c.spentTo, t.index);
                opened = true;
              }
            }
            if (replies.some(({ r }) => r === undefined)) break; // agent gone
            next = c.tokens.findIndex((t) => t.index < c.spentTo);
          }
        }),
      );
      clearTimeout(killer);
      await agent.stop('SIGKILL');
    }
    sock.close();

    const ackCounts = chains.flatMap((c) => [...c.acks.values()]);
    const doubleSpends = ackCounts.filter((n) => n > 1).length;
    const acknowledged = ackCounts.length;
    console.log(`crash test: ${acknowledged} payments acknowledged, ${kills} SIGKILLs, ${replaysRefused} replays refused after restarts`);
    expect(doubleSpends).toBe(0);
    expect(kills).toBeGreaterThanOrEqual(5);
    expect(acknowledged).toBeGreaterThanOrEqual(2000);
    for (const c of chains) expect(c.spentTo).toBe(8192 - TOKENS_PER_CHAIN);
    // Final state after the last kill: every acknowledged token recorded.
    const { Ledger } = await import('./ledger.js');
    const final = Ledger.read(join(dir, 'node'));
    for (const c of chains) expect(final.get(Buffer.from(c.chainId).toString('hex'))!.lastIndex).toBeLessThanOrEqual(c.lowestAck);
    expect(readFileSync(vendor.publicKeyPath, 'utf8')).toContain('PUBLIC KEY');
  }, 300_000);
});
