// The server HTTP API (docs/api.md): POST /api/v1/<method> with the key as a
// Bearer token and one JSON object as the body. The key lives in this object
// and in sessionStorage (see session.ts), never in a URL.

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type Obj = { [k: string]: Json };

/** An error answer of the API, or a failure to reach it (status 0). */
export class ApiError extends Error {
  constructor(
    readonly method: string,
    readonly status: number,
    readonly code: number,
    message: string,
    readonly temporary = false,
  ) {
    super(message);
  }

  /** "unknown method": the server predates the method (older build). */
  get unknownMethod(): boolean { return this.code === 104; }

  /** What the page shows: the server's own message, with its codes. */
  describe(): string {
    if (this.status === 0) return `${this.method}: could not reach the server (${this.message})`;
    return `${this.method}: ${this.message} (HTTP ${this.status}, code ${this.code})`;
  }
}

/** Methods that act in one tenant: the admin key must name the tenant in the body. */
const ADMIN_ONLY = new Set(['tenants.list', 'tenants.create', 'tenants.update', 'keys.create', 'keys.revoke', 'keys.list', 'audit.list']);

export class Api {
  /** Set after sign-in: true for the admin key, false for a tenant API key. */
  admin = false;
  /** The tenant the admin key acts in (tenant keys ignore it). */
  tenant = '';

  /** Called on any 401 answer (set by the shell after sign-in). */
  onUnauthorized: (() => void) | null = null;

  constructor(readonly key: string) {}

  private async post(method: string, params: Obj, signal?: AbortSignal): Promise<Response> {
    const body: Obj = { ...params };
    if (this.admin && this.tenant && !ADMIN_ONLY.has(method) && !('tenant' in body)) body.tenant = this.tenant;
    try {
      return await fetch(`/api/v1/${method}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${this.key}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
        cache: 'no-store',
        signal,
      });
    } catch (e) {
      throw new ApiError(method, 0, 0, String(e));
    }
  }

  async call<T = Obj>(method: string, params: Obj = {}): Promise<T> {
    return (await this.read(method, await this.post(method, params))) as T;
  }

  /** A streaming method (`tail`): the body of its text/event-stream answer; errors as for call(). */
  async stream(method: string, params: Obj, signal: AbortSignal): Promise<ReadableStream<Uint8Array>> {
    const r = await this.post(method, params, signal);
    if (r.ok && r.body && (r.headers.get('content-type') ?? '').startsWith('text/event-stream')) return r.body;
    await this.read(method, r);
    throw new ApiError(method, r.status, 0, 'the server answered with JSON, not a stream');
  }

  /** A JSON answer's result, or an ApiError with the server's message. */
  private async read(method: string, r: Response): Promise<unknown> {
    let parsed: unknown = null;
    try { parsed = await r.json(); } catch { /* a proxy's HTML page, an empty body */ }
    const o = parsed as { result?: unknown; error?: { code?: number; message?: string; temporary?: boolean } } | null;
    if (r.ok && o && 'result' in o) return o.result;
    const err = o?.error;
    // A key revoked while signed in: let the shell go back to the sign-in page.
    if (r.status === 401 && this.onUnauthorized) this.onUnauthorized();
    throw new ApiError(method, r.status, err?.code ?? 0, err?.message ?? `HTTP ${r.status} ${r.statusText}`, err?.temporary ?? false);
  }
}

/** Narrowing helpers for answers whose shape we only partly trust. */
export function arr(v: unknown): Obj[] {
  return Array.isArray(v) ? (v.filter((x) => x && typeof x === 'object') as Obj[]) : [];
}
export function numOr(v: unknown, d = 0): number {
  return typeof v === 'number' && Number.isFinite(v) ? v : d;
}
export function strOr(v: unknown, d = ''): string {
  return typeof v === 'string' ? v : d;
}
