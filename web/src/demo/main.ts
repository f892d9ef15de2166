// The team-chat demo served at /: log in by name (a development token from
// POST /dev/token), then rooms, DMs, presence, typing and read receipts.
import { IndexedDBOutboxStore, Parley } from '@parley/client';
import { Chat } from './chat.js';
import { devToken, forgetUser, saveUser, savedUser } from './session.js';
import { renderLogin } from './view.js';
import { validUser } from './rooms.js';

const root = document.getElementById('app');

function wsURL(): string {
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
}

function showLogin(error = ''): void {
  if (!root) return;
  const errEl = renderLogin(root, async (name) => {
    if (!validUser(name)) { errEl.textContent = 'Use 1 to 64 letters, digits, _, - or .'; errEl.hidden = false; return; }
    try {
      // one token up front: a bad name or a server without development tokens is reported here, not in a loop
      const token = await devToken(name);
      saveUser(name);
      start(name, token);
    } catch (e) {
      errEl.textContent = e instanceof Error ? e.message : String(e);
      errEl.hidden = false;
    }
  }, error);
}

function start(user: string, token?: string): void {
  if (!root) return;
  const client = new Parley(wsURL(), {
    token,
    getToken: () => devToken(user),
    // a chat wants people back soon: cap the backoff at 5 s instead of 20 s
    maxReconnectDelay: 5000,
    name: 'parley-demo',
    // messages written while offline survive a reload: the next page sends them
    // (same idempotency keys, so one the server already stored is not stored twice)
    outbox: typeof indexedDB !== 'undefined' ? { store: new IndexedDBOutboxStore(`parley-demo-outbox:${user}`) } : undefined,
  });
  new Chat(root, user, client, () => {
    // a fresh page is the simplest way to drop every subscription, timer and listener
    client.disconnect();
    forgetUser();
    location.replace(location.pathname);
  });
}

const user = savedUser();
if (user && validUser(user)) start(user); else showLogin();
