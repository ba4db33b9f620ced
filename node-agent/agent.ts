// The node bootstrap daemon's admission side: a UDP socket that admits work
// only for valid tokens. A chain exists on this node only after its first
// datagram (boot token + first payment) verifies; every acceptance is durable
// in the ledger before its OK is sent; a reply is never larger than its request.
import type { KeyObject } from 'node:crypto';
import type { RemoteInfo } from 'node:dgram';
import DgramAsPromised, { type SocketAsPromised } from 'dgram-as-promised';
import { toHex } from '../tokens/_assert.js';
import { acquireLock } from '../tokens/_durable.js';
import { decodeBootToken, vendorKeyId, verifyBootTokenSignature } from '../tokens/boot-token.js';
import { CHAIN_MAX_SKIP } from '../tokens/chain.js';
import { grantedMibSeconds, Ledger, type ChainState } from './ledger.js';
import { RateLimiter } from './rate-limit.js';
import { Verdict, verifyToken } from './verifier.js';
import { decodeRequest, encodeReply, ErrCode, ERR_NAMES, MSG_ERR_BYTES, type ErrCodeName, type Payment, type Reply, type Request } from './wire.js';

/** Datagrams a socket may queue while the ledger syncs (bytes of kernel buffer). */
const SOCKET_BUFFER_BYTES = 4 * 1024 * 1024;
const ZERO_CHAIN_ID = new Uint8Array(16);

export interface AgentOptions {
  nodeId: string;
  vendorKeys: KeyObject[];
  host: string;
  port: number;
  stateDir: string;
  /** Datagrams per second per source address; 0 disables. */
  rateLimitPerSecond?: number;
  rateLimitBurst?: number;
  maxSkip?: number;
  nowUnix?: () => number;
  /** Called when the ledger cannot be written: the agent must stop (default: log and exit). */
  onFatal?: (err: Error) => void;
}

export interface AgentStats {
  accepted: number;
  opened: number;
  refused: Partial<Record<ErrCodeName, number>>;
  dropped: number;
  batches: number;
}

interface PendingReply {
  buf: Buffer;
  port: number;
  address: string;
}

export class NodeAgent {
  readonly stats: AgentStats = { accepted: 0, opened: 0, refused: {}, dropped: 0, batches: 0 };
  private readonly keys = new Map<string, KeyObject>();
  private readonly limiter: RateLimiter;
  private pending: PendingReply[] = [];
  private flushing = false;
  private flushScheduled = false;
  private stopped = false;

  private constructor(
    private readonly opts: AgentOptions,
    private readonly socket: SocketAsPromised,
    readonly ledger: Ledger,
    private readonly unlock: () => void,
  ) {
    for (const k of opts.vendorKeys) this.keys.set(toHex(vendorKeyId(k)), k);
    this.limiter = new RateLimiter(opts.rateLimitPerSecond ?? 0, opts.rateLimitBurst ?? opts.rateLimitPerSecond ?? 0);
  }

  static async start(opts: AgentOptions): Promise<NodeAgent> {
    if (opts.vendorKeys.length === 0) throw new RangeError('"vendorKeys" expected at least one vendor public key');
    const unlock = acquireLock(opts.stateDir, 'agent.lock', "is 'mcg node start' already running on this state?");
    let ledger: Ledger | undefined;
    try {
      ledger = Ledger.open(opts.stateDir);
      const socket = DgramAsPromised.createSocket({ type: opts.host.includes(':') ? 'udp6' : 'udp4', recvBufferSize: SOCKET_BUFFER_BYTES });
      await socket.bind(opts.port, opts.host);
      const agent = new NodeAgent(opts, socket, ledger, unlock);
      // The raw 'message' event, not socket.recv(): recv() holds a one-shot
      // listener, and libuv delivers several datagrams per poll, so datagrams
      // arriving between two recv() calls would be lost.
      socket.socket.on('message', (msg: Buffer, rinfo: RemoteInfo) => agent.onDatagram(msg, rinfo));
      return agent;
    } catch (err) {
      ledger?.close();
      unlock();
      throw err;
    }
  }

  address(): { address: string; port: number } {
    return this.socket.socket.address();
  }

  private nowUnix(): number {
    return this.opts.nowUnix ? this.opts.nowUnix() : Math.floor(Date.now() / 1000);
  }

  private onDatagram(msg: Buffer, rinfo: RemoteInfo): void {
    if (this.stopped) return;
    const to = { port: rinfo.port, address: rinfo.address };
    const rate = this.limiter.check(rinfo.address);
    if (rate !== 'allow') {
      this.count('RATE_LIMITED');
      if (rate === 'limit-and-tell') this.replyErr(msg, to, 0, 'RATE_LIMITED', ZERO_CHAIN_ID);
      else this.stats.dropped++;
      return;
    }
    let req: Request | { error: ErrCodeName; requestId: number };
    try {
      req = decodeRequest(msg);
    } catch {
      req = { error: 'MALFORMED', requestId: 0 };
    }
    if ('error' in req) {
      this.count(req.error);
      this.replyErr(msg, to, req.requestId, req.error, ZERO_CHAIN_ID);
      return;
    }
    const reply = this.handle(req);
    if (reply.type === 'ERR') this.count(ERR_NAMES[reply.code]);
    this.queue(encodeReply(reply), to);
  }

  private handle(req: Request): Reply {
    const err = (code: ErrCodeName, chainId: Uint8Array = ZERO_CHAIN_ID): Reply => ({ type: 'ERR', requestId: req.requestId, code: ErrCode[code], chainId });
    if (req.type === 'STATUS') {
      const chain = this.ledger.get(toHex(req.chainId));
      return chain ? this.ok(req.requestId, chain) : err('UNKNOWN_CHAIN', req.chainId);
    }
    if (req.type === 'PAY') {
      const chain = this.ledger.get(toHex(req.chainId));
      if (!chain) return err('UNKNOWN_CHAIN', req.chainId);
      return this.pay(req.requestId, chain, req.payment);
    }
    const token = decodeBootToken(req.token);
    if (token === 'bad-magic' || token === 'bad-version' || token === 'malformed') return err('MALFORMED');
    const key = this.keys.get(toHex(token.vendorKeyId));
    if (!key) return err('UNKNOWN_VENDOR_KEY', token.chainId);
    if (token.nodeId !== this.opts.nodeId) return err('WRONG_NODE', token.chainId);
    if (this.nowUnix() >= token.expiresUnix) return err('EXPIRED', token.chainId);
    const known = this.ledger.get(toHex(token.chainId));
    if (known) {
      // A resent BOOT (lost reply): only the exact same token may continue the chain.
      if (Buffer.compare(known.token.bytes, token.bytes) !== 0) return err('BAD_SIGNATURE', token.chainId);
      return this.pay(req.requestId, known, req.payment);
    }
    if (!verifyBootTokenSignature(token, key)) return err('BAD_SIGNATURE', token.chainId);
    const n = 2 ** token.log2Length;
    const verdict = verifyToken(token.chainId, n, token.anchor, req.payment.index, req.payment.value, this.maxSkip);
    if (verdict !== Verdict.OK) return err(VERDICT_ERR[verdict], token.chainId);
    const chain = this.ledger.stageOpen(token, req.payment.index, req.payment.value);
    this.stats.opened++;
    this.stats.accepted += n - req.payment.index;
    return this.ok(req.requestId, chain);
  }

  private get maxSkip(): number {
    return this.opts.maxSkip ?? CHAIN_MAX_SKIP;
  }

  private pay(requestId: number, chain: ChainState, payment: Payment): Reply {
    if (this.nowUnix() >= chain.token.expiresUnix) {
      return { type: 'ERR', requestId, code: ErrCode.EXPIRED, chainId: chain.token.chainId };
    }
    const verdict = verifyToken(chain.token.chainId, chain.lastIndex, chain.lastValue, payment.index, payment.value, this.maxSkip);
    if (verdict !== Verdict.OK) return { type: 'ERR', requestId, code: ErrCode[VERDICT_ERR[verdict]], chainId: chain.token.chainId };
    this.stats.accepted += chain.lastIndex - payment.index;
    this.ledger.stagePay(chain, payment.index, payment.value);
    return this.ok(requestId, chain);
  }

  private ok(requestId: number, chain: ChainState): Reply {
    return {
      type: 'OK',
      requestId,
      chainId: chain.token.chainId,
      lastIndex: chain.lastIndex,
      grantedMibSeconds: grantedMibSeconds(chain),
      expiresUnix: chain.token.expiresUnix,
    };
  }

  private count(code: ErrCodeName): void {
    this.stats.refused[code] = (this.stats.refused[code] ?? 0) + 1;
  }

  /** ERR replies only go to requests at least as large (no amplification). */
  private replyErr(msg: Buffer, to: { port: number; address: string }, requestId: number, code: ErrCodeName, chainId: Uint8Array): void {
    if (msg.length < MSG_ERR_BYTES) {
      this.stats.dropped++;
      return;
    }
    this.queue(encodeReply({ type: 'ERR', requestId, code: ErrCode[code], chainId }), to);
  }

  /** Replies wait for the ledger batch they belong to; see flush(). */
  private queue(buf: Buffer, to: { port: number; address: string }): void {
    this.pending.push({ buf, ...to });
    if (!this.flushing && !this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => void this.flush());
    }
  }

  private async flush(): Promise<void> {
    this.flushScheduled = false;
    if (this.stopped) return;
    const replies = this.pending;
    this.pending = [];
    if (this.ledger.hasStaged) {
      this.flushing = true;
      try {
        await this.ledger.flush();
        this.stats.batches++;
      } catch (err) {
        this.stopped = true;
        (this.opts.onFatal ?? defaultFatal)(err as Error);
        return;
      }
      this.flushing = false;
      this.ledger.maybeCompact();
    }
    for (const r of replies) this.socket.socket.send(r.buf, r.port, r.address);
    if (this.pending.length > 0 && !this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => void this.flush());
    }
  }

  /** Waits for in-flight replies, then closes the socket and the ledger. */
  async stop(): Promise<void> {
    while ((this.flushing || this.flushScheduled) && !this.stopped) await new Promise((r) => setTimeout(r, 5));
    this.stopped = true;
    await this.socket.close();
    this.ledger.close();
    this.unlock();
  }
}

const VERDICT_ERR: Record<number, ErrCodeName> = {
  [Verdict.REPLAY]: 'REPLAY',
  [Verdict.SKIP_TOO_FAR]: 'SKIP_TOO_FAR',
  [Verdict.MISMATCH]: 'MISMATCH',
};

function defaultFatal(err: Error): void {
  console.error(`mcg node: ledger write failed, stopping so nothing is acknowledged unrecorded: ${err.message}`);
  process.exit(70);
}
