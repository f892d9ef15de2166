import {
  Emitter, ParleyError, UnauthorizedError, ErrorCodes, backoff, PositionTracker, randomKey, FrameBatcher, utf8Length,
  type Position, type BatchLimits,
} from './util.js';
import type { OutboxOptions, OutboxEntry } from './outbox.js';

export type ClientState = 'disconnected' | 'connecting' | 'connected' | 'closed';
export type SubscriptionState = 'unsubscribed' | 'subscribing' | 'subscribed';

export interface ParleyOptions {
  /** Connection token (JWT). */
  token?: string;
  /** Called on connect when no token is set, after error 109 or close 4504, and before `expires_at`; throw `UnauthorizedError` to stop. */
  getToken?: () => Promise<string>;
  /** Smallest reconnect delay, ms (default 500). */
  minReconnectDelay?: number;
  /** Largest reconnect delay, ms (default 20000). */
  maxReconnectDelay?: number;
  /** Per-command timeout, ms (default 5000; publish has none, see README). */
  timeout?: number;
  /** Sent in `connect` as `client.name` (logs only). */
  name?: string;
  /** Sent in `connect` as `client.version` (logs only). */
  version?: string;
  /** Publishes waiting or in flight before `publish` rejects with 902 (default 10000). */
  maxOutbox?: number;
  /** Publishes sent and not yet answered (default 256). */
  maxInflight?: number;
  /** Retries of a publish answered 111 (rate limited), each after `retry_after` (default 3). */
  rateLimitRetries?: number;
  /** A persistent outbox: publishes are written to `store` before they count as queued. */
  outbox?: OutboxOptions;
  /** WebSocket constructor to use instead of the global one or `ws`. */
  WebSocket?: any;
  /** Commands issued in the same tick go out as one frame, newline-separated, within these bounds (default 64 commands, 65536 bytes, lowered to fit the server's `max_frame_bytes`); `false` sends one frame per command. */
  batch?: BatchLimits | false;
}

/** The server's limits, from the `connect` result (docs/protocol.md). */
export interface ServerLimits {
  /** ms between two `typing` pushes per user and channel. */
  typing_interval: number;
  /** Largest WebSocket message the server accepts, bytes. */
  max_frame_bytes: number;
  /** Largest pub (data, headers, type, correlation id), bytes. */
  max_message_bytes: number;
  /** Subscriptions per connection. */
  max_channels_per_connection: number;
}

export interface Publication {
  channel: string; offset: number; epoch: string; id: string; ts: number;
  data: unknown; info?: unknown; type?: string; headers?: Record<string, string>;
  attempt?: number; class?: string; correlation_id?: string;
}

export interface PublishOptions {
  class?: string; type?: string; headers?: Record<string, string>;
  correlationId?: string; idempotencyKey?: string;
}

export interface PublishResult { id: string; offset: number; epoch: string; duplicate: boolean }

export interface HistoryOptions { limit?: number; since?: Position; reverse?: boolean }
export interface HistoryResult { pubs: Publication[]; offset: number; epoch: string; more: boolean }

export interface SubscribeOptions {
  /** Start after this stored position (e.g. one saved by the application). */
  since?: Position;
  /** Ack guaranteed pubs after the `publication` handlers (default true). */
  autoAck?: boolean;
  /** Channel token, for private namespaces. */
  token?: string;
}

export interface ClientEvents extends Record<string, unknown> {
  state: { from: ClientState; to: ClientState; reason: string };
  connected: { client: string; user: string; tenant: string };
  disconnected: { code: number; reason: string; reconnect: boolean };
  /** The next connection attempt is due in `delay` ms (attempt counts from 1 since the last connection). */
  reconnecting: { attempt: number; delay: number; reason: string };
  error: ParleyError | Error;
  /** A publish restored from the outbox store (made by an earlier client) was answered. */
  outbox: { key: string; channel: string; result?: PublishResult; error?: ParleyError | Error };
}

/** `join` and `leave` pushes (namespaces with `join_leave`). */
export interface PresenceEvent { channel: string; info: { user: string; client: string } }
/** `typing` push: `user` is typing in `channel`. */
export interface TypingEvent { channel: string; user: string }
/** `read` push: `user`'s read cursor of `channel` moved to `offset`. `ack` push (channels of named users, `dm:#a,b`): `user` acknowledged the guaranteed pubs up to `offset`. */
export interface ReadEvent { channel: string; user: string; offset: number }
/** `cursors`: how far each user read the channel; `offset` and `epoch` are the channel's head. */
export interface CursorsResult { cursors: { user: string; offset: number }[]; offset: number; epoch: string }
/** A page of `presence`. */
export interface PresenceResult { clients: { client: string; user: string; info?: unknown; since?: number }[]; cursor: number }

export interface SubscriptionEvents extends Record<string, unknown> {
  state: { from: SubscriptionState; to: SubscriptionState };
  publication: Publication;
  subscribed: { recovered: boolean; unread?: number };
  gap: { from: number; to: number; epoch: string };
  join: PresenceEvent; leave: PresenceEvent; typing: TypingEvent; read: ReadEvent; ack: ReadEvent;
  unsubscribed: { reason: string };
  error: ParleyError;
}

interface Pending { resolve(r: any): void; reject(e: Error): void; timer?: ReturnType<typeof setTimeout> }

interface OutboxItem {
  params: Record<string, unknown>;
  resolve(r: PublishResult): void;
  reject(e: Error): void;
  tries: number;
  seq: number;
  key: string;
  stored: boolean;
}

function toError(e: any): ParleyError {
  return new ParleyError(e.code, e.message, !!e.temporary, e.retry_after);
}

let wsCtor: any;
async function loadWebSocket(): Promise<any> {
  if (wsCtor) return wsCtor;
  const g = (globalThis as any).WebSocket;
  if (g) return (wsCtor = g);
  const name = 'ws'; // a variable, so bundlers leave it alone
  const mod: any = await import(/* @vite-ignore */ name);
  return (wsCtor = mod.WebSocket || mod.default);
}

export class Subscription extends Emitter<SubscriptionEvents> {
  state: SubscriptionState = 'unsubscribed';
  readonly channel: string;
  /** @internal */ tracker: PositionTracker;
  /** @internal */ autoAck: boolean;
  /** @internal */ token?: string;
  /** @internal waiting for the gap push of a non-recovered resume */ held: Publication[] | null = null;
  private seenIds = new Set<string>();
  private seenOrder: string[] = [];
  private lastTyping = 0;

  /** @internal use `client.subscribe(channel)` */
  constructor(private client: Parley, channel: string, opts: SubscribeOptions) {
    super();
    this.channel = channel;
    this.tracker = new PositionTracker(opts.since);
    this.autoAck = opts.autoAck !== false;
    this.token = opts.token;
  }

  /** Offset and epoch of the last stored pub delivered to the application. */
  get position(): Position | null { return this.tracker.position ? { ...this.tracker.position } : null; }

  /** @internal */ setState(to: SubscriptionState): void {
    if (to === this.state) return;
    const from = this.state;
    this.state = to;
    this.emit('state', { from, to });
  }

  /** @internal */ fire<K extends keyof SubscriptionEvents>(ev: K, arg: SubscriptionEvents[K]): void { this.emit(ev, arg); }

  /** @internal pushes that arrived before the subscribe (or connect) result */
  pre: any[] | null = null;

  /** @internal a subscribe or resume is on its way: hold pushes until its result */
  expectResult(): void { if (!this.pre) this.pre = []; }

  /** @internal subscribe (or resume) result */
  onResult(r: any, resumed: boolean): void {
    const pubs: Publication[] = (r.pubs || []).map((p: any) => ({ channel: this.channel, ...p }));
    const early = this.pre || [];
    this.pre = null;
    this.held = null;
    this.setState('subscribed');
    if (resumed && !r.recovered) {
      this.held = pubs; // the gap push follows; deliver after it
      this.emit('subscribed', { recovered: false, unread: r.unread });
    } else {
      if (!resumed || !this.tracker.position) this.tracker.reset(r.offset - pubs.length, r.epoch);
      this.emit('subscribed', { recovered: !!r.recovered, unread: r.unread });
      for (const p of pubs) this.onPub(p);
    }
    for (const m of early) { if (m.push === 'gap') this.onGap(m); else this.onPub(m); }
  }

  /** @internal */
  onGap(g: any): void {
    if (this.pre) { this.pre.push(g); return; }
    const gap = { from: g.from, to: g.to, epoch: g.epoch };
    if (this.held) {
      const held = this.held;
      this.held = null;
      // the position moves to the server's: just before the first pub it sends
      const first = held.length ? held[0].offset - 1 : g.to;
      this.tracker.reset(first, g.epoch);
      this.emit('gap', gap);
      for (const p of held) this.onPub(p);
      return;
    }
    this.tracker.reset(g.to, g.epoch);
    this.emit('gap', gap);
  }

  /** @internal */
  onPub(p: Publication): void {
    if (this.pre) { this.pre.push(p); return; }
    if (this.held) { this.held.push(p); return; }
    if (p.class === 'guaranteed' && p.id) {
      if (this.seenIds.has(p.id)) { if (this.autoAck) this.client.sendAck(this.channel, p.offset); return; }
      this.seenIds.add(p.id);
      this.seenOrder.push(p.id);
      if (this.seenOrder.length > 10000) this.seenIds.delete(this.seenOrder.shift()!);
    }
    if (this.tracker.accept(p.offset, p.epoch) === 'duplicate' && p.class !== 'guaranteed') return;
    const waits = this.emit('publication', p);
    if (p.class === 'guaranteed' && this.autoAck) {
      if (waits.length) Promise.all(waits).then(() => this.client.sendAck(this.channel, p.offset), () => {});
      else this.client.sendAck(this.channel, p.offset);
    }
  }

  /** Pages through the channel's history (see docs/protocol.md, History paging). */
  history(opts: HistoryOptions = {}): Promise<HistoryResult> { return this.client.history(this.channel, opts); }
  /** Sends `typing`, at most once per the server's `typing_interval` (from the connect result); calls in between resolve at once. */
  typing(): Promise<void> {
    const now = Date.now();
    if (now - this.lastTyping < this.client.typingInterval) return Promise.resolve();
    this.lastTyping = now;
    return this.client.call('typing', { channel: this.channel }).then(() => undefined);
  }
  /** Moves the user's read cursor forward to `offset` (the `read` push goes to the others); returns the cursor and `unread`. */
  markRead(offset: number): Promise<{ offset: number; unread: number }> {
    return this.client.call('read', { channel: this.channel, offset });
  }
  /** Every user's read cursor on the channel, furthest first (at most `limit`, default 1000): read receipts to show again after a reload. */
  cursors(opts: { limit?: number } = {}): Promise<CursorsResult> {
    return this.client.call('cursors', { channel: this.channel, ...(opts.limit !== undefined ? { limit: opts.limit } : {}) });
  }
  /** Acknowledges the guaranteed pubs up to `offset` (for `autoAck: false`). */
  ack(offset: number): Promise<{ acknowledged: number }> {
    return this.client.call('ack', { channel: this.channel, offset });
  }
  /** Same as `client.unsubscribe(channel)`. */
  unsubscribe(): void { this.client.unsubscribe(this.channel); }
}

export class Parley extends Emitter<ClientEvents> {
  state: ClientState = 'disconnected';
  readonly url: string;
  private opts: Required<Pick<ParleyOptions, 'minReconnectDelay' | 'maxReconnectDelay' | 'timeout' | 'maxOutbox' | 'maxInflight' | 'rateLimitRetries'>> & ParleyOptions;
  private token?: string;
  private ws: any = null;
  private nextId = 1;
  private pending = new Map<number, Pending>();
  private subs = new Map<string, Subscription>();
  private outbox: OutboxItem[] = [];
  private inflight = new Map<number, OutboxItem>();
  private attempts = 0;
  private reconnectTimer?: ReturnType<typeof setTimeout>;
  private silenceTimer?: ReturnType<typeof setTimeout>;
  private refreshTimer?: ReturnType<typeof setTimeout>;
  private pingMs = 0;
  private retryAfter = 0;
  private waiters: { resolve(): void; reject(e: Error): void }[] = [];
  private netHandlers: [string, () => void][] | null = null;
  private offline = false;
  private retryPending = false;
  private seq = 0;
  private pausedUntil = 0;
  private storeChain: Promise<void> = Promise.resolve();
  private storing = 0;
  private batcher: FrameBatcher | null = null;
  /** The server's limits from the last `connect` result; null before it, or from a server that does not send them. */
  serverLimits: ServerLimits | null = null;

  constructor(url: string, opts: ParleyOptions = {}) {
    super();
    this.url = url;
    this.opts = {
      minReconnectDelay: 500, maxReconnectDelay: 20000, timeout: 5000, maxOutbox: 10000,
      maxInflight: 256, rateLimitRetries: 3, ...opts,
    };
    this.token = opts.token;
    if (opts.outbox) this.loadOutbox();
  }

  // ------------------------------------------------------------ public API

  /** Starts connecting (also done by subscribe, publish and the other calls). */
  connect(): void {
    if (this.state === 'connecting' || this.state === 'connected') return;
    this.attempts = 0;
    this.listenNetwork(true);
    this.setState('connecting', 'connect called');
    this.open();
  }

  /** Closes the connection and stops reconnecting; queued publishes stay queued. */
  disconnect(): void {
    this.stop('disconnect called', 'disconnected');
  }

  /** Resolves when connected; rejects when the client is closed or disconnected. */
  ready(): Promise<void> {
    if (this.state === 'connected') return Promise.resolve();
    if (this.state === 'disconnected') this.connect();
    if (this.state === 'closed') return Promise.reject(new ParleyError(ErrorCodes.CLIENT_CLOSED, 'client closed'));
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /** The channel's Subscription (created, and subscribed once connected, on the first call; no await needed). */
  subscribe(channel: string, opts: SubscribeOptions = {}): Subscription {
    let sub = this.subs.get(channel);
    if (sub) return sub;
    sub = new Subscription(this, channel, opts);
    this.subs.set(channel, sub);
    sub.setState('subscribing');
    if (this.state === 'connected') this.sendSubscribe(sub, false);
    else if (this.state === 'disconnected') this.connect();
    return sub;
  }

  /** The existing Subscription of the channel, if any. */
  getSubscription(channel: string): Subscription | undefined { return this.subs.get(channel); }

  /** Unsubscribes and forgets the Subscription (its `unsubscribed` event fires). */
  unsubscribe(channel: string): void {
    const sub = this.subs.get(channel);
    if (!sub) return;
    this.subs.delete(channel);
    if (this.state === 'connected') this.send({ id: this.nextId++, method: 'unsubscribe', params: { channel } });
    sub.setState('unsubscribed');
    sub.fire('unsubscribed', { reason: 'unsubscribe called' });
  }

  /** Resolves after the server stored the pub; retried with the same key across reconnects. */
  publish(channel: string, data: unknown, opts: PublishOptions = {}): Promise<PublishResult> {
    if (this.state === 'closed') return Promise.reject(new ParleyError(ErrorCodes.CLIENT_CLOSED, 'client closed'));
    if (this.outbox.length + this.inflight.size + this.storing >= this.opts.maxOutbox)
      return Promise.reject(new ParleyError(ErrorCodes.OUTBOX_FULL, 'outbox full', true));
    const key = opts.idempotencyKey || randomKey();
    const params: Record<string, unknown> = { channel, data, idempotency_key: key };
    if (opts.class) params.class = opts.class;
    if (opts.type) params.type = opts.type;
    if (opts.headers) params.headers = opts.headers;
    if (opts.correlationId) params.correlation_id = opts.correlationId;
    return new Promise((resolve, reject) => {
      const item: OutboxItem = { params, resolve, reject, tries: 0, seq: 0, key, stored: false };
      const store = this.opts.outbox && this.opts.outbox.store;
      if (!store) {
        item.seq = this.seq++;
        this.enqueue(item);
        return;
      }
      // written to the store before it counts as queued; the chain keeps call order
      this.storing++;
      this.storeChain = this.storeChain.then(async () => {
        item.seq = this.seq++;
        try {
          await store.put({ key, seq: item.seq, params });
          item.stored = true;
        } catch (e) {
          this.storing--;
          this.emit('error', e as Error);
          return reject(e as Error);
        }
        this.storing--;
        if (this.state === 'closed') return this.settle(item, new ParleyError(ErrorCodes.CLIENT_CLOSED, 'client closed'));
        this.enqueue(item);
      });
    });
  }

  /** Resolves when every publish accepted so far has been written to the outbox store (at once without a store). */
  outboxSaved(): Promise<void> { return this.storeChain; }

  private enqueue(item: OutboxItem): void {
    this.outbox.push(item);
    if (this.state === 'disconnected') this.connect();
    else this.flush();
  }

  /** Settles a publish once (result or error) and removes it from the store. */
  private settle(item: OutboxItem, err: Error | null, r?: PublishResult): void {
    if (err) item.reject(err); else item.resolve(r!);
    const store = this.opts.outbox && this.opts.outbox.store;
    if (store && item.stored) {
      item.stored = false;
      store.delete(item.key).catch((e) => this.emit('error', e));
    }
  }

  /** Loads the store's entries (publishes of an earlier client) in front of the outbox. */
  private loadOutbox(): void {
    const store = this.opts.outbox!.store;
    this.storeChain = this.storeChain.then(() => store.load()).then((entries) => {
      entries.sort((a, b) => a.seq - b.seq);
      for (const e of entries) {
        const channel = String(e.params.channel);
        const item: OutboxItem = {
          params: { ...e.params, idempotency_key: e.key }, tries: 0, seq: e.seq, key: e.key, stored: true,
          resolve: (result) => this.emit('outbox', { key: e.key, channel, result }),
          reject: (error) => this.emit('outbox', { key: e.key, channel, error }),
        };
        this.outbox.push(item);
      }
      if (entries.length) this.seq = Math.max(this.seq, entries[entries.length - 1].seq + 1);
      this.outbox.sort((a, b) => a.seq - b.seq);
      if (entries.length && this.state === 'disconnected') this.connect();
      else this.flush();
    }, (e) => { this.emit('error', e); });
  }

  /** Reads stored pubs: `since` a position (exclusive), up to `limit`, newest first with `reverse`. */
  history(channel: string, opts: HistoryOptions = {}): Promise<HistoryResult> {
    const params: Record<string, unknown> = { channel };
    if (opts.limit !== undefined) params.limit = opts.limit;
    if (opts.since) params.since = opts.since;
    if (opts.reverse) params.reverse = true;
    return this.call('history', params).then((r: any) => ({
      ...r, pubs: (r.pubs || []).map((p: any) => ({ channel, ...p })),
    }));
  }

  /** One page of the channel's subscribers; pass `cursor` back for the next (0 at the end). */
  presence(channel: string, opts: { cursor?: number; limit?: number } = {}): Promise<PresenceResult> {
    return this.call('presence', { channel, ...opts });
  }

  /** Counts of the channel's subscribed clients and distinct users. */
  presenceStats(channel: string): Promise<{ clients: number; users: number }> {
    return this.call('presence_stats', { channel });
  }

  /** Sends one command once connected; rejects on error or after `timeout`. */
  async call(method: string, params: Record<string, unknown>): Promise<any> {
    await this.ready();
    return this.request(method, params);
  }

  // ------------------------------------------------------------ internals

  /** @internal ms between two typing commands: the server's (its default before the first connect result) */
  get typingInterval(): number {
    const l = this.serverLimits;
    return l && typeof l.typing_interval === 'number' ? l.typing_interval : 2000;
  }

  /**
   * In browsers (and workers): `offline` drops the connection at once instead
   * of waiting for the ping check, and holds reconnect attempts back (one try
   * per `maxReconnectDelay`, for a server on the same machine); `online`
   * reconnects at once. Removed by `disconnect()` and on close.
   */
  private listenNetwork(on: boolean): void {
    const g = globalThis as any;
    if (on && !this.netHandlers && typeof g.addEventListener === 'function' && g.navigator && typeof g.navigator.onLine === 'boolean') {
      this.offline = !g.navigator.onLine;
      this.netHandlers = [['offline', () => this.onOffline()], ['online', () => this.onOnline()]];
      for (const [ev, fn] of this.netHandlers) g.addEventListener(ev, fn);
    } else if (!on && this.netHandlers) {
      for (const [ev, fn] of this.netHandlers) g.removeEventListener(ev, fn);
      this.netHandlers = null;
      this.offline = false;
    }
  }

  private onOffline(): void {
    this.offline = true;
    if (this.state !== 'connected' && this.state !== 'connecting') return;
    if (this.ws) return this.onClose(1006, 'offline');
    if (!this.retryPending) return; // open() is awaiting getToken: its dial fails or succeeds on its own
    clearTimeout(this.reconnectTimer);
    this.scheduleReconnect('offline'); // the slow pace while offline
  }

  private onOnline(): void {
    this.offline = false;
    if (this.state !== 'connecting' || !this.retryPending) return; // connected, or a dial is under way
    clearTimeout(this.reconnectTimer);
    this.retryPending = false;
    this.attempts = 0;
    this.open();
  }

  /** @internal */ sendAck(channel: string, offset: number): void {
    if (this.state === 'connected') this.send({ id: this.nextId++, method: 'ack', params: { channel, offset } });
  }

  private setState(to: ClientState, reason: string): void {
    if (to === this.state) return;
    const from = this.state;
    this.state = to;
    this.emit('state', { from, to, reason });
    if (to === 'connected') { for (const w of this.waiters.splice(0)) w.resolve(); }
    if (to === 'closed' || to === 'disconnected') {
      const e = new ParleyError(ErrorCodes.CLIENT_CLOSED, 'client ' + to + ': ' + reason);
      for (const w of this.waiters.splice(0)) w.reject(e);
    }
  }

  private request(method: string, params: Record<string, unknown>, ws = this.ws): Promise<any> {
    return new Promise((resolve, reject) => {
      const id = this.nextId++;
      const p: Pending = { resolve, reject };
      p.timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new ParleyError(ErrorCodes.TIMEOUT, method + ': timeout', true));
      }, this.opts.timeout);
      this.pending.set(id, p);
      this.send({ id, method, params }, ws);
    });
  }

  private send(msg: unknown, ws = this.ws): void {
    if (!ws || ws.readyState !== 1) return;
    const text = JSON.stringify(msg);
    if (ws === this.ws && this.batcher) this.batcher.push(text); else ws.send(text);
  }

  private async open(): Promise<void> {
    this.clearTimers();
    let token = this.token;
    try {
      if (!token && this.opts.getToken) token = this.token = await this.opts.getToken();
    } catch (e) {
      if (e instanceof UnauthorizedError) return this.fail(e, 'getToken: unauthorized');
      this.emit('error', e as Error);
      return this.scheduleReconnect('getToken failed');
    }
    if (this.state !== 'connecting') return;
    let Ctor: any;
    try { Ctor = this.opts.WebSocket || await loadWebSocket(); } catch (e) {
      return this.fail(new ParleyError(ErrorCodes.TRANSPORT, 'no WebSocket: install the ws package'), 'no transport');
    }
    if (this.state !== 'connecting') return;
    const ws = new Ctor(this.url, 'parley.v1');
    this.ws = ws;
    this.batcher = null; // made on connect, bounded by the server's max_frame_bytes
    this.armSilence(this.pingMs ? this.pingMs * 2 + 1000 : 15000); // a handshake that hangs
    ws.onopen = () => {
      if (ws !== this.ws) return;
      this.armSilence(this.pingMs ? this.pingMs * 2 + 1000 : 15000);
      const subs: Record<string, Position> = {};
      for (const s of this.subs.values()) if (s.tracker.position) subs[s.channel] = s.tracker.position;
      const params: Record<string, unknown> = { token };
      if (this.opts.name) params.client = { name: this.opts.name, version: this.opts.version || '' };
      if (Object.keys(subs).length) params.subs = subs;
      for (const s of this.subs.values()) { s.pre = null; s.held = null; s.expectResult(); s.setState('subscribing'); }
      this.request('connect', params, ws).then((r) => this.onConnected(ws, r, subs), (e) => {
        if (ws !== this.ws) return;
        if (e.code === 109) { this.token = undefined; }
        if (e.code === 101) return; // the server closes with 4500 next
        if (e.code !== 109) this.emit('error', e);
      });
    };
    ws.onmessage = (ev: any) => {
      if (ws !== this.ws) return;
      this.armSilence(this.pingMs ? this.pingMs * 2 + 1000 : 15000);
      const text = typeof ev.data === 'string' ? ev.data : String(ev.data);
      for (const line of text.split('\n')) {
        if (!line) continue;
        let msg: any;
        try { msg = JSON.parse(line); } catch { continue; }
        this.onMessage(msg);
      }
    };
    ws.onerror = () => {};
    ws.onclose = (ev: any) => { if (ws === this.ws) this.onClose(ev.code || 1006, ev.reason || 'connection closed'); };
  }

  private onConnected(ws: any, r: any, resumed: Record<string, Position>): void {
    if (ws !== this.ws) return;
    this.attempts = 0;
    this.serverLimits = r.limits && typeof r.limits === 'object' ? { ...r.limits } : null;
    this.batcher = this.makeBatcher(ws);
    this.pingMs = (r.ping || 25) * 1000;
    this.armSilence(this.pingMs * 2 + 1000);
    if (r.expires_at && this.opts.getToken) {
      const ms = r.expires_at * 1000 - Date.now();
      this.refreshTimer = setTimeout(() => this.refreshToken(), Math.min(2147483647, Math.max(1000, ms * 0.9)));
    }
    this.setState('connected', 'connected');
    this.emit('connected', { client: r.client, user: r.user, tenant: r.tenant });
    const results = r.subs || {};
    for (const sub of this.subs.values()) {
      const res = results[sub.channel];
      if (res && res.error) {
        this.subs.delete(sub.channel);
        sub.setState('unsubscribed');
        sub.fire('error', toError(res.error));
        sub.fire('unsubscribed', { reason: res.error.message });
      } else if (res) sub.onResult(res, !!resumed[sub.channel]);
      else this.sendSubscribe(sub, false);
    }
    // publishes sent before the drop are re-sent first, with their keys
    this.flush();
  }

  /** The frame batcher of a connection: the `batch` bounds, bytes lowered below the server's `max_frame_bytes`. */
  private makeBatcher(ws: any): FrameBatcher | null {
    const b = this.opts.batch;
    if (b === false) return null;
    let maxBytes = (b && b.maxBytes) || 65536;
    const f = this.serverLimits?.max_frame_bytes ?? 0;
    if (f > 0) maxBytes = Math.min(maxBytes, f - Math.min(1024, f >> 1)); // headroom
    return new FrameBatcher((frame) => { if (ws.readyState === 1) ws.send(frame); }, { ...b, maxBytes });
  }

  private sendSubscribe(sub: Subscription, _resumed: boolean): void {
    const params: Record<string, unknown> = { channel: sub.channel };
    const since = sub.tracker.position;
    if (since) params.since = since;
    if (sub.token) params.token = sub.token;
    const ws = this.ws;
    sub.expectResult();
    this.request('subscribe', params, ws).then((r) => {
      if (ws === this.ws && this.subs.get(sub.channel) === sub) sub.onResult(r, !!since);
    }, (e) => {
      if (ws !== this.ws || this.subs.get(sub.channel) !== sub) return;
      if (e.code === ErrorCodes.TIMEOUT || e.temporary) return; // retried on reconnect
      this.subs.delete(sub.channel);
      sub.setState('unsubscribed');
      sub.fire('error', e);
      sub.fire('unsubscribed', { reason: e.message });
    });
  }

  private flush(): void {
    if (this.state !== 'connected' || Date.now() < this.pausedUntil) return;
    while (this.outbox.length && this.inflight.size < this.opts.maxInflight) {
      const item = this.outbox.shift()!;
      this.sendPublish(item);
    }
  }

  private sendPublish(item: OutboxItem): void {
    const id = this.nextId++;
    const ws = this.ws;
    this.inflight.set(id, item);
    const p: Pending = {
      resolve: (r) => { this.inflight.delete(id); this.settle(item, null, r); this.flush(); },
      reject: (e: any) => {
        this.inflight.delete(id);
        if (e.code === 111 && item.tries < this.opts.rateLimitRetries) {
          // rate limited: hold the whole outbox for retry_after, keeping call order
          item.tries++;
          const wait = e.retryAfter || 1000;
          this.requeue([item]);
          this.pausedUntil = Math.max(this.pausedUntil, Date.now() + wait);
          setTimeout(() => this.flush(), wait + 1);
        } else this.settle(item, e);
        this.flush();
      },
    };
    // no per-command timeout: an unanswered publish stays in flight until the
    // server answers or the connection is found dead (ping silence), then it is
    // re-sent with the same key; a timeout would leave its outcome unknown
    this.pending.set(id, p);
    const msg = { id, method: 'publish', params: item.params };
    const f = this.serverLimits?.max_frame_bytes ?? 0;
    if (f > 0 && utf8Length(JSON.stringify(msg)) > f) {
      // the server would close the connection (1009) and the re-send would again
      this.pending.delete(id);
      return p.reject(new ParleyError(106, 'limit exceeded: the publish is over the server\'s max_frame_bytes (' + f + ')'));
    }
    this.send(msg, ws);
  }

  private onMessage(msg: any): void {
    if (msg.id !== undefined && msg.push === undefined) {
      const p = this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id);
      clearTimeout(p.timer);
      if (msg.error) p.reject(toError(msg.error)); else p.resolve(msg.result);
      return;
    }
    switch (msg.push) {
      case 'ping': this.send({ method: 'pong' }); return;
      case 'pub': { const s = this.subs.get(msg.channel); if (s) s.onPub(msg); return; }
      case 'gap': { const s = this.subs.get(msg.channel); if (s) s.onGap(msg); return; }
      case 'join': case 'leave': case 'typing': case 'read': case 'ack': {
        const s = this.subs.get(msg.channel); if (s) s.fire(msg.push, msg); return;
      }
      case 'disconnect':
        this.retryAfter = msg.retry_after || 0;
        return;
    }
  }

  private onClose(code: number, reason: string): void {
    const ws = this.ws;
    this.ws = null;
    this.batcher = null; // its publishes are in flight: dropPending puts them back
    try { ws && ws.close(); } catch { /* already closed */ }
    this.clearTimers();
    this.dropPending();
    if (this.state === 'closed' || this.state === 'disconnected') return;
    if (code === 4504) {
      this.token = undefined;
      if (this.opts.getToken) {
        this.emit('disconnected', { code, reason, reconnect: true });
        return this.scheduleReconnect(reason, true);
      }
    }
    if (code >= 4500 && code <= 4999) {
      this.emit('disconnected', { code, reason, reconnect: false });
      return this.fail(new ParleyError(code, reason), reason);
    }
    this.emit('disconnected', { code, reason, reconnect: true });
    this.scheduleReconnect(reason, code === 4000);
  }

  /** Answers of the lost connection never come: in-flight publishes go back to the outbox, front first. */
  private dropPending(): void {
    const back: OutboxItem[] = [];
    for (const [id, item] of this.inflight) { back.push(item); const p = this.pending.get(id); if (p) clearTimeout(p.timer); this.pending.delete(id); }
    this.inflight.clear();
    this.requeue(back);
    const err = new ParleyError(ErrorCodes.TRANSPORT, 'connection lost', true);
    for (const p of this.pending.values()) { clearTimeout(p.timer); p.reject(err); }
    this.pending.clear();
  }

  /** Puts publishes back into the outbox in call order. */
  private requeue(items: OutboxItem[]): void {
    if (!items.length) return;
    this.outbox.push(...items);
    this.outbox.sort((a, b) => a.seq - b.seq);
  }

  private scheduleReconnect(reason: string, soon = false): void {
    if (this.state === 'connected') this.setState('connecting', reason);
    if (this.state !== 'connecting') return;
    const min = this.opts.minReconnectDelay;
    let delay = soon ? Math.round(Math.random() * min) : backoff(this.attempts, min, this.opts.maxReconnectDelay);
    if (this.offline) delay = this.opts.maxReconnectDelay; // the online event reconnects at once
    if (this.retryAfter) { delay = Math.max(delay, this.retryAfter); this.retryAfter = 0; }
    this.attempts++;
    this.retryPending = true;
    this.reconnectTimer = setTimeout(() => { this.retryPending = false; this.open(); }, delay);
    this.emit('reconnecting', { attempt: this.attempts, delay, reason });
  }

  /** Sends `refresh` with a token from getToken; a 109 reply (the token was already expired) gets one more getToken and `refresh`. */
  private refreshToken(retry = true): void {
    const getToken = this.opts.getToken;
    if (!getToken || this.state !== 'connected') return;
    const ws = this.ws;
    getToken().then((t) => {
      this.token = t;
      return this.request('refresh', { token: t }, ws);
    }).then((r: any) => {
      if (ws !== this.ws || !r || !r.expires_at) return;
      this.refreshTimer = setTimeout(() => this.refreshToken(), Math.min(2147483647, Math.max(1000, (r.expires_at * 1000 - Date.now()) * 0.9)));
    }, (e) => {
      if (e instanceof UnauthorizedError) this.fail(e, 'getToken: unauthorized');
      else if (e.code === 109) {
        this.token = undefined; // never reconnect with it
        if (retry && ws === this.ws) this.refreshToken(false);
        else this.emit('error', e); // the server closes with 4504 at expiry; a new token is fetched then
      } else this.emit('error', e);
    });
  }

  private armSilence(ms: number): void {
    clearTimeout(this.silenceTimer);
    const ws = this.ws;
    this.silenceTimer = setTimeout(() => {
      if (ws === this.ws) this.onClose(4003, 'server silent');
    }, ms);
  }

  private clearTimers(): void {
    this.retryPending = false;
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.silenceTimer);
    clearTimeout(this.refreshTimer);
  }

  private fail(e: Error, reason: string): void {
    this.emit('error', e);
    this.stop(reason, 'closed');
    const err = e instanceof ParleyError ? e : new ParleyError(101, e.message);
    for (const item of this.outbox.splice(0)) this.settle(item, err);
  }

  private stop(reason: string, to: 'closed' | 'disconnected'): void {
    const ws = this.ws;
    if (this.batcher) this.batcher.flush(); // commands issued before disconnect() still go out
    this.ws = null;
    this.batcher = null;
    this.clearTimers();
    this.dropPending();
    if (ws) { try { ws.close(1000, reason); } catch { /* ignore */ } }
    for (const s of this.subs.values()) if (s.state === 'subscribed') s.setState('subscribing');
    this.listenNetwork(false);
    this.setState(to, reason);
  }
}
