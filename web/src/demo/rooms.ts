// Channel names of the demo and the list of rooms a user knows.
//   rooms:  chat:<name>             (namespace chat: history, presence, join/leave)
//   DMs:    dm:#<a>,<b>             (user-limited: only a and b, names sorted)

export const LOBBY = 'chat:lobby';
// what POST /dev/token accepts (channel names allow more, but a demo user must be able to log in)
const NAME_RE = /^[A-Za-z0-9_.-]{1,64}$/;

/** A user name the demo can log in as (and put in a DM channel). */
export function validUser(name: string): boolean { return NAME_RE.test(name); }

/** `chat:<name>` from what a person typed ("Design Team" → chat:design-team); null if nothing usable is left. */
export function roomChannel(typed: string): string | null {
  const name = typed.trim().replace(/^#/, '').replace(/^chat:/, '').toLowerCase()
    .replace(/\s+/g, '-').replace(/[^a-z0-9_.=@/-]/g, '');
  return name && name.length <= 64 ? `chat:${name}` : null;
}

/** The DM channel of two users: names sorted, so both sides compute the same one. */
export function dmChannel(a: string, b: string): string {
  return `dm:#${[a, b].sort().join(',')}`;
}

export function isDM(channel: string): boolean { return channel.startsWith('dm:#'); }

/** The other person of a DM channel (the channel itself for anything else). */
export function dmPeer(channel: string, me: string): string {
  if (!isDM(channel)) return channel;
  const users = channel.slice(4).split(',');
  return users.find((u) => u !== me) ?? me;
}

/** What the room list shows: "# lobby" for rooms, "@ bob" for DMs. */
export function label(channel: string, me: string): string {
  if (isDM(channel)) return `@ ${dmPeer(channel, me)}`;
  return `# ${channel.replace(/^chat:/, '')}`;
}

/** Known rooms per user, in localStorage so they outlive the session. */
export class KnownRooms {
  private key: string;
  private set: Set<string>;

  constructor(user: string, private storage: Storage = localStorage) {
    this.key = `parley-demo:rooms:${user}`;
    let saved: unknown = [];
    try { saved = JSON.parse(storage.getItem(this.key) || '[]'); } catch { /* a corrupt entry: start over */ }
    this.set = new Set(Array.isArray(saved) ? saved.filter((c): c is string => typeof c === 'string') : []);
    this.set.add(LOBBY);
  }

  has(channel: string): boolean { return this.set.has(channel); }

  /** Adds a channel; true when it was new. */
  add(channel: string): boolean {
    if (this.set.has(channel)) return false;
    this.set.add(channel);
    try { this.storage.setItem(this.key, JSON.stringify([...this.set])); } catch { /* storage full or off: the list lives for this page */ }
    return true;
  }

  /** Rooms first (lobby on top), then DMs, each alphabetical. */
  list(): string[] {
    return [...this.set].sort((a, b) => {
      const ka = (a === LOBBY ? '0' : isDM(a) ? '2' : '1') + a;
      const kb = (b === LOBBY ? '0' : isDM(b) ? '2' : '1') + b;
      return ka < kb ? -1 : ka > kb ? 1 : 0;
    });
  }
}
