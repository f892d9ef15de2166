// Test helper: runs the real build/parley on a free loopback port with a
// temporary data dir, mints HS256 tokens, stops (SIGTERM), kills (-9) and
// restarts it on the same data dir.
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync, writeFileSync, openSync, closeSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const PARLEY_BIN = resolve(process.env.PARLEY_BIN || join(here, '..', '..', '..', 'build', 'parley'));
export const SECRET = 'acme-secret-0123456789';

export function b64url(buf) {
  return Buffer.from(buf).toString('base64').replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_');
}

export function makeToken({ user = 'alice', tenant = 'acme', ttl = 3600, secret = SECRET, ...extra } = {}) {
  const head = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const body = b64url(JSON.stringify({ sub: user, tenant, exp: Math.floor(Date.now() / 1000) + ttl, ...extra }));
  const sig = b64url(createHmac('sha256', secret).update(head + '.' + body).digest());
  return `${head}.${body}.${sig}`;
}

export function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => res(port)); });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `cond` until it returns truthy; throws with `what` after `timeout` ms. */
export async function waitFor(cond, what = 'condition', timeout = 20000, step = 10) {
  const end = Date.now() + timeout;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(step);
  }
}

export class Server {
  constructor({ pingInterval = '25s', namespaces } = {}) {
    this.dir = mkdtempSync(join(tmpdir(), 'parley-sdk-'));
    this.dataDir = join(this.dir, 'data');
    this.cfgPath = join(this.dir, 'parley.yaml');
    this.logPath = join(this.dir, 'server.log');
    this.pingInterval = pingInterval;
    this.namespaces = namespaces || [
      { name: '', history_size: 0, history_ttl: '0s' },
      { name: 'chat', history_size: 1000 },
      { name: 'small', history_size: 5 },
      { name: 'rl', publishes_per_second: 5 },
      { name: 'g', class: 'guaranteed', ack_wait: '1s', retry_min: '100ms', retry_max: '200ms' },
    ];
    this.proc = null;
  }

  get url() { return `ws://127.0.0.1:${this.port}/ws`; }

  writeConfig() {
    const lines = [
      `listen: "127.0.0.1:${this.port}"`,
      `data_dir: ${JSON.stringify(this.dataDir)}`,
      `ping_interval: ${JSON.stringify(this.pingInterval)}`,
      'tenants:',
      `  - ${JSON.stringify({ id: 'acme', jwt_secret: SECRET })}`,
      'namespaces:',
      ...this.namespaces.map((n) => `  - ${JSON.stringify(n)}`),
    ];
    writeFileSync(this.cfgPath, lines.join('\n') + '\n');
  }

  async start(timeout = 20000) {
    if (this.proc) throw new Error('server already running');
    if (!this.port) this.port = await freePort();
    this.writeConfig();
    const log = openSync(this.logPath, 'a');
    const proc = spawn(PARLEY_BIN, ['serve', '--config', this.cfgPath], { stdio: ['ignore', log, log], cwd: this.dir });
    closeSync(log);
    this.proc = proc;
    let exited = null;
    proc.once('exit', (code, sig) => { exited = { code, sig }; });
    this.exited = new Promise((r) => proc.once('exit', r));
    const end = Date.now() + timeout;
    while (Date.now() < end) {
      if (exited) { this.proc = null; throw new Error(`server exited during start: ${JSON.stringify(exited)}\n${this.logTail()}`); }
      try {
        const r = await fetch(`http://127.0.0.1:${this.port}/healthz`);
        if (r.status === 200) return this;
      } catch { /* not up yet */ }
      await sleep(25);
    }
    await this.kill();
    throw new Error(`/healthz never answered 200\n${this.logTail()}`);
  }

  /** SIGTERM and wait; returns the exit code. */
  async stop() {
    const p = this.proc;
    if (!p) return null;
    this.proc = null;
    p.kill('SIGTERM');
    const t = setTimeout(() => p.kill('SIGKILL'), 10000);
    const code = await this.exited;
    clearTimeout(t);
    return code;
  }

  /** kill -9 and wait for the process to be gone. */
  async kill() {
    const p = this.proc;
    if (!p) return;
    this.proc = null;
    p.kill('SIGKILL');
    await this.exited;
  }

  signal(sig) { if (this.proc) this.proc.kill(sig); }

  logTail(n = 2000) { try { return readFileSync(this.logPath, 'utf8').slice(-n); } catch { return ''; } }

  async cleanup() { await this.stop(); rmSync(this.dir, { recursive: true, force: true }); }
}

/** Reads a whole channel through the SDK's history call, oldest first. */
export async function readAll(client, channel) {
  const out = [];
  let since = { offset: 0, epoch: '' };
  for (;;) {
    const r = await client.history(channel, { limit: 1000, since });
    if (!r.pubs.length) return out;
    out.push(...r.pubs);
    since = { offset: r.pubs[r.pubs.length - 1].offset, epoch: r.epoch };
    if (since.offset >= r.offset) return out;
  }
}
