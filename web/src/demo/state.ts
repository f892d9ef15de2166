// What the app knows about each room, independent of the DOM.
import type { Publication } from '@parley/client';

/**
 * Message states, shown as `data-state`:
 *  queued        my message waits in the client's outbox (no connection)
 *  sending       my message is on its way; the server has not stored it yet
 *  stored        stored by the server (every message from history or a push)
 *  acknowledged  DM only: the other person's client received and acked it
 *  seen          DM only: the other person's read cursor passed it
 *  failed        my message was refused (the error is shown beside it)
 */
export type MessageState = 'queued' | 'sending' | 'failed' | 'stored' | 'acknowledged' | 'seen';

export interface Message {
  /** Stored offset; 0 while mine is not stored yet. */
  offset: number;
  id: string;
  author: string;
  /** True for my own messages (from this user, any device). */
  mine: boolean;
  text: string;
  ts: number;
  state: MessageState;
  /** Publish key of a message sent from this page (dedups it with its push). */
  key?: string;
  /** Why a publish of mine failed. */
  error?: string;
  /** A push of mine whose publish answer has not come yet: hidden until it does (see Room.adopt). */
  hidden?: boolean;
}

/** The text of a pub's data: `{text}` objects as written, anything else as JSON. */
export function textOf(data: unknown): string {
  if (data && typeof data === 'object' && typeof (data as { text?: unknown }).text === 'string') return (data as { text: string }).text;
  return typeof data === 'string' ? data : JSON.stringify(data);
}

/** The author: the publishing user (a client publish carries `info.user`); server API publishes have none. */
export function authorOf(p: Publication): string {
  const info = p.info as { user?: unknown } | undefined;
  if (info && typeof info.user === 'string') return info.user;
  const d = p.data as { author?: unknown } | null;
  if (d && typeof d === 'object' && typeof d.author === 'string') return d.author;
  return 'server';
}

export class Room {
  readonly channel: string;
  /** Stored messages by offset. */
  stored = new Map<number, Message>();
  /** Messages of this page not stored yet, in send order. */
  pending: Message[] = [];
  epoch = '';
  /** The channel's newest offset as far as this page knows. */
  head = 0;
  /** My read cursor (server side). */
  cursor = 0;
  /** Other users' read cursors, from `read` pushes seen while subscribed. */
  readers = new Map<string, number>();
  /** DM: the highest offset the other person acknowledged (the server's `ack` pushes). */
  acked = 0;
  /** Who is online: user → client ids (one user may have several tabs). */
  presence = new Map<string, Set<string>>();
  /** Typing users → time (ms) until which the indicator shows. */
  typing = new Map<string, number>();
  /** Whether the newest page of history was loaded for this page. */
  loaded = false;
  /** Older history is still available to page back to. */
  more = true;
  loadingOlder = false;

  constructor(channel: string, readonly me: string) { this.channel = channel; }

  get unread(): number { return Math.max(0, this.head - this.cursor); }

  oldest(): number {
    let min = 0;
    for (const o of this.stored.keys()) if (!min || o < min) min = o;
    return min;
  }

  newest(): number {
    let max = 0;
    for (const o of this.stored.keys()) if (o > max) max = o;
    return max;
  }

  /** Adds a stored pub (from history or a push); false when it was already there. */
  addPub(p: Publication): boolean {
    if (p.offset <= 0) return false;
    if (p.epoch && this.epoch && p.epoch !== this.epoch) this.reset(p.epoch);
    if (!this.epoch) this.epoch = p.epoch;
    if (p.offset > this.head) this.head = p.offset;
    const have = this.stored.get(p.offset);
    if (have) { if (!have.id) have.id = p.id; return false; }
    const author = authorOf(p);
    const mine = author === this.me;
    const m: Message = { offset: p.offset, id: p.id, author, mine, text: textOf(p.data), ts: p.ts, state: 'stored' };
    // the push of a publish from this page can come before its answer: keep it
    // hidden while one of mine is unanswered, so the message never shows twice
    if (mine && this.pending.some((q) => q.state === 'sending' || q.state === 'queued')) m.hidden = true;
    this.stored.set(p.offset, m);
    this.typing.delete(author);
    return true;
  }

  /** My publish was answered: the pending message becomes the stored one at `offset`. */
  adopt(pending: Message, offset: number, id: string, epoch: string): void {
    this.pending = this.pending.filter((q) => q !== pending);
    if (epoch && !this.epoch) this.epoch = epoch;
    if (offset > this.head) this.head = offset;
    const live = this.stored.get(offset);
    pending.offset = offset;
    pending.id = id;
    pending.state = 'stored';
    pending.hidden = false;
    // keep the pending message object: its element is already on screen
    if (live) pending.ts = live.ts;
    this.stored.set(offset, pending);
    if (!this.pending.some((q) => q.state === 'sending' || q.state === 'queued')) for (const m of this.stored.values()) m.hidden = false;
  }

  /** History of another epoch (the channel was lost and restarted): forget what we had. */
  reset(epoch: string): void {
    this.stored.clear();
    this.readers.clear();
    this.epoch = epoch;
    this.head = 0;
    this.cursor = 0;
    this.acked = 0;
    this.loaded = false;
    this.more = true;
  }

  /** Users other than me whose cursor is at or past `offset`. */
  seenBy(offset: number): string[] {
    const out: string[] = [];
    for (const [u, o] of this.readers) if (u !== this.me && o >= offset) out.push(u);
    return out.sort();
  }

  /**
   * My messages that carry a "seen by N" line: the newest one anyone has
   * seen, and each older one where the count changes (where a reader
   * stopped), so a long run of read messages does not repeat the line.
   */
  receiptOffsets(): Set<number> {
    const out = new Set<number>();
    const mine = [...this.stored.values()].filter((m) => m.mine && !m.hidden).sort((a, b) => b.offset - a.offset);
    let prev = -1;
    for (const m of mine) {
      const n = this.seenBy(m.offset).length;
      if (n > 0 && n !== prev) out.add(m.offset);
      prev = n;
    }
    return out;
  }

  /** Typing users now (not me), alphabetical. */
  typingNow(now = Date.now()): string[] {
    const out: string[] = [];
    for (const [u, until] of this.typing) if (until > now && u !== this.me) out.push(u); else if (until <= now) this.typing.delete(u);
    return out.sort();
  }

  /**
   * The state to show. A DM of mine moves on from `stored` as the other side
   * tells: `acknowledged` from the server's ack receipts, `seen` from its read cursor.
   */
  stateOf(m: Message): MessageState {
    if (m.state !== 'stored' || !m.mine || !this.channel.startsWith('dm:#')) return m.state;
    if (this.seenBy(m.offset).length) return 'seen';
    if (this.acked >= m.offset) return 'acknowledged';
    return 'stored';
  }

  onlineUsers(): string[] { return [...this.presence.keys()].sort(); }

  /** Everything to show, oldest first; unstored messages of this page last. */
  messages(): Message[] {
    const list = [...this.stored.values()].filter((m) => !m.hidden).sort((a, b) => a.offset - b.offset);
    return list.concat(this.pending);
  }
}

/** "bob is typing…", "bob and carol are typing…", "3 people are typing…". */
export function typingText(users: string[]): string {
  if (!users.length) return '';
  if (users.length === 1) return `${users[0]} is typing…`;
  if (users.length === 2) return `${users[0]} and ${users[1]} are typing…`;
  return `${users.length} people are typing…`;
}
