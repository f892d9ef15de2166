// The page: login form, room sidebar, message column, presence column. Builds
// the DOM once and updates it in place; message elements are kept per message
// so a re-render never moves the reader's scroll position by itself.
import { h, setChildren, show } from './dom.js';
import { isDM, label } from './rooms.js';
import { Message, Room, typingText } from './state.js';

export type ConnectionText = 'connected' | 'reconnecting' | 'disconnected';

export interface ViewHandlers {
  openRoom(channel: string): void;
  openTyped(typed: string): string | null;
  send(text: string): void;
  typing(): void;
  scrolled(): void;
  logout(): void;
}

/** Login screen; resolves the handler with the typed name. */
export function renderLogin(root: HTMLElement, onSubmit: (name: string) => void, error = ''): HTMLElement {
  const input = h('input', { 'data-testid': 'login-name', id: 'login-name', autocomplete: 'username', placeholder: 'e.g. alice', required: '' });
  const err = h('p', { class: 'login-error', role: 'alert' }, error);
  show(err, !!error);
  const form = h('form', { class: 'login' },
    h('h1', {}, 'Parley'),
    h('p', { class: 'muted' }, 'A small team chat on a Parley server.'),
    h('label', { for: 'login-name' }, 'Your name'),
    input,
    h('button', { type: 'submit', 'data-testid': 'login-submit' }, 'Log in'),
    err);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const name = input.value.trim();
    if (name) onSubmit(name);
  });
  setChildren(root, h('div', { class: 'login-page' }, form));
  input.focus();
  return err;
}

function clock(ts: number): string {
  if (!ts) return '';
  const d = new Date(ts);
  return `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
}

const STATE_LABEL: Record<string, string> = {
  queued: 'queued: offline, sent on reconnect',
  sending: 'sending…',
  failed: 'not sent',
  stored: '',
  acknowledged: 'delivered',
  seen: 'seen',
};

export class View {
  readonly connection = h('span', { class: 'conn', 'data-testid': 'connection-state' }, 'disconnected');
  private banner = h('div', { class: 'banner', role: 'status' });
  private notice = h('div', { class: 'notice', role: 'status' });
  private roomList = h('ul', { class: 'rooms', 'data-testid': 'room-list' });
  private roomTitle = h('h2', { class: 'room-title' });
  private roomSub = h('span', { class: 'room-sub muted' });
  private list = h('ol', { class: 'messages', 'data-testid': 'message-list' });
  private older = h('li', { class: 'older muted' });
  private typingEl = h('div', { class: 'typing', 'data-testid': 'typing', 'aria-live': 'polite' });
  private composer = h('textarea', { 'data-testid': 'composer', rows: '1', placeholder: 'Message', 'aria-label': 'Message' });
  private presenceEl = h('ul', { class: 'people', 'data-testid': 'presence' });
  private newRoom = h('input', { placeholder: 'room, or @name', 'aria-label': 'Open a room' });
  private roomError = h('p', { class: 'form-error' });
  private jump = h('button', { type: 'button', class: 'jump' });
  private els = new WeakMap<Message, HTMLLIElement>();
  private shownRoom = '';
  private noticeTimer = 0;
  private bannerTimer = 0;

  constructor(root: HTMLElement, private me: string, private on: ViewHandlers) {
    const send = h('button', { type: 'submit', 'data-testid': 'send' }, 'Send');
    const composerForm = h('form', { class: 'composer' }, this.composer, send);
    composerForm.addEventListener('submit', (e) => { e.preventDefault(); this.submit(); });
    this.composer.addEventListener('keydown', (e) => {
      // Enter sends, Shift+Enter starts a new line; not while an IME composes
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); this.submit(); }
    });
    this.composer.addEventListener('input', () => { if (this.composer.value.trim()) this.on.typing(); });

    const roomForm = h('form', { class: 'new-room' }, this.newRoom, h('button', { type: 'submit' }, 'Open'), this.roomError);
    show(this.roomError, false);
    roomForm.addEventListener('submit', (e) => {
      e.preventDefault();
      const err = this.on.openTyped(this.newRoom.value);
      this.roomError.textContent = err ?? '';
      show(this.roomError, !!err);
      if (!err) this.newRoom.value = '';
    });

    const logout = h('button', { type: 'button', class: 'link' }, 'Log out');
    logout.addEventListener('click', () => this.on.logout());
    this.list.addEventListener('scroll', () => { this.on.scrolled(); this.updateJump(); });
    this.jump.addEventListener('click', () => { this.list.scrollTop = this.list.scrollHeight; });
    show(this.jump, false);
    show(this.banner, false);
    show(this.notice, false);

    setChildren(root, h('div', { class: 'app' },
      h('header', { class: 'topbar' },
        h('span', { class: 'brand' }, 'Parley'),
        h('span', { class: 'who' }, 'signed in as ', h('strong', {}, me)),
        logout,
        this.connection),
      this.banner,
      h('div', { class: 'layout' },
        h('nav', { class: 'sidebar', 'aria-label': 'Rooms' }, h('h3', {}, 'Rooms'), this.roomList, roomForm),
        h('main', { class: 'chat' },
          h('header', { class: 'room-header' }, this.roomTitle, this.roomSub),
          this.notice,
          this.list,
          this.jump,
          this.typingEl,
          composerForm),
        h('aside', { class: 'sidebar right', 'aria-label': 'Online' }, h('h3', {}, 'Online'), this.presenceEl))));
  }

  private submit(): void {
    const text = this.composer.value.trim();
    if (!text) return;
    this.composer.value = '';
    this.on.send(text);
  }

  focusComposer(): void { this.composer.focus(); }

  setConnection(text: ConnectionText): void {
    this.connection.textContent = text;
    this.connection.dataset.state = text;
  }

  /** The reconnect banner; `ms` hides it after that long. */
  setBanner(text: string, kind: 'warn' | 'ok' = 'warn', ms = 0): void {
    clearTimeout(this.bannerTimer);
    this.banner.textContent = text;
    this.banner.dataset.kind = kind;
    show(this.banner, !!text);
    if (ms) this.bannerTimer = window.setTimeout(() => show(this.banner, false), ms);
  }

  /** A notice above the messages (e.g. a history gap), hidden after a while. */
  setNotice(text: string, ms = 10000): void {
    clearTimeout(this.noticeTimer);
    this.notice.textContent = text;
    show(this.notice, !!text);
    if (text) this.noticeTimer = window.setTimeout(() => show(this.notice, false), ms);
  }

  renderRooms(channels: string[], active: string, rooms: Map<string, Room>): void {
    setChildren(this.roomList, ...channels.map((ch) => {
      const r = rooms.get(ch);
      const unread = ch === active || !r ? 0 : r.unread;
      const btn = h('button', { type: 'button', 'data-testid': 'room', 'data-room': ch, class: ch === active ? 'room active' : 'room', 'aria-current': ch === active ? 'page' : undefined },
        h('span', { class: 'room-name' }, label(ch, this.me)),
        unread ? h('span', { class: 'badge', 'data-testid': 'unread', title: `${unread} unread` }, unread > 99 ? '99+' : String(unread)) : null);
      btn.addEventListener('click', () => this.on.openRoom(ch));
      return h('li', {}, btn);
    }));
  }

  atBottom(): boolean {
    const l = this.list;
    return l.scrollHeight - l.scrollTop - l.clientHeight < 40;
  }

  atTop(): boolean { return this.list.scrollTop < 60; }

  /** Updates the message column for `room`; keeps the view at the bottom if it was, and in place when older pages arrive above. */
  renderMessages(room: Room): void {
    const switched = this.shownRoom !== room.channel;
    if (switched) {
      this.shownRoom = room.channel;
      this.roomTitle.textContent = label(room.channel, this.me);
      this.roomSub.textContent = isDM(room.channel) ? 'direct message' : room.channel;
      setChildren(this.list);
    }
    const stick = switched || this.atBottom();
    const firstBefore = this.list.querySelector<HTMLElement>('[data-testid="message"]');
    const topBefore = firstBefore ? firstBefore.offsetTop - this.list.scrollTop : 0;

    this.older.textContent = room.loadingOlder ? 'loading older messages…' : room.more ? '' : room.loaded ? 'start of the conversation' : '';
    const want: HTMLElement[] = [this.older];
    const receipts = isDM(room.channel) ? new Set<number>() : room.receiptOffsets();
    let prev: Message | null = null;
    for (const m of room.messages()) {
      const el = this.messageEl(room, m, receipts.has(m.offset));
      // a run of messages from one author within 5 minutes shows its name once
      el.classList.toggle('cont', !!prev && prev.author === m.author && m.ts - prev.ts < 5 * 60 * 1000);
      want.push(el);
      prev = m;
    }
    // reconcile in place: only nodes out of order move
    const kids = this.list.children;
    want.forEach((el, i) => { if (kids[i] !== el) this.list.insertBefore(el, kids[i] ?? null); });
    while (kids.length > want.length) kids[kids.length - 1].remove();

    if (stick) this.list.scrollTop = this.list.scrollHeight;
    else if (firstBefore && firstBefore.isConnected) this.list.scrollTop = firstBefore.offsetTop - topBefore;
    this.unreadHere = room.unread;
    this.updateJump();
  }

  private unreadHere = 0;

  /** "↓ new messages" while the reader is scrolled up and something newer is unread. */
  private updateJump(): void {
    const up = !this.atBottom();
    this.jump.textContent = this.unreadHere ? `↓ ${this.unreadHere} new` : '↓ latest';
    show(this.jump, up);
  }

  private messageEl(room: Room, m: Message, receipt: boolean): HTMLLIElement {
    let el = this.els.get(m);
    if (!el) {
      el = h('li', { 'data-testid': 'message', class: m.mine ? 'msg mine' : 'msg' });
      this.els.set(m, el);
    }
    const state = room.stateOf(m);
    const seen = receipt ? room.seenBy(m.offset) : [];
    const sig = [m.offset, m.id, state, m.error ?? '', seen.join(',')].join('|');
    if (el.dataset.sig === sig) return el;
    el.dataset.sig = sig;
    if (m.offset) el.dataset.offset = String(m.offset); else delete el.dataset.offset;
    el.dataset.state = state;

    const meta = h('div', { class: 'meta' },
      h('span', { class: 'author' }, m.author),
      h('time', { datetime: m.ts ? new Date(m.ts).toISOString() : undefined }, clock(m.ts)));
    if (m.id) {
      // the console shows everything the server knows about this pub
      meta.append(h('a', { class: 'trace', href: `/admin#trace=${encodeURIComponent(m.id)}`, target: '_blank', rel: 'noopener', title: 'Trace this message in the console' }, 'trace'));
    }
    const status = h('div', { class: 'status' });
    if (m.mine) {
      let text = STATE_LABEL[state] ?? '';
      if (state === 'failed' && m.error) text = `not sent: ${m.error}`;
      if (seen.length) { text = `seen by ${seen.length}`; status.title = seen.join(', '); }
      status.textContent = text;
    }
    setChildren(el, meta, h('div', { class: 'text' }, m.text), status.textContent ? status : null);
    return el;
  }

  renderTyping(room: Room): void { this.typingEl.textContent = typingText(room.typingNow()); }

  renderPresence(room: Room, openDM: (user: string) => void): void {
    const users = room.onlineUsers();
    if (!users.length) {
      setChildren(this.presenceEl, h('li', { class: 'muted' }, this.connection.dataset.state === 'connected' ? 'nobody' : 'unknown while offline'));
      return;
    }
    setChildren(this.presenceEl, ...users.map((u) => {
      if (u === this.me) return h('li', { 'data-user': u }, h('span', { class: 'dot' }), `${u} (you)`);
      const b = h('button', { type: 'button', class: 'link', title: `Message ${u}` }, u);
      b.addEventListener('click', () => openDM(u));
      return h('li', { 'data-user': u }, h('span', { class: 'dot' }), b);
    }));
  }
}
