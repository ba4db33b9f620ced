// `mcg demo`: the token economy end to end on loopback, in a temp dir that is
// removed afterwards. A vendor serves its HTTP API, a customer buys a chain and
// tokens, a node agent (its own process) admits and records the payments, and
// replays, counterfeits and misdirected tokens are refused, also after a restart.
import { writeFileSync } from 'node:fs';
import { interruptSafeTempDir } from '../node-agent/on-interrupt.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { fromHex } from '../tokens/_assert.js';
import { VendorStore } from '../tokens/vendor-store.js';
import { adminKey, createVendorServer } from '../tokens/vendor-service.js';
import { NodeClient } from '../node-agent/client.js';
import { ERR_NAMES } from '../node-agent/wire.js';
import { startAgentProcess, type AgentProcess } from './agent-process.js';
import { VendorClient } from './vendor-client.js';

export interface DemoSummary {
  paid: number;
  paymentsPerSecond: number;
  grantedMibSeconds: number;
  refused: Record<string, string>;
  afterRestart: { tokensLeft: number; replay: string };
}

export async function runDemo(log: (line: string) => void): Promise<DemoSummary> {
  const tmp = interruptSafeTempDir(join(tmpdir(), 'mcg-demo-'));
  const dir = tmp.path;
  const store = new VendorStore(join(dir, 'vendor')).lock();
  const server = createVendorServer(store);
  let agent: AgentProcess | undefined;
  try {
    const { keyId, publicKeyPath } = store.init();
    log(`vendor: created signing key ${keyId}`);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    log(`vendor: HTTP API on ${url}`);

    const admin = new VendorClient(url, adminKey(store));
    const { apiKey } = await admin.createAccount('alice');
    await admin.deposit('alice', 1000);
    log('vendor: account "alice" funded with 1000 token credits');

    const alice = new VendorClient(url, apiKey);
    const chain = await alice.createChain({ nodeId: 'node-1', log2Length: 20, mibSecondsPerToken: 256 });
    const bought = await alice.buyTokens(chain.chainId, 500);
    log(`alice: bought chain ${chain.chainId} (2^20 tokens, 256 MiB*s each) and 500 of its tokens; ${bought.balanceTokens} credits left`);

    const stateDir = join(dir, 'node-1');
    agent = await startAgentProcess(['--node-id', 'node-1', '--vendor-key', publicKeyPath, '--state', stateDir]);
    log(`node-1: agent pid ${agent.child.pid} admitting on udp ${agent.address}`);

    const client = await NodeClient.connect(agent.address);
    const t0 = performance.now();
    const paid = await client.pay(chain.bootToken, bought, Infinity);
    const seconds = (performance.now() - t0) / 1000;
    log(`alice -> node-1: BOOT + ${paid.paid - 1} PAY accepted in ${seconds.toFixed(2)} s; allowance ${paid.grantedMibSeconds} MiB*s, ${paid.lastIndex} tokens left`);

    const refused: Record<string, string> = {};
    const lastPaid = bought.tokens[bought.tokens.length - 1];
    const tryPay = async (what: string, index: number, value: Uint8Array) => {
      const r = await client.request({ type: 'PAY', chainId: fromHex(chain.chainId, 16, 'chainId'), payment: { index, value } });
      refused[what] = r.type === 'ERR' ? ERR_NAMES[r.code] : 'ACCEPTED';
      log(`attack: ${what} -> ${refused[what]}`);
    };
    await tryPay('replay of a spent token', lastPaid.index, fromHex(lastPaid.value, 32, 'value'));
    await tryPay('counterfeit token', lastPaid.index - 1, new Uint8Array(randomBytes(32)));
    const other = await alice.createChain({ nodeId: 'node-2', log2Length: 10, mibSecondsPerToken: 256 });
    const otherTokens = await alice.buyTokens(other.chainId, 1);
    const wrong = await client.request({ type: 'BOOT', token: other.bootToken, payment: { index: otherTokens.tokens[0].index, value: fromHex(otherTokens.tokens[0].value, 32, 'v') } });
    refused['token minted for another node'] = wrong.type === 'ERR' ? ERR_NAMES[wrong.code] : 'ACCEPTED';
    log(`attack: token minted for another node -> ${refused['token minted for another node']}`);
    await client.close();

    log('node-1: restarting the agent (SIGTERM, start again on the same ledger)');
    await agent.stop();
    agent = await startAgentProcess(['--node-id', 'node-1', '--vendor-key', publicKeyPath, '--state', stateDir]);
    const again = await NodeClient.connect(agent.address);
    const status = await again.status(fromHex(chain.chainId, 16, 'chainId'));
    const replay = await again.request({ type: 'PAY', chainId: fromHex(chain.chainId, 16, 'chainId'), payment: { index: lastPaid.index, value: fromHex(lastPaid.value, 32, 'v') } });
    await again.close();
    const tokensLeft = status.type === 'OK' ? status.lastIndex : -1;
    const replayName = replay.type === 'ERR' ? ERR_NAMES[replay.code] : 'ACCEPTED';
    log(`node-1 after restart: ${tokensLeft} tokens left on alice's chain; replay -> ${replayName}`);
    writeFileSync(join(dir, 'done'), '');
    return {
      paid: paid.paid,
      paymentsPerSecond: Math.round(paid.paid / seconds),
      grantedMibSeconds: paid.grantedMibSeconds,
      refused,
      afterRestart: { tokensLeft, replay: replayName },
    };
  } finally {
    await agent?.stop();
    await new Promise((r) => server.close(r));
    store.unlock();
    tmp.remove();
  }
}
