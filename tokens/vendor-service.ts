// `mcg vendor serve`: the HTTP API an orchestrator buys from. Prepaid accounts
// only (an admin deposits token credits; no real payment). Customers
// authenticate with the API key they were given; admins with the key in
// <state>/admin-key. Bodies are bounded; every error is JSON with a code.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from './_durable.js';
import { VendorError, VendorStore } from './vendor-store.js';
import { toHex } from './_assert.js';

/** Requests are small JSON objects; anything larger is refused. */
export const MAX_BODY_BYTES = 16 * 1024;

const STATUS_OF: Record<VendorError['code'], number> = {
  NOT_INITIALIZED: 503,
  ALREADY_INITIALIZED: 409,
  UNKNOWN_CHAIN: 404,
  UNKNOWN_ACCOUNT: 404,
  EXHAUSTED: 409,
  INSUFFICIENT_FUNDS: 402,
  BUSY: 503,
};

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export function adminKey(store: VendorStore): string {
  const path = join(store.dir, 'admin-key');
  if (!existsSync(path)) writeFileAtomic(path, randomBytes(24).toString('base64url'));
  return readFileSync(path, 'utf8').trim();
}

async function readBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, 'BODY_TOO_LARGE', `request body over ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk as Buffer);
  }
  if (size === 0) return {};
  try {
    const v = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error();
    return v as Record<string, unknown>;
  } catch {
    throw new HttpError(400, 'BAD_JSON', 'request body must be a JSON object');
  }
}

function bearer(req: IncomingMessage): string {
  const h = req.headers.authorization ?? '';
  return h.startsWith('Bearer ') ? h.slice(7) : '';
}

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export function createVendorServer(store: VendorStore): Server {
  const admin = adminKey(store);
  const asAdmin = (req: IncomingMessage) => {
    if (!sameSecret(bearer(req), admin)) throw new HttpError(401, 'UNAUTHORIZED', 'admin key required');
  };
  const asCustomer = (req: IncomingMessage): string => {
    const key = bearer(req);
    const customer = key ? store.authenticate(key) : undefined;
    if (!customer) throw new HttpError(401, 'UNAUTHORIZED', 'customer API key required (Authorization: Bearer KEY)');
    return customer;
  };

  async function route(req: IncomingMessage): Promise<unknown> {
    const url = new URL(req.url ?? '/', 'http://vendor');
    const parts = url.pathname.split('/').filter(Boolean);
    const method = req.method ?? 'GET';
    if (parts[0] !== 'v1') throw new HttpError(404, 'NOT_FOUND', `no route ${method} ${url.pathname}`);
    const path = parts.slice(1).join('/');
    if (method === 'GET' && path === 'key') return store.publicKey();
    if (method === 'POST' && path === 'accounts') {
      asAdmin(req);
      const body = await readBody(req);
      return { customer: body.customer, ...store.createAccount(body.customer as string) };
    }
    if (method === 'POST' && parts[1] === 'accounts' && parts[3] === 'deposit' && parts.length === 4) {
      asAdmin(req);
      const body = await readBody(req);
      return { customer: parts[2], balanceTokens: store.deposit(decodeURIComponent(parts[2]), body.tokens as number) };
    }
    if (method === 'GET' && path === 'account') {
      const customer = asCustomer(req);
      return { customer, balanceTokens: store.balance(customer) };
    }
    if (method === 'POST' && path === 'chains') {
      const customer = asCustomer(req);
      const body = await readBody(req);
      const expiresIn = body.expiresInSeconds ?? 30 * 24 * 3600;
      if (typeof expiresIn !== 'number') throw new TypeError('"expiresInSeconds" expected number');
      const { chainId, bootToken } = store.mint({
        customer,
        nodeId: body.nodeId as string,
        log2Length: body.log2Length as number,
        mibSecondsPerToken: body.mibSecondsPerToken as number,
        expiresUnix: Math.floor(Date.now() / 1000) + expiresIn,
      });
      return { chainId, bootToken: Buffer.from(bootToken.bytes).toString('base64'), vendorKeyId: toHex(bootToken.vendorKeyId) };
    }
    if (parts[1] === 'chains' && parts.length >= 3) {
      const customer = asCustomer(req);
      const chain = store.chain(parts[2]);
      if (chain.customer !== customer) throw new HttpError(404, 'UNKNOWN_CHAIN', `no chain ${parts[2]} for you`);
      if (method === 'GET' && parts.length === 3) return chain;
      if (method === 'POST' && parts[3] === 'tokens' && parts.length === 4) {
        const body = await readBody(req);
        return store.buy(customer, parts[2], body.count as number);
      }
    }
    throw new HttpError(404, 'NOT_FOUND', `no route ${method} ${url.pathname}`);
  }

  return createServer((req, res: ServerResponse) => {
    route(req).then(
      (body) => send(res, 200, body),
      (err: unknown) => {
        if (err instanceof HttpError) return send(res, err.status, { error: err.code, message: err.message });
        if (err instanceof VendorError) return send(res, STATUS_OF[err.code], { error: err.code, message: err.message });
        if (err instanceof TypeError || err instanceof RangeError) return send(res, 400, { error: 'BAD_REQUEST', message: err.message });
        console.error('mcg vendor serve: internal error:', err);
        send(res, 500, { error: 'INTERNAL', message: 'internal error' });
      },
    );
  });
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const data = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) });
  res.end(data);
}
