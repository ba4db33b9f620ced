// The paying side of admission, used by `mcg pay` and the orchestrator: sends
// BOOT/PAY/STATUS datagrams with retries, and pays a tokens file in order,
// resuming from what the node has already accepted.
import type { RemoteInfo } from 'node:dgram';
import { randomInt } from 'node:crypto';
import DgramAsPromised, { type SocketAsPromised } from 'dgram-as-promised';
import { fromHex, toHex } from '../tokens/_assert.js';
import { decodeBootToken } from '../tokens/boot-token.js';
import { CHAIN_ID_BYTES, CHAIN_VALUE_BYTES } from '../tokens/chain.js';
import type { TokensFile } from '../tokens/vendor-store.js';
import { decodeReply, encodeRequest, ErrCode, ERR_NAMES, type Reply, type Request } from './wire.js';

export const DEFAULT_TIMEOUT_MS = 250;
export const DEFAULT_ATTEMPTS = 8;

export class PayError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

type RequestBody = Request extends infer R ? (R extends Request ? Omit<R, 'requestId'> : never) : never;

export interface PayResult {
  chainId: string;
  paid: number;
  lastIndex: number;
  grantedMibSeconds: number;
  expiresUnix: number;
}

export class NodeClient {
  private nextId = randomInt(1, 2 ** 31);
  private readonly waiting = new Map<number, (r: Reply) => void>();

  private constructor(
    private readonly socket: SocketAsPromised,
    readonly host: string,
    readonly port: number,
    private readonly timeoutMs: number,
    private readonly attempts: number,
  ) {
    socket.socket.on('message', (msg: Buffer, rinfo: RemoteInfo) => {
      if (rinfo.port !== port) return;
      const reply = decodeReply(msg);
      if (!reply) return;
      const resolve = this.waiting.get(reply.requestId);
      if (resolve) {
        this.waiting.delete(reply.requestId);
        resolve(reply);
      }
    });
  }

  static async connect(node: string, opts: { timeoutMs?: number; attempts?: number } = {}): Promise<NodeClient> {
    const { host, port } = parseHostPort(node);
    const socket = DgramAsPromised.createSocket(host.includes(':') ? 'udp6' : 'udp4');
    await socket.bind(0, host.includes(':') ? '::' : undefined);
    return new NodeClient(socket, host, port, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS, opts.attempts ?? DEFAULT_ATTEMPTS);
  }

  /** Sends one request, resending on timeout; rejects with PayError('TIMEOUT') when the node never answers. */
  async request(body: RequestBody): Promise<Reply> {
    const requestId = this.nextId++ >>> 0;
    const buf = encodeRequest({ ...body, requestId } as Request);
    for (let attempt = 0; attempt < this.attempts; attempt++) {
      const reply = await new Promise<Reply | undefined>((resolve) => {
        const timer = setTimeout(() => {
          this.waiting.delete(requestId);
          resolve(undefined);
        }, this.timeoutMs * (attempt + 1));
        this.waiting.set(requestId, (r) => {
          clearTimeout(timer);
          resolve(r);
        });
        this.socket.socket.send(buf, this.port, this.host);
      });
      if (reply) return reply;
    }
    throw new PayError('TIMEOUT', `node ${this.host}:${this.port} did not answer after ${this.attempts} attempts`);
  }

  async status(chainId: Uint8Array): Promise<Reply> {
    return this.request({ type: 'STATUS', chainId });
  }

  /**
   * Pays up to `count` tokens of `tokens` (spending order) on the chain of
   * `bootToken`: asks the node where the chain stands, opens it with BOOT if it
   * is new, then pays the tokens below the last accepted index, in order.
   */
  async pay(bootToken: Uint8Array, tokens: TokensFile, count = Infinity, onProgress?: (paid: number) => void): Promise<PayResult> {
    const token = decodeBootToken(bootToken);
    if (typeof token === 'string') throw new PayError('BAD_BOOT_TOKEN', `boot token is ${token}`);
    if (toHex(token.chainId) !== tokens.chainId) {
      throw new PayError('CHAIN_MISMATCH', `tokens are for chain ${tokens.chainId}, boot token is for ${toHex(token.chainId)}`);
    }
    let state = await this.status(token.chainId);
    let lastIndex = state.type === 'OK' ? state.lastIndex : 2 ** token.log2Length;
    if (state.type === 'ERR' && state.code !== ErrCode.UNKNOWN_CHAIN) throw replyError(state);
    let paid = 0;
    for (const t of tokens.tokens) {
      if (paid >= count) break;
      if (t.index >= lastIndex) continue; // spent already
      const payment = { index: t.index, value: fromHex(t.value, CHAIN_VALUE_BYTES, 'token value') };
      const reply =
        state.type === 'OK'
          ? await this.request({ type: 'PAY', chainId: token.chainId, payment })
          : await this.request({ type: 'BOOT', token: bootToken, payment });
      if (reply.type === 'ERR') {
        // A lost OK makes our resend a replay: the node's state says whether it was ours.
        if (reply.code !== ErrCode.REPLAY) throw replyError(reply);
        const now = await this.status(token.chainId);
        if (now.type !== 'OK' || now.lastIndex > t.index) throw replyError(reply);
        state = now;
      } else {
        state = reply;
      }
      lastIndex = (state as Extract<Reply, { type: 'OK' }>).lastIndex;
      paid++;
      onProgress?.(paid);
    }
    if (state.type !== 'OK') throw new PayError('NOTHING_TO_PAY', 'no unspent token in the tokens file');
    return { chainId: tokens.chainId, paid, lastIndex: state.lastIndex, grantedMibSeconds: state.grantedMibSeconds, expiresUnix: state.expiresUnix };
  }

  async close(): Promise<void> {
    await this.socket.close();
  }
}

export function replyError(reply: Extract<Reply, { type: 'ERR' }>): PayError {
  const name = ERR_NAMES[reply.code] ?? `code ${reply.code}`;
  return new PayError(name, `node refused: ${name}`);
}

/** HOST:PORT or [V6]:PORT; port 0 (any free port) only where `listening`. */
export function parseHostPort(s: string, listening = false): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(s);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port < (listening ? 0 : 1) || port > 65535) throw new RangeError(`expected HOST:PORT (e.g. 127.0.0.1:7070), got "${s}"`);
  return { host: m[1] ?? m[2], port };
}

export function readTokensFile(json: string): TokensFile {
  const data = JSON.parse(json) as TokensFile;
  if (typeof data?.chainId !== 'string' || !Array.isArray(data.tokens)) throw new RangeError('tokens file expected {"chainId", "tokens": [...]}');
  fromHex(data.chainId, CHAIN_ID_BYTES, 'chainId');
  for (const t of data.tokens) fromHex(t.value, CHAIN_VALUE_BYTES, 'token value');
  return data;
}

