// JSON requests to the API server over node:https (node:http for a plain
// http:// server), with the cluster's CA, client certificate and bearer
// token. A non-2xx answer is an ApiError carrying the HTTP status and the
// server's Status message.

import * as http from 'node:http';
import * as https from 'node:https';
import type { ClusterConfig } from './config.js';

const REQUEST_TIMEOUT_MS = 30_000;

export class ApiError extends Error {
  constructor(
    readonly status: number,
    /** The server's Status message, if it sent one. */
    readonly serverMessage: string,
    readonly body: string,
  ) {
    super(`HTTP ${status}${serverMessage ? `: ${serverMessage}` : ''}`);
    this.name = 'ApiError';
  }
}

function statusMessage(body: string): string {
  try {
    return (JSON.parse(body) as { message?: string }).message ?? '';
  } catch {
    return '';
  }
}

export type Query = Record<string, string | number | boolean | undefined>;

export interface RequestOptions {
  readonly query?: Query;
  readonly body?: unknown;
  readonly contentType?: string;
}

export class KubeHttp {
  private readonly agent: http.Agent;
  private readonly mod: typeof http | typeof https;
  private readonly base: URL;

  constructor(readonly config: ClusterConfig) {
    this.base = new URL(config.server);
    const tls = this.base.protocol === 'https:';
    this.mod = tls ? https : http;
    this.agent = tls
      ? new https.Agent({
          keepAlive: true,
          ...(config.ca ? { ca: config.ca } : {}),
          ...(config.cert ? { cert: config.cert } : {}),
          ...(config.key ? { key: config.key } : {}),
          rejectUnauthorized: !config.insecureSkipTlsVerify,
        })
      : new http.Agent({ keepAlive: true });
  }

  url(path: string, query?: Query): URL {
    const u = new URL(this.base.pathname.replace(/\/$/, '') + path, this.base);
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) u.searchParams.set(k, String(v));
    return u;
  }

  /** Opens a request; resolves with the response once its headers arrived (any status). */
  open(method: string, path: string, o: RequestOptions & { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<http.IncomingMessage> {
    const u = this.url(path, o.query);
    const headers: http.OutgoingHttpHeaders = { accept: 'application/json' };
    const token = this.config.token();
    if (token) headers.authorization = `Bearer ${token}`;
    const payload = o.body === undefined ? undefined : Buffer.from(JSON.stringify(o.body));
    if (payload) {
      headers['content-type'] = o.contentType ?? 'application/json';
      headers['content-length'] = payload.length;
    }
    return new Promise((resolve, reject) => {
      const req = this.mod.request(u, { method, headers, agent: this.agent, ...(o.signal ? { signal: o.signal } : {}) }, (res) => {
        if (res.statusCode === 401) this.config.tokenRejected();
        resolve(res);
      });
      if (o.timeoutMs)
        req.setTimeout(o.timeoutMs, () => req.destroy(new Error(`${method} ${u.pathname}: no answer within ${o.timeoutMs} ms`)));
      req.on('error', reject);
      req.end(payload);
    });
  }

  async request<T>(method: string, path: string, o: RequestOptions = {}): Promise<T> {
    const res = await this.open(method, path, { ...o, timeoutMs: REQUEST_TIMEOUT_MS });
    const chunks: Buffer[] = [];
    for await (const c of res) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const status = res.statusCode ?? 0;
    if (status < 200 || status > 299) throw new ApiError(status, statusMessage(body), body);
    return (body ? JSON.parse(body) : {}) as T;
  }

  /** Turns a non-2xx streaming response into an ApiError (reading its body). */
  static async failure(res: http.IncomingMessage): Promise<ApiError> {
    const chunks: Buffer[] = [];
    for await (const c of res) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    return new ApiError(res.statusCode ?? 0, statusMessage(body), body);
  }

  close(): void {
    this.agent.destroy();
  }
}
