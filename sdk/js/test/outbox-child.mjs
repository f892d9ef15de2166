// Child process of outbox.test.mjs: publishes N while the server is down with
// a file outbox, waits until they are in the store, then dies by SIGKILL
// (no flush, no disconnect): what a crashed or killed process leaves behind.
import { Parley, FileOutboxStore } from '../dist/index.js';
const [url, token, path, n, channel] = process.argv.slice(2);
const c = new Parley(url, { token, minReconnectDelay: 20, maxReconnectDelay: 100, outbox: { store: new FileOutboxStore(path) } });
const keys = [];
for (let i = 0; i < Number(n); i++) {
  const key = `child-${i}`;
  keys.push(key);
  c.publish(channel, { i }, { idempotencyKey: key }).then(() => { console.log('UNEXPECTED resolve'); }, () => {});
}
await c.outboxSaved();
process.stdout.write(JSON.stringify({ state: c.state, keys }) + '\n', () => process.kill(process.pid, 'SIGKILL'));
