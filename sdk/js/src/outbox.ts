// Persistent outbox stores: where publishes accepted by `publish()` wait
// until the server answers them, so a page reload or a process restart does
// not lose them. The client keeps the store in step with its outbox: `put`
// before a publish counts as queued, `delete` once the publish is settled.

/** One publish waiting for the server's answer. */
export interface OutboxEntry {
  /** The idempotency key (also sent to the server): unique per entry. */
  key: string;
  /** Call order across the store's whole life: entries are re-sent by `seq`. */
  seq: number;
  /** The `publish` command's params (channel, data, idempotency_key, ...). */
  params: Record<string, unknown>;
}

/** A pluggable store. All methods are async; a rejected promise is reported. */
export interface OutboxStore {
  /** Every stored entry (any order; the client sorts by `seq`). */
  load(): Promise<OutboxEntry[]>;
  /** Stores (or replaces) the entry with this `key`; resolves once durable. */
  put(entry: OutboxEntry): Promise<void>;
  /** Removes the entry with this key (no error when absent). */
  delete(key: string): Promise<void>;
}

/** The `outbox` client option. */
export interface OutboxOptions { store: OutboxStore }

/** Error of a store that cannot be read (e.g. a corrupt file). */
export class OutboxStoreError extends Error {
  constructor(message: string) { super(message); this.name = 'OutboxStoreError'; }
}

/** An in-memory store (for tests, and the shape every store follows). */
export class MemoryOutboxStore implements OutboxStore {
  readonly entries = new Map<string, OutboxEntry>();
  async load(): Promise<OutboxEntry[]> { return [...this.entries.values()].map((e) => ({ ...e })); }
  async put(entry: OutboxEntry): Promise<void> { this.entries.set(entry.key, { ...entry }); }
  async delete(key: string): Promise<void> { this.entries.delete(key); }
}

/**
 * A store in one JSON file, for Node. Every change rewrites the file
 * atomically: the whole content goes to `path + '.tmp'`, is fsynced, then
 * renamed over `path` (and the directory fsynced), so a crash mid-write leaves
 * either the old or the new file, never a torn one. Changes that arrive while
 * a write is running are coalesced into the next write (group commit), and
 * each change's promise resolves when a write that includes it is durable.
 * A file that cannot be parsed is moved aside to `path + '.corrupt-<ms>'`
 * and `load()` rejects with an `OutboxStoreError` naming both paths: its
 * publishes are reported, not silently dropped. One process per file.
 */
export class FileOutboxStore implements OutboxStore {
  readonly path: string;
  private entries = new Map<string, OutboxEntry>();
  private loaded = false;
  private writing: Promise<void> | null = null;
  private dirty = false;
  private waiters: { resolve(): void; reject(e: Error): void }[] = [];

  constructor(path: string) { this.path = path; }

  private static fsp: any;
  private static async fs(): Promise<any> {
    if (!FileOutboxStore.fsp) {
      const name = 'node:fs/promises'; // a variable, so browser bundlers leave it alone
      FileOutboxStore.fsp = await import(/* @vite-ignore */ name);
    }
    return FileOutboxStore.fsp;
  }

  async load(): Promise<OutboxEntry[]> {
    const fs = await FileOutboxStore.fs();
    let text: string | null = null;
    try { text = await fs.readFile(this.path, 'utf8'); } catch (e: any) {
      if (e && e.code !== 'ENOENT') throw e;
    }
    this.entries.clear();
    if (text !== null) {
      let list: OutboxEntry[];
      try {
        const doc = JSON.parse(text);
        if (!doc || doc.v !== 1 || !Array.isArray(doc.entries)) throw new Error('not a v1 outbox file');
        for (const e of doc.entries) {
          if (!e || typeof e.key !== 'string' || typeof e.seq !== 'number' || !e.params || typeof e.params !== 'object')
            throw new Error('malformed entry');
        }
        list = doc.entries;
      } catch (err) {
        const aside = this.path + '.corrupt-' + Date.now();
        await fs.rename(this.path, aside);
        this.loaded = true;
        throw new OutboxStoreError(`outbox file ${this.path} is corrupt (${(err as Error).message}); moved to ${aside}`);
      }
      for (const e of list) this.entries.set(e.key, e);
    }
    this.loaded = true;
    return [...this.entries.values()].map((e) => ({ ...e }));
  }

  async put(entry: OutboxEntry): Promise<void> {
    if (!this.loaded) await this.load();
    this.entries.set(entry.key, { key: entry.key, seq: entry.seq, params: entry.params });
    return this.schedule();
  }

  async delete(key: string): Promise<void> {
    if (!this.loaded) await this.load();
    if (!this.entries.delete(key)) return;
    return this.schedule();
  }

  private schedule(): Promise<void> {
    this.dirty = true;
    const p = new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
    if (!this.writing) this.writing = this.writeLoop();
    return p;
  }

  private async writeLoop(): Promise<void> {
    const fs = await FileOutboxStore.fs();
    while (this.dirty) {
      this.dirty = false;
      const waiters = this.waiters.splice(0);
      const body = JSON.stringify({ v: 1, entries: [...this.entries.values()] });
      try {
        const tmp = this.path + '.tmp';
        const fh = await fs.open(tmp, 'w');
        try { await fh.writeFile(body, 'utf8'); await fh.sync(); } finally { await fh.close(); }
        await fs.rename(tmp, this.path);
        await this.syncDir(fs);
        for (const w of waiters) w.resolve();
      } catch (e) {
        for (const w of waiters) w.reject(e as Error);
      }
    }
    this.writing = null;
  }

  private async syncDir(fs: any): Promise<void> {
    const i = Math.max(this.path.lastIndexOf('/'), this.path.lastIndexOf('\\'));
    const dir = i > 0 ? this.path.slice(0, i) : i === 0 ? '/' : '.';
    try { const d = await fs.open(dir, 'r'); try { await d.sync(); } finally { await d.close(); } } catch { /* not supported everywhere */ }
  }
}

/**
 * A store in an IndexedDB database (browsers): object store `outbox` keyed
 * by `key`. Each `put`/`delete` is one transaction that resolves on
 * `complete`. Tested in headless Chromium across a page reload.
 */
export class IndexedDBOutboxStore implements OutboxStore {
  readonly name: string;
  private db: Promise<IDBDatabase> | null = null;

  constructor(name = 'parley-outbox') { this.name = name; }

  private open(): Promise<IDBDatabase> {
    if (!this.db) {
      this.db = new Promise((resolve, reject) => {
        const idb: IDBFactory | undefined = (globalThis as any).indexedDB;
        if (!idb) return reject(new OutboxStoreError('IndexedDB is not available'));
        const req = idb.open(this.name, 1);
        req.onupgradeneeded = () => { req.result.createObjectStore('outbox', { keyPath: 'key' }); };
        req.onsuccess = () => resolve(req.result);
        req.onerror = () => reject(req.error || new OutboxStoreError('IndexedDB open failed'));
      });
    }
    return this.db;
  }

  private async tx<T>(mode: IDBTransactionMode, fn: (s: IDBObjectStore) => IDBRequest | void): Promise<T> {
    const db = await this.open();
    return new Promise<T>((resolve, reject) => {
      const t = db.transaction('outbox', mode);
      const req = fn(t.objectStore('outbox'));
      t.oncomplete = () => resolve(req ? (req.result as T) : (undefined as T));
      t.onerror = () => reject(t.error || new OutboxStoreError('IndexedDB transaction failed'));
      t.onabort = () => reject(t.error || new OutboxStoreError('IndexedDB transaction aborted'));
    });
  }

  load(): Promise<OutboxEntry[]> { return this.tx<OutboxEntry[]>('readonly', (s) => s.getAll()); }
  async put(entry: OutboxEntry): Promise<void> { await this.tx('readwrite', (s) => s.put(entry)); }
  async delete(key: string): Promise<void> { await this.tx('readwrite', (s) => s.delete(key)); }
}
