// The orchestrator's side of buying: talks to `mcg vendor serve`.
import type { TokensFile } from '../tokens/vendor-store.js';

export class VendorHttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export class VendorClient {
  constructor(
    readonly baseUrl: string,
    private readonly apiKey: string,
  ) {}

  private async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await fetch(new URL(path, this.baseUrl), {
      method,
      headers: { authorization: `Bearer ${this.apiKey}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = (await res.json()) as T & { error?: string; message?: string };
    if (!res.ok) throw new VendorHttpError(res.status, json.error ?? 'HTTP', json.message ?? `HTTP ${res.status}`);
    return json;
  }

  createAccount(customer: string): Promise<{ customer: string; apiKey: string }> {
    return this.call('POST', '/v1/accounts', { customer });
  }

  deposit(customer: string, tokens: number): Promise<{ balanceTokens: number }> {
    return this.call('POST', `/v1/accounts/${encodeURIComponent(customer)}/deposit`, { tokens });
  }

  async createChain(req: { nodeId: string; log2Length: number; mibSecondsPerToken: number; expiresInSeconds?: number }): Promise<{ chainId: string; bootToken: Uint8Array }> {
    const r = await this.call<{ chainId: string; bootToken: string }>('POST', '/v1/chains', req);
    return { chainId: r.chainId, bootToken: new Uint8Array(Buffer.from(r.bootToken, 'base64')) };
  }

  buyTokens(chainId: string, count: number): Promise<TokensFile & { balanceTokens: number }> {
    return this.call('POST', `/v1/chains/${chainId}/tokens`, { count });
  }
}
