// Who is logged in (sessionStorage: a reload stays logged in, a new tab asks
// again) and the token source: the server's development endpoint
// POST /dev/token, which exists only in single-tenant development mode.
import { UnauthorizedError } from '@parley/client';

const KEY = 'parley-demo:user';

export function savedUser(): string | null { return sessionStorage.getItem(KEY); }
export function saveUser(user: string): void { sessionStorage.setItem(KEY, user); }
export function forgetUser(): void { sessionStorage.removeItem(KEY); }

/** A login that cannot work (bad name, no development mode): shown on the login form. */
export class LoginError extends Error {}

/** Fetches a short-lived token for `user`. The SDK calls it again before expiry, so it must not prompt. */
export async function devToken(user: string): Promise<string> {
  let r: Response;
  try {
    r = await fetch('/dev/token', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user }) });
  } catch (e) {
    // the server is down: a temporary failure, the SDK retries with backoff
    throw new Error(`token: ${String(e)}`);
  }
  if (r.status === 404) throw new UnauthorizedError('this server does not hand out development tokens (POST /dev/token answers 404)');
  if (r.status === 400) {
    let msg = 'bad user name';
    try { const b = await r.json(); if (b && b.error && typeof b.error.message === 'string') msg = b.error.message; } catch { /* keep the default */ }
    throw new UnauthorizedError(msg);
  }
  if (!r.ok) throw new Error(`token: HTTP ${r.status}`);
  const body = await r.json();
  // the server answers {"result": {token, user, expires_at}} like its API; a bare object is read too
  const t = body && (body.result && typeof body.result === 'object' ? body.result.token : body.token);
  if (typeof t !== 'string') throw new Error('token: no token in the answer');
  return t;
}
