// The team-chat demo (web/src/demo) in headless Chromium against the real
// server: two people chatting (typing, read receipts, unread badges, DMs),
// a kill -9 of the server with messages published around it, presence,
// a backend publish and history paging.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Server, launchChromium, screenshot, sleep, waitFor } from './helpers.mjs';
import { Person, T } from './demo-page.mjs';

let srv;
let browser;
const errors = [];
const run = Date.now().toString(36);

before(async () => {
  srv = new Server();
  await srv.start();
  browser = await launchChromium();
});

after(async () => {
  if (browser) await browser.close();
  if (srv) await srv.cleanup();
});

async function publish(channel, text) {
  const r = await srv.api('publish', { channel, data: { text } });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.result;
}

/** The pages' errors (uncaught exceptions, console errors) other than the connection failures a dead server causes. */
function pageErrors() {
  return errors.filter((e) => !/WebSocket|ERR_CONNECTION_REFUSED|Failed to load resource|net::ERR/.test(e));
}

test('two people chat: send, typing, read receipts, unread badges, a DM', async () => {
  const room = `chat:team-${run}`;
  const alice = await Person.login(browser, srv.origin, 'alice', room, errors);
  const bob = await Person.login(browser, srv.origin, 'bob', room, errors);
  try {
    // the lobby is always in the list, next to the open room
    for (const p of [alice, bob]) {
      const rooms = await p.page.$$eval(T('room'), (els) => els.map((e) => e.getAttribute('data-room')));
      assert.ok(rooms.includes('chat:lobby') && rooms.includes(room), `${p.name}'s rooms: ${rooms}`);
    }
    await screenshot(alice.page, 'demo-1-alice-empty-room');

    await alice.recordStates();
    await alice.send('hello bob');
    const mine = await alice.waitMessage((m) => m.text === 'hello bob' && m.state === 'stored', 'own message stored');
    assert.ok(mine.offset > 0, 'a stored message has its offset');
    assert.equal(mine.author, 'alice');
    assert.match(mine.trace, /^\/admin#trace=[0-9A-Z]{26}$/, 'trace link to the console');
    // one element, added as "sending", then turned "stored"; the server's push of
    // the same pub (which may come before the publish answer) never adds a second
    const seenStates = (await alice.states()).filter((x) => x.includes(':hello bob:'));
    assert.equal(seenStates[0], 'add:hello bob:sending', `first state shown: ${seenStates}`);
    assert.equal(seenStates.filter((x) => x.startsWith('add:')).length, 1, `added once: ${seenStates}`);
    assert.equal(seenStates[seenStates.length - 1], 'attr:hello bob:stored', `states: ${seenStates}`);
    assert.equal((await alice.messages()).filter((m) => m.text === 'hello bob').length, 1, 'shown once (no copy of the push)');

    const got = await bob.waitMessage((m) => m.text === 'hello bob', 'bob sees it');
    assert.equal(got.offset, mine.offset);
    assert.equal(got.author, 'alice');

    // bob types; alice sees it
    await bob.page.fill(T('composer'), 'typing an ans');
    await waitFor(async () => (await alice.text('typing')).includes('bob'), 'typing indicator on alice\'s page');
    assert.equal(await alice.text('typing'), 'bob is typing…');
    await screenshot(alice.page, 'demo-1-alice-bob-typing');

    // bob has the room open at the bottom: his read cursor moves, alice sees it
    await alice.waitMessage((m) => m.text === 'hello bob' && m.status === 'seen by 1', '"seen by 1" on alice\'s message');
    await screenshot(alice.page, 'demo-1-alice-seen');
    // a reload shows the receipt again (from the channel's read cursors)
    await alice.page.reload();
    await alice.waitMessage((m) => m.text === 'hello bob' && m.status === 'seen by 1', '"seen by 1" again after a reload');

    // bob sends the typed answer: typing stops, alice sees the answer
    await bob.page.press(T('composer'), 'Enter');
    await alice.waitMessage((m) => m.text === 'typing an ans' && m.author === 'bob', 'bob\'s answer');
    await waitFor(async () => (await alice.text('typing')) === '', 'typing indicator cleared by the message');

    // unread badge: bob is in the lobby while alice writes in the room
    await bob.page.click(`${T('room')}[data-room="chat:lobby"]`);
    await bob.waitRoom('chat:lobby');
    await alice.send('are you there?');
    const badge = `${T('room')}[data-room="${room}"] ${T('unread')}`;
    await waitFor(async () => (await bob.page.textContent(badge).catch(() => '')) === '1', 'unread badge 1 on bob\'s room entry');
    await screenshot(bob.page, 'demo-1-bob-unread-badge');
    assert.equal(await bob.page.title(), '(1) Parley: team chat', 'the unread count in the tab title');
    assert.equal(await alice.waitMessage((m) => m.text === 'are you there?', 'sent').then((m) => m.status), '', 'not seen while bob is elsewhere');
    await bob.page.click(`${T('room')}[data-room="${room}"]`);
    await bob.waitRoom(room);
    await alice.waitMessage((m) => m.text === 'are you there?' && m.status === 'seen by 1', 'seen once bob opened the room');
    await waitFor(async () => !(await bob.page.$(badge)), 'badge gone once read');

    // a DM: alice opens it from the presence list; bob's page finds it, acks, reads
    await alice.page.click(`${T('presence')} li[data-user="bob"] button`);
    const dm = 'dm:#alice,bob';
    await alice.waitRoom(dm);
    await alice.send('psst, a DM');
    await alice.waitMessage((m) => m.text === 'psst, a DM' && m.state === 'acknowledged', 'DM acknowledged by bob\'s client');
    await waitFor(() => bob.page.$(`${T('room')}[data-room="${dm}"] ${T('unread')}`), 'the DM shows up on bob\'s list with a badge');
    await bob.page.click(`${T('room')}[data-room="${dm}"]`);
    await bob.waitMessage((m) => m.text === 'psst, a DM' && m.author === 'alice', 'bob reads the DM');
    await alice.waitMessage((m) => m.text === 'psst, a DM' && m.state === 'seen', 'DM seen');
    await screenshot(alice.page, 'demo-1-alice-dm-seen');
    await screenshot(bob.page, 'demo-1-bob-dm');
    assert.deepEqual(pageErrors(), []);
  } finally {
    await alice.close();
    await bob.close();
  }
});

test('kill -9 of the server: reconnect, every message once and in order', async () => {
  const room = `chat:ops-${run}`;
  const alice = await Person.login(browser, srv.origin, 'alice', room, errors);
  const bob = await Person.login(browser, srv.origin, 'bob', room, errors);
  try {
    const sent = [];
    for (let i = 1; i <= 5; i++) { sent.push(`before ${i}`); await publish(room, `before ${i}`); }
    for (const p of [alice, bob]) await p.waitMessage((m) => m.text === 'before 5', 'the last message before the kill');

    await srv.kill();
    await Promise.all([alice.waitConnection('reconnecting'), bob.waitConnection('reconnecting')]);
    await waitFor(async () => /reconnecting in \d+ s…/.test(await alice.page.textContent('.banner')), 'reconnect banner counting down');
    // who is online is not known while the server is away; it is asked again after
    assert.equal(await alice.text('presence'), 'unknown while offline');
    // a message written while the server is down waits in the outbox
    await alice.send('written offline');
    await alice.waitMessage((m) => m.text === 'written offline' && m.state === 'queued', 'queued while down');
    await screenshot(alice.page, 'demo-2-alice-reconnecting');
    await screenshot(bob.page, 'demo-2-bob-reconnecting');
    await sleep(300); // the outbox's IndexedDB write (a few ms)

    // alice's page is reloaded while it cannot reach /ws: the new page sends
    // the message kept in its outbox once it can
    let blocked = true;
    await alice.ctx.routeWebSocket(/\/ws$/, (ws) => { if (blocked) ws.close(); else ws.connectToServer(); });
    await srv.start();
    // published right after the restart, most likely before the pages are back
    for (let i = 1; i <= 5; i++) { sent.push(`restart ${i}`); await publish(room, `restart ${i}`); }
    await alice.page.reload();
    await alice.waitRoom(room);
    await alice.waitConnection('reconnecting');
    blocked = false;
    await Promise.all([alice.waitConnection('connected', 30000), bob.waitConnection('connected', 30000)]);
    await waitFor(async () => (await bob.text('presence')).includes('bob'), 'presence asked again after the reconnect');
    for (let i = 1; i <= 5; i++) { sent.push(`after ${i}`); await publish(room, `after ${i}`); }

    const expectAll = (msgs) => sent.every((t) => msgs.some((m) => m.text === t)) && msgs.some((m) => m.text === 'written offline' && m.state === 'stored');
    for (const p of [alice, bob]) {
      const msgs = await waitFor(async () => { const m = await p.messages(); return expectAll(m) && m; }, `${p.name}: every message after the restart`);
      const texts = msgs.map((m) => m.text);
      for (const t of [...sent, 'written offline']) assert.equal(texts.filter((x) => x === t).length, 1, `${p.name}: "${t}" shown once: ${texts}`);
      const offsets = msgs.map((m) => m.offset);
      assert.ok(offsets.every((o) => o > 0), `${p.name}: all stored`);
      assert.deepEqual(offsets, [...offsets].sort((a, b) => a - b), `${p.name}: in offset order`);
      assert.equal(new Set(offsets).size, offsets.length, `${p.name}: no offset twice`);
      // the API's messages keep their publish order among themselves
      const apiOrder = texts.filter((t) => t !== 'written offline');
      assert.deepEqual(apiOrder, sent, `${p.name}: order`);
    }
    // bob missed the 5 published right after the restart (unless he was back
    // first), and alice's offline message if she came back after him; never
    // the 5 published once both were connected
    const back = await waitFor(async () => /back: (\d+) missed messages? loaded/.exec(await bob.page.textContent('.banner')), 'the "back" banner');
    assert.ok(Number(back[1]) <= 6, `bob's banner: ${back[0]}`);
    await screenshot(bob.page, 'demo-2-bob-back');
    assert.deepEqual(pageErrors(), []);
  } finally {
    await alice.close();
    await bob.close();
  }
});

test('presence, a backend publish, history paging', async () => {
  const room = `chat:news-${run}`;
  const alice = await Person.login(browser, srv.origin, 'alice', room, errors);
  const bob = await Person.login(browser, srv.origin, 'bob', room, errors);
  try {
    for (const p of [alice, bob]) {
      await waitFor(async () => { const t = await p.text('presence'); return t.includes('alice') && t.includes('bob'); }, `${p.name}: both online`);
    }
    await publish(room, 'deploy finished');
    const m = await alice.waitMessage((x) => x.text === 'deploy finished', 'backend message');
    assert.equal(m.author, 'server');
    await bob.waitMessage((x) => x.text === 'deploy finished', 'backend message on bob\'s page');
    await screenshot(alice.page, 'demo-3-presence-backend');

    // message text is text, never markup
    await publish(room, '<img src=x onerror="window.__xss=1"><b>bold</b>');
    await alice.waitMessage((x) => x.text === '<img src=x onerror="window.__xss=1"><b>bold</b>', 'markup shown as text');
    assert.equal(await alice.page.$$eval(`${T('message-list')} img, ${T('message-list')} b`, (els) => els.length), 0);
    assert.equal(await alice.page.evaluate(() => window.__xss), undefined);

    // a reload keeps the login and the room, and the messages come back from history
    await alice.page.reload();
    await alice.waitConnection('connected');
    await alice.waitRoom(room);
    assert.equal(await alice.page.$(T('login-name')), null, 'no login form after a reload');
    await alice.waitMessage((x) => x.text === 'deploy finished', 'history after the reload');

    // bob leaves: alice's presence list drops him
    await bob.close();
    await waitFor(async () => !(await alice.text('presence')).includes('bob'), 'bob left');

    // 150 messages, then alice opens the room: the newest page, older ones on scrolling up
    const hist = `chat:hist-${run}`;
    for (let i = 1; i <= 150; i++) await publish(hist, `line ${i}`);
    await alice.page.fill('.new-room input', `hist-${run}`);
    await alice.page.press('.new-room input', 'Enter');
    await alice.waitRoom(hist);
    const first = await waitFor(async () => { const x = await alice.messages(); return x.length >= 50 && x; }, 'first page');
    assert.equal(first.length, 50, 'one page of 50');
    assert.equal(first[first.length - 1].text, 'line 150');
    assert.equal(first[0].text, 'line 101');
    await screenshot(alice.page, 'demo-3-history-first-page');
    for (let want = 100; want <= 150; want += 50) {
      await alice.page.$eval(T('message-list'), (el) => { el.scrollTop = 0; });
      await waitFor(async () => (await alice.messages()).length >= want, `${want} messages after scrolling up`);
    }
    const all = await alice.messages();
    assert.deepEqual(all.map((x) => x.text), Array.from({ length: 150 }, (_, i) => `line ${i + 1}`));
    assert.deepEqual(all.map((x) => x.offset), Array.from({ length: 150 }, (_, i) => i + 1));
    await waitFor(async () => (await alice.page.textContent(`${T('message-list')} .older`)) === 'start of the conversation', 'start marker');
    await alice.page.$eval(T('message-list'), (el) => { el.scrollTop = 0; });
    await screenshot(alice.page, 'demo-3-history-top');
    // scrolled up: a button takes the reader back to the newest message
    assert.ok(await alice.page.isVisible('.jump'), 'the jump button while scrolled up');
    await alice.page.click('.jump');
    await waitFor(() => alice.page.$eval(T('message-list'), (el) => el.scrollHeight - el.scrollTop - el.clientHeight < 40), 'back at the bottom');
    await waitFor(async () => !(await alice.page.isVisible('.jump')), 'the jump button hidden at the bottom');
    assert.deepEqual(pageErrors(), []);
  } finally {
    await alice.close();
  }
});

test('login: a name that cannot log in is refused on the form', async () => {
  const ctx = await browser.newContext();
  try {
    const page = await ctx.newPage();
    await page.goto(srv.origin);
    await page.fill(T('login-name'), 'no spaces please');
    await page.click(T('login-submit'));
    await waitFor(async () => /letters, digits/.test(await page.textContent('.login-error')), 'a login error');
    assert.equal(await page.$(T('connection-state')), null, 'still on the login form');
    await screenshot(page, 'demo-0-login-error');
  } finally {
    await ctx.close();
  }
});

test('a gap: history trimmed while a page was away is reported and the room reloaded', async () => {
  // a server of its own whose rooms keep only 5 messages
  const small = new Server({ extra: 'namespaces:\n  - {name: chat, history_size: 5, join_leave: true}\n  - {name: dm}\n' });
  await small.start();
  const room = `chat:gap-${run}`;
  const alice = await Person.login(browser, small.origin, 'alice', room, errors);
  try {
    for (let i = 1; i <= 3; i++) assert.equal((await small.api('publish', { channel: room, data: { text: `old ${i}` } })).status, 200);
    await alice.waitMessage((m) => m.text === 'old 3', 'old messages');
    await small.kill();
    await alice.waitConnection('reconnecting');
    // keep the page off the network while 20 are published: 3..17 are trimmed before it resumes
    await alice.ctx.setOffline(true);
    await small.start();
    for (let i = 1; i <= 20; i++) assert.equal((await small.api('publish', { channel: room, data: { text: `new ${i}` } })).status, 200);
    await alice.ctx.setOffline(false);
    await alice.waitConnection('connected', 30000);
    await waitFor(async () => (await alice.page.textContent('.notice')) === 'some history is no longer available; reloaded', 'the gap notice');
    const msgs = await waitFor(async () => { const m = await alice.messages(); return m.length === 5 && m[4].text === 'new 20' && m; }, 'the newest 5 after the reload');
    assert.deepEqual(msgs.map((m) => m.text), ['new 16', 'new 17', 'new 18', 'new 19', 'new 20']);
    assert.deepEqual(msgs.map((m) => m.offset), [19, 20, 21, 22, 23]);
    await screenshot(alice.page, 'demo-4-gap-reloaded');
    assert.deepEqual(pageErrors(), []);
  } finally {
    await alice.close();
    await small.cleanup();
  }
});
