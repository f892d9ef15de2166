// The controller: one Parley client per page, a subscription per known room,
// and the glue between its events, the room states and the view.
import { Parley, ParleyError, UnauthorizedError } from '@parley/client';
import type { Publication, Subscription } from '@parley/client';
import { dmChannel, isDM, KnownRooms, LOBBY, roomChannel, validUser } from './rooms.js';
import { Message, Room } from './state.js';
import { View } from './view.js';

const PAGE = 50;            // messages per history page
const TYPING_SHOW_MS = 3500; // a typing push lasts this long on screen (the server sends at most one per 2 s)
const MAX_DM_PROBES = 50;   // DM channels subscribed to find conversations with people seen online

/** The room in the address (`#room=chat:lobby`); hash routing because the server has no SPA fallback. */
export function hashRoom(): string | null {
  const m = /(?:^#|&)room=([^&]*)/.exec(location.hash);
  return m ? decodeURIComponent(m[1]) : null;
}

function errText(e: unknown): string {
  if (e instanceof ParleyError) return `${e.message} (${e.code})`;
  return e instanceof Error ? e.message : String(e);
}

function randomKey(): string {
  const c = globalThis.crypto;
  if (c && typeof c.randomUUID === 'function') return c.randomUUID();
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}

export class Chat {
  private rooms = new Map<string, Room>();
  private subs = new Map<string, Subscription>();
  private known: KnownRooms;
  private active = LOBBY;
  private view: View;
  private everConnected = false;
  private countdown = 0; /* the banner's timer while a reconnect is due */
  /** Pubs delivered since the connection came back (the catch-up), counted for the banner. */
  private catchUp: number | null = null;
  private catchUpTimer = 0;
  private marking = new Map<string, number>();
  private dmProbes = 0;

  constructor(root: HTMLElement, private me: string, private client: Parley, onLogout: () => void) {
    this.known = new KnownRooms(me);
    this.view = new View(root, me, {
      openRoom: (ch) => this.open(ch),
      openTyped: (typed) => this.openTyped(typed),
      send: (text) => this.send(text),
      typing: () => { this.subs.get(this.active)?.typing().catch(() => { /* typing is best effort */ }); },
      scrolled: () => this.scrolled(),
      logout: onLogout,
    });
    this.watchClient();
    for (const ch of this.known.list()) this.room(ch);
    const fromHash = hashRoom();
    this.open(fromHash && this.acceptable(fromHash) ? fromHash : LOBBY);
    window.addEventListener('hashchange', () => {
      const ch = hashRoom();
      if (ch && ch !== this.active && this.acceptable(ch)) this.open(ch);
    });
    document.addEventListener('visibilitychange', () => this.markRead());
    // typing indicators expire without a push: re-check them every second
    window.setInterval(() => this.view.renderTyping(this.room(this.active)), 1000);
    // DMs have presence but no join/leave pushes: ask again now and then
    window.setInterval(() => { if (isDM(this.active) && this.client.state === 'connected') this.refreshPresence(this.active); }, 10000);
  }

  /** A channel this page may open: a chat room, or a DM that includes me. */
  private acceptable(ch: string): boolean {
    if (isDM(ch)) return ch.slice(4).split(',').includes(this.me);
    return roomChannel(ch) === ch;
  }

  // ------------------------------------------------------------ connection

  private watchClient(): void {
    const c = this.client;
    c.on('state', ({ to }) => {
      if (to === 'connected') {
        this.view.setConnection('connected');
        for (const r of this.rooms.values()) for (const m of r.pending) if (m.state === 'queued') m.state = 'sending';
      } else if (to === 'connecting') {
        this.view.setConnection(this.everConnected ? 'reconnecting' : 'disconnected');
        // publishes in flight go back to the outbox until the next connection
        for (const r of this.rooms.values()) for (const m of r.pending) if (m.state === 'sending') m.state = 'queued';
        // who is online is unknown until the subscriptions are back (they ask again)
        for (const r of this.rooms.values()) r.presence.clear();
        this.view.renderPresence(this.room(this.active), (u) => this.openDM(u));
      } else {
        this.view.setConnection('disconnected');
      }
      this.renderActive();
    });
    c.on('connected', () => {
      if (this.everConnected) {
        // the SDK delivers the missed pubs of every resumed subscription right
        // after this event, in the same task: count them until the task ends
        this.catchUp = 0;
        clearTimeout(this.catchUpTimer);
        this.catchUpTimer = window.setTimeout(() => this.endCatchUp(), 0);
      }
      this.everConnected = true;
      window.clearInterval(this.countdown);
    });
    c.on('reconnecting', ({ attempt, delay, reason }) => {
      // an attempt is scheduled: the page is trying, whether or not it was ever connected
      this.view.setConnection('reconnecting');
      this.countDown(Date.now() + delay, attempt, reason);
    });
    // a message written on an earlier page (kept in the IndexedDB outbox) was answered
    c.on('outbox', ({ channel, error }) => {
      if (error) this.view.setBanner(`a message written earlier to ${channel} could not be sent: ${errText(error)}`, 'warn', 10000);
    });
    c.on('error', (e) => {
      if (e instanceof UnauthorizedError || (e instanceof ParleyError && e.code >= 4500 && e.code <= 4999)) {
        this.view.setBanner(`disconnected: ${errText(e)}. Reload the page or log in again.`);
      }
    });
  }

  /** "reconnecting in 3 s…" until the attempt the SDK scheduled is due. */
  private countDown(due: number, attempt: number, reason: string): void {
    window.clearInterval(this.countdown);
    const why = attempt === 1 && reason ? ` (${reason})` : attempt > 1 ? ` (attempt ${attempt})` : '';
    const tick = (): void => {
      const s = Math.ceil((due - Date.now()) / 1000);
      this.view.setBanner(s > 0 ? `reconnecting in ${s} s…${why}` : `reconnecting…${why}`);
      if (s <= 0) window.clearInterval(this.countdown);
    };
    tick();
    this.countdown = window.setInterval(tick, 250);
  }

  private endCatchUp(): void {
    const n = this.catchUp ?? 0;
    this.catchUp = null;
    this.view.setBanner(`back: ${n} missed message${n === 1 ? '' : 's'} loaded`, 'ok', 5000);
  }

  // ------------------------------------------------------------ rooms

  /** The room's state; subscribes on first use, so every known room counts unread messages. */
  private room(ch: string): Room {
    let r = this.rooms.get(ch);
    if (r) return r;
    r = new Room(ch, this.me);
    this.rooms.set(ch, r);
    const sub = this.client.subscribe(ch);
    this.subs.set(ch, sub);
    const room = r;
    sub.on('subscribed', ({ unread }) => this.onSubscribed(room, sub, unread));
    sub.on('publication', (p) => this.onPub(room, p));
    sub.on('gap', () => this.onGap(room));
    sub.on('join', ({ info }) => { this.presenceAdd(room, info.user, info.client); this.probeDM(info.user); });
    sub.on('leave', ({ info }) => {
      const set = room.presence.get(info.user);
      if (set) { set.delete(info.client); if (!set.size) room.presence.delete(info.user); }
      if (room.channel === this.active) this.view.renderPresence(room, (u) => this.openDM(u));
    });
    sub.on('typing', ({ user }) => {
      room.typing.set(user, Date.now() + TYPING_SHOW_MS);
      if (room.channel === this.active) this.view.renderTyping(room);
    });
    // the server's delivery receipt: the other member of a DM acknowledged up to offset
    sub.on('ack', ({ user, offset }) => {
      if (user === this.me) return;
      room.acked = Math.max(room.acked, offset);
      if (room.channel === this.active) this.view.renderMessages(room);
    });
    sub.on('read', ({ user, offset }) => {
      if (user === this.me) room.cursor = Math.max(room.cursor, offset); // my other tab read it
      else room.readers.set(user, Math.max(room.readers.get(user) ?? 0, offset));
      this.renderRoomList();
      if (room.channel === this.active) this.view.renderMessages(room);
    });
    sub.on('error', (e) => {
      if (room.channel === this.active) this.view.setNotice(`${room.channel}: ${errText(e)}`);
    });
    return r;
  }

  private onSubscribed(room: Room, sub: Subscription, unread: number | undefined): void {
    const pos = sub.position;
    if (pos) {
      if (room.epoch && pos.epoch && pos.epoch !== room.epoch) { room.reset(pos.epoch); this.reloadSoon(room); }
      if (!room.epoch) room.epoch = pos.epoch;
      room.head = Math.max(room.head, pos.offset);
    }
    if (typeof unread === 'number') room.cursor = Math.max(0, room.head - unread);
    // how far the others read, also what they read while this page was away
    sub.cursors().then(({ cursors }) => {
      for (const { user, offset } of cursors) {
        if (user === this.me) room.cursor = Math.max(room.cursor, offset);
        else room.readers.set(user, Math.max(room.readers.get(user) ?? 0, offset));
      }
      this.renderRoomList();
      if (room.channel === this.active) this.view.renderMessages(room);
    }, () => { /* receipts are shown again at the next read push */ });
    // a DM found by probing joins the list once it has messages
    if (isDM(room.channel) && room.head > 0) this.known.add(room.channel);
    this.renderRoomList();
    if (room.channel === this.active) {
      this.refreshPresence(room.channel);
      this.markRead();
    }
  }

  private onPub(room: Room, p: Publication): void {
    if (p.offset <= 0) return; /* ephemeral pubs are never messages */
    const fresh = room.addPub(p);
    if (!fresh) return;
    if (this.catchUp !== null && !(room.stored.get(p.offset)?.hidden)) this.catchUp++;
    if (this.known.add(room.channel)) this.renderRoomList();
    if (room.channel === this.active) {
      this.view.renderMessages(room);
      this.view.renderTyping(room);
      this.markRead();
    } else {
      this.renderRoomList();
    }
  }

  /** The server could not deliver part of the stream: what we show may have holes, so start over. */
  private onGap(room: Room): void {
    room.stored.clear();
    room.loaded = false;
    room.more = true;
    if (room.channel === this.active) this.view.setNotice('some history is no longer available; reloaded');
    this.reloadSoon(room);
  }

  /** Reloads the newest page after the pubs the SDK delivers right after a gap. */
  private reloadSoon(room: Room): void {
    window.setTimeout(() => { if (room.channel === this.active) this.loadNewest(room); }, 0);
  }

  private open(ch: string): void {
    this.active = ch;
    const want = `#room=${ch}`;
    if (decodeURIComponent(location.hash) !== want) history.replaceState(null, '', want);
    this.known.add(ch);
    const room = this.room(ch);
    this.renderRoomList();
    this.view.setNotice('');
    this.view.renderMessages(room);
    this.view.renderTyping(room);
    this.view.renderPresence(room, (u) => this.openDM(u));
    if (!room.loaded) this.loadNewest(room);
    this.refreshPresence(ch);
    this.markRead();
    this.view.focusComposer();
  }

  private openDM(user: string): void { if (user !== this.me) this.open(dmChannel(this.me, user)); }

  /** The "open a room" field: `name` for a room, `@name` for a DM. Returns an error to show, or null. */
  private openTyped(typed: string): string | null {
    const t = typed.trim();
    if (t.startsWith('@')) {
      const u = t.slice(1);
      if (!validUser(u)) return 'not a user name';
      if (u === this.me) return 'that is you';
      this.openDM(u);
      return null;
    }
    const ch = roomChannel(t);
    if (!ch) return 'use letters, digits and - _ . = @ /';
    this.open(ch);
    return null;
  }

  // ------------------------------------------------------------ history

  private async loadNewest(room: Room): Promise<void> {
    try {
      const page = await this.client.history(room.channel, { limit: PAGE, reverse: true });
      if (room.epoch && page.epoch && page.epoch !== room.epoch) room.reset(page.epoch);
      for (const p of page.pubs) room.addPub({ ...p, channel: room.channel });
      room.head = Math.max(room.head, page.offset);
      room.loaded = true;
      room.more = page.more || (page.pubs.length === PAGE && page.pubs[page.pubs.length - 1].offset > 1);
    } catch (e) {
      if (room.channel === this.active) this.view.setNotice(`could not load history: ${errText(e)}`);
      return;
    }
    if (room.channel === this.active) {
      this.view.renderMessages(room);
      this.markRead();
      // a short room may not fill the column, so no scroll will ever ask for more
      if (this.view.atTop()) this.loadOlder(room);
    }
  }

  private async loadOlder(room: Room): Promise<void> {
    if (room.loadingOlder || !room.more || !room.loaded) return;
    const oldest = room.oldest();
    if (oldest <= 1) { room.more = false; this.view.renderMessages(room); return; }
    room.loadingOlder = true;
    this.view.renderMessages(room);
    try {
      const page = await this.client.history(room.channel, { limit: PAGE, reverse: true, since: { offset: oldest, epoch: room.epoch } });
      if (page.epoch !== room.epoch) { room.loadingOlder = false; room.reset(page.epoch); this.loadNewest(room); return; }
      for (const p of page.pubs) room.addPub({ ...p, channel: room.channel });
      const last = page.pubs.length ? page.pubs[page.pubs.length - 1].offset : 0;
      room.more = page.more || (page.pubs.length === PAGE && last > 1);
    } catch (e) {
      if (room.channel === this.active) this.view.setNotice(`could not load older messages: ${errText(e)}`);
    }
    room.loadingOlder = false;
    if (room.channel === this.active) this.view.renderMessages(room);
  }

  private scrolled(): void {
    const room = this.room(this.active);
    if (this.view.atTop()) this.loadOlder(room);
    if (this.view.atBottom()) this.markRead();
  }

  // ------------------------------------------------------------ sending and reading

  private send(text: string): void {
    const room = this.room(this.active);
    const key = randomKey();
    const m: Message = {
      offset: 0, id: '', author: this.me, mine: true, text, ts: Date.now(), key,
      state: this.client.state === 'connected' ? 'sending' : 'queued',
    };
    room.pending.push(m);
    this.view.renderMessages(room);
    // DMs go as guaranteed pubs: redelivered until the other side acks them
    const opts = isDM(room.channel) ? { idempotencyKey: key, class: 'guaranteed' } : { idempotencyKey: key };
    this.client.publish(room.channel, { text }, opts).then((r) => {
      room.adopt(m, r.offset, r.id, r.epoch);
      if (room.channel === this.active) { this.view.renderMessages(room); this.markRead(); }
    }, (e) => {
      m.state = 'failed';
      m.error = errText(e);
      // pushes of mine held back while this one was unanswered can show now
      if (!room.pending.some((q) => q.state === 'sending' || q.state === 'queued')) for (const x of room.stored.values()) x.hidden = false;
      if (room.channel === this.active) this.view.renderMessages(room);
    });
  }

  /** Moves my read cursor to the newest message on screen, when a person can see it. */
  private markRead(): void {
    const room = this.rooms.get(this.active);
    const sub = this.subs.get(this.active);
    if (!room || !sub || sub.state !== 'subscribed' || document.visibilityState !== 'visible' || !this.view.atBottom()) return;
    const newest = room.newest();
    if (newest <= room.cursor || newest <= (this.marking.get(room.channel) ?? 0)) return;
    this.marking.set(room.channel, newest);
    sub.markRead(newest).then((r) => {
      room.cursor = Math.max(room.cursor, r.offset);
      this.renderRoomList();
    }, () => { this.marking.delete(room.channel); });
  }

  // ------------------------------------------------------------ presence

  private presenceAdd(room: Room, user: string, client: string): void {
    let set = room.presence.get(user);
    if (!set) room.presence.set(user, (set = new Set()));
    set.add(client);
    if (room.channel === this.active) this.view.renderPresence(room, (u) => this.openDM(u));
  }

  private async refreshPresence(ch: string): Promise<void> {
    const room = this.room(ch);
    try {
      const next = new Map<string, Set<string>>();
      let cursor = 0;
      do {
        const page = await this.client.presence(ch, { cursor, limit: 1000 });
        for (const c of page.clients) {
          let set = next.get(c.user);
          if (!set) next.set(c.user, (set = new Set()));
          set.add(c.client);
        }
        cursor = page.cursor;
      } while (cursor);
      room.presence = next;
      for (const u of next.keys()) this.probeDM(u);
    } catch { /* presence is off in this namespace, or the connection dropped: keep what we have */ }
    if (ch === this.active) this.view.renderPresence(room, (u) => this.openDM(u));
  }

  /**
   * Subscribes to the DM channel with `user`, so a conversation they start
   * shows up (the list shows it once it has messages). Nobody can list the
   * DM channels one is in, so people seen online are probed.
   */
  private probeDM(user: string): void {
    if (user === this.me || !validUser(user) || this.dmProbes >= MAX_DM_PROBES) return;
    const ch = dmChannel(this.me, user);
    if (this.rooms.has(ch)) return;
    this.dmProbes++;
    this.room(ch);
  }

  private renderRoomList(): void {
    this.view.renderRooms(this.known.list(), this.active, this.rooms);
    // the tab's title counts what is unread everywhere, for when the page is in the background
    let total = 0;
    for (const ch of this.known.list()) total += this.rooms.get(ch)?.unread ?? 0;
    document.title = total ? `(${total > 99 ? '99+' : total}) Parley: team chat` : 'Parley: team chat';
  }

  private renderActive(): void {
    const room = this.rooms.get(this.active);
    if (room) this.view.renderMessages(room);
  }
}

function authorOf(p: Publication): string {
  const info = p.info as { user?: unknown } | undefined;
  return info && typeof info.user === 'string' ? info.user : '';
}
