// The token vendor's durable state: its Ed25519 key, one file per chain
// (pebbles, O(log n) values), and prepaid customer accounts. Every change is an
// atomic file replace (tokens/_durable.ts); all files are private (0600).
// Seeds and pebble values never leave this module except as released tokens.
import { createHash, generateKeyPairSync, randomBytes, type KeyObject, createPublicKey } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { aint, astring, fromHex, toHex } from './_assert.js';
import { acquireLock, ensurePrivateDir, LockBusyError, readJson, writeFileAtomic } from './_durable.js';
import { BOOT_TOKEN_BYTES, encodeBootToken, loadPrivateKey, vendorKeyId, NAME_BYTES, type BootToken } from './boot-token.js';
import { CHAIN_ID_BYTES, CHAIN_MAX_LOG2_LENGTH, CHAIN_VALUE_BYTES, chainStep } from './chain.js';
import { Pebbler, type PebblerState } from './pebbling.js';
import { loadAddon } from '../native/addon.js';

/** Walk at most this many hashes per C call so minting can report progress. */
const MINT_PROGRESS_STEPS = 2 ** 22;
/** One release hands out at most this many tokens (bounds a request's work and reply). */
export const MAX_RELEASE_COUNT = 100_000;

export class VendorError extends Error {
  constructor(
    readonly code: 'NOT_INITIALIZED' | 'ALREADY_INITIALIZED' | 'UNKNOWN_CHAIN' | 'EXHAUSTED' | 'INSUFFICIENT_FUNDS' | 'BUSY' | 'UNKNOWN_ACCOUNT',
    message: string,
  ) {
    super(message);
  }
}

export interface ReleasedToken {
  index: number;
  value: string; // hex
}

export interface TokensFile {
  chainId: string;
  tokens: ReleasedToken[];
}

interface StoredPebble {
  position: number;
  value: string;
}

interface ChainRecord {
  chainId: string;
  customer: string;
  nodeId: string;
  log2Length: number;
  mibSecondsPerToken: number;
  expiresUnix: number;
  createdUnix: number;
  bootToken: string; // hex
  released: number;
  /** Of `released`, tokens charged to the customer's account (same atomic write as the release). */
  bought?: number;
  pebbler: Omit<PebblerState, 'pebbles' | 'first'> & { pebbles: StoredPebble[]; first: StoredPebble | null };
}

export interface ChainSummary {
  chainId: string;
  customer: string;
  nodeId: string;
  length: number;
  released: number;
  remaining: number;
  mibSecondsPerToken: number;
  expiresUnix: number;
}

/** The balance is derived: deposits minus the tokens bought on the customer's chains. */
export interface Account {
  customer: string;
  apiKeyHash: string;
  depositedTokens: number;
}

export interface MintRequest {
  customer: string;
  nodeId: string;
  log2Length: number;
  mibSecondsPerToken: number;
  expiresUnix: number;
}

function encodePebble(p: { position: number; value: Uint8Array }): StoredPebble {
  return { position: p.position, value: toHex(p.value) };
}

function decodePebble(p: StoredPebble): { position: number; value: Uint8Array } {
  return { position: p.position, value: fromHex(p.value, CHAIN_VALUE_BYTES, 'pebble') };
}

function hashApiKey(apiKey: string): string {
  return createHash('sha256').update(apiKey).digest('hex');
}

export class VendorStore {
  private releaseLock: (() => void) | undefined;

  constructor(readonly dir: string) {}

  get keyPath(): string {
    return join(this.dir, 'vendor-key.pem');
  }
  get publicKeyPath(): string {
    return join(this.dir, 'vendor.pub');
  }
  private chainPath(chainIdHex: string): string {
    return join(this.dir, 'chains', `${chainIdHex}.json`);
  }
  private get accountsPath(): string {
    return join(this.dir, 'accounts.json');
  }

  /** Takes the state directory for this process; a second writer gets BUSY. */
  lock(): this {
    try {
      this.releaseLock = acquireLock(this.dir, 'vendor.lock', "is 'mcg vendor serve' running?");
    } catch (err) {
      if (err instanceof LockBusyError) throw new VendorError('BUSY', `vendor state ${err.message}`);
      throw err;
    }
    return this;
  }

  unlock(): void {
    this.releaseLock?.();
    this.releaseLock = undefined;
  }

  init(): { keyId: string; publicKeyPath: string } {
    if (existsSync(this.keyPath)) throw new VendorError('ALREADY_INITIALIZED', `vendor already initialized in ${this.dir}`);
    ensurePrivateDir(join(this.dir, 'chains'));
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    writeFileAtomic(this.keyPath, privateKey.export({ format: 'pem', type: 'pkcs8' }) as string);
    writeFileAtomic(this.publicKeyPath, publicKey.export({ format: 'pem', type: 'spki' }) as string, 0o644);
    return { keyId: toHex(vendorKeyId(publicKey)), publicKeyPath: this.publicKeyPath };
  }

  private privateKey(): KeyObject {
    if (!existsSync(this.keyPath)) {
      throw new VendorError('NOT_INITIALIZED', `no vendor key in ${this.dir}; run 'mcg vendor init --state ${this.dir}'`);
    }
    return loadPrivateKey(readFileSync(this.keyPath, 'utf8'));
  }

  publicKey(): { pem: string; keyId: string } {
    const key = createPublicKey(this.privateKey());
    return { pem: key.export({ format: 'pem', type: 'spki' }) as string, keyId: toHex(vendorKeyId(key)) };
  }

  /** Creates a chain and its signed boot token. Costs n hashes (in C); stores log2(n) values. */
  mint(req: MintRequest, onProgress?: (done: number, total: number) => void): { chainId: string; bootToken: BootToken } {
    astring(req.customer, NAME_BYTES, 'customer');
    astring(req.nodeId, NAME_BYTES, 'nodeId');
    const k = aint(req.log2Length, 1, CHAIN_MAX_LOG2_LENGTH, 'log2Length');
    aint(req.mibSecondsPerToken, 1, Number.MAX_SAFE_INTEGER, 'mibSecondsPerToken');
    aint(req.expiresUnix, Math.floor(Date.now() / 1000) + 1, Number.MAX_SAFE_INTEGER, 'expiresUnix');
    const privateKey = this.privateKey();
    const addon = loadAddon();
    const chainId = new Uint8Array(randomBytes(CHAIN_ID_BYTES));
    const seed = new Uint8Array(randomBytes(CHAIN_VALUE_BYTES));
    const total = 2 ** k;
    let done = 0;
    const walk = (from: number, steps: number, value: Uint8Array): Uint8Array => {
      let v = value;
      for (let at = from; at < from + steps; ) {
        const chunk = Math.min(MINT_PROGRESS_STEPS, from + steps - at);
        v = new Uint8Array(addon.chainWalk(chainId, at, chunk, v));
        at += chunk;
        done += chunk;
        onProgress?.(done, total);
      }
      return v;
    };
    const step = (index: number, prev: Uint8Array) => chainStep(chainId, index, prev);
    const { pebbler, anchor } = Pebbler.mint(k, seed, walk, step);
    seed.fill(0);
    const bootToken = encodeBootToken(
      {
        log2Length: k,
        chainId,
        customer: req.customer,
        nodeId: req.nodeId,
        mibSecondsPerToken: req.mibSecondsPerToken,
        expiresUnix: req.expiresUnix,
        vendorKeyId: vendorKeyId(createPublicKey(privateKey)),
        anchor,
      },
      privateKey,
    );
    const chainIdHex = toHex(chainId);
    this.writeChain({
      chainId: chainIdHex,
      customer: req.customer,
      nodeId: req.nodeId,
      log2Length: k,
      mibSecondsPerToken: req.mibSecondsPerToken,
      expiresUnix: req.expiresUnix,
      createdUnix: Math.floor(Date.now() / 1000),
      bootToken: toHex(bootToken.bytes),
      released: 0,
      pebbler: this.encodePebbler(pebbler.snapshot()),
    });
    return { chainId: chainIdHex, bootToken };
  }

  /**
   * Releases the next `count` tokens in spending order. The new pebbling state
   * is durable before the tokens are returned, so a crash never releases the
   * same token twice (it may lose a release that was never delivered).
   */
  release(chainIdHex: string, count: number, charged = false): TokensFile {
    aint(count, 1, MAX_RELEASE_COUNT, 'count');
    const rec = this.readChain(chainIdHex);
    const chainId = fromHex(rec.chainId, CHAIN_ID_BYTES, 'chainId');
    const pebbler = Pebbler.restore(this.decodePebbler(rec.pebbler), (i, prev) => chainStep(chainId, i, prev));
    if (pebbler.remaining < count) {
      throw new VendorError('EXHAUSTED', `chain ${chainIdHex} has ${pebbler.remaining} tokens left, asked for ${count}`);
    }
    const tokens: ReleasedToken[] = [];
    for (let i = 0; i < count; i++) {
      const t = pebbler.next();
      tokens.push({ index: t.index, value: toHex(t.value) });
    }
    rec.released += count;
    if (charged) rec.bought = (rec.bought ?? 0) + count;
    rec.pebbler = this.encodePebbler(pebbler.snapshot());
    this.writeChain(rec);
    return { chainId: chainIdHex, tokens };
  }

  bootToken(chainIdHex: string): Uint8Array {
    return fromHex(this.readChain(chainIdHex).bootToken, BOOT_TOKEN_BYTES, 'bootToken');
  }

  chain(chainIdHex: string): ChainSummary {
    return summarize(this.readChain(chainIdHex));
  }

  private chainRecords(): ChainRecord[] {
    const dir = join(this.dir, 'chains');
    if (!existsSync(dir)) return [];
    return readdirSync(dir)
      .filter((f) => /^[0-9a-f]{32}\.json$/.test(f))
      .map((f) => readJson<ChainRecord>(join(dir, f))!);
  }

  list(): ChainSummary[] {
    return this.chainRecords()
      .map(summarize)
      .sort((a, b) => a.customer.localeCompare(b.customer) || a.chainId.localeCompare(b.chainId));
  }

  // --- prepaid accounts (no real payment: an admin deposits token credits) ---

  private accounts(): Record<string, Account> {
    return readJson<Record<string, Account>>(this.accountsPath) ?? {};
  }

  createAccount(customer: string): { apiKey: string } {
    astring(customer, NAME_BYTES, 'customer');
    const accounts = this.accounts();
    const apiKey = randomBytes(24).toString('base64url');
    accounts[customer] = { customer, apiKeyHash: hashApiKey(apiKey), depositedTokens: accounts[customer]?.depositedTokens ?? 0 };
    writeFileAtomic(this.accountsPath, JSON.stringify(accounts, null, 2));
    return { apiKey };
  }

  deposit(customer: string, tokens: number): number {
    aint(tokens, 1, Number.MAX_SAFE_INTEGER, 'tokens');
    const accounts = this.accounts();
    const acc = accounts[customer];
    if (!acc) throw new VendorError('UNKNOWN_ACCOUNT', `no account for customer "${customer}"`);
    acc.depositedTokens += tokens;
    writeFileAtomic(this.accountsPath, JSON.stringify(accounts, null, 2));
    return this.balance(customer);
  }

  /** The customer an API key belongs to, or undefined. */
  authenticate(apiKey: string): string | undefined {
    const h = hashApiKey(apiKey);
    return Object.values(this.accounts()).find((a) => a.apiKeyHash === h)?.customer;
  }

  balance(customer: string): number {
    const acc = this.accounts()[customer];
    if (!acc) throw new VendorError('UNKNOWN_ACCOUNT', `no account for customer "${customer}"`);
    const bought = this.chainRecords().filter((c) => c.customer === customer).reduce((n, c) => n + (c.bought ?? 0), 0);
    return acc.depositedTokens - bought;
  }

  /**
   * Charges the account and releases in one atomic write of the chain file:
   * a crash leaves either both done or neither.
   */
  buy(customer: string, chainIdHex: string, count: number): TokensFile & { balanceTokens: number } {
    aint(count, 1, MAX_RELEASE_COUNT, 'count');
    if (this.readChain(chainIdHex).customer !== customer) throw new VendorError('UNKNOWN_CHAIN', `no chain ${chainIdHex} for customer "${customer}"`);
    const balance = this.balance(customer);
    if (balance < count) {
      throw new VendorError('INSUFFICIENT_FUNDS', `account "${customer}" has ${balance} token credits, needs ${count}`);
    }
    return { ...this.release(chainIdHex, count, true), balanceTokens: balance - count };
  }

  private readChain(chainIdHex: string): ChainRecord {
    if (typeof chainIdHex !== 'string' || !/^[0-9a-f]{32}$/.test(chainIdHex)) {
      throw new VendorError('UNKNOWN_CHAIN', `"${String(chainIdHex).slice(0, 64)}" is not a chain id (32 hex digits)`);
    }
    const rec = readJson<ChainRecord>(this.chainPath(chainIdHex));
    if (!rec) throw new VendorError('UNKNOWN_CHAIN', `no chain ${chainIdHex} in ${this.dir}; see 'mcg vendor list'`);
    return rec;
  }

  private writeChain(rec: ChainRecord): void {
    ensurePrivateDir(join(this.dir, 'chains'));
    writeFileAtomic(this.chainPath(rec.chainId), JSON.stringify(rec));
  }

  private encodePebbler(s: PebblerState): ChainRecord['pebbler'] {
    return { ...s, pebbles: s.pebbles.map(encodePebble), first: s.first && encodePebble(s.first) };
  }

  private decodePebbler(s: ChainRecord['pebbler']): PebblerState {
    return { ...s, pebbles: s.pebbles.map(decodePebble), first: s.first && decodePebble(s.first) };
  }
}

function summarize(rec: ChainRecord): ChainSummary {
  const length = 2 ** rec.log2Length;
  return {
    chainId: rec.chainId,
    customer: rec.customer,
    nodeId: rec.nodeId,
    length,
    released: rec.released,
    remaining: length - rec.released,
    mibSecondsPerToken: rec.mibSecondsPerToken,
    expiresUnix: rec.expiresUnix,
  };
}
