// Pure helpers: errors, a tiny event emitter, backoff, position tracking.

/** Client-side error codes (the server's are 100-117, see docs/protocol.md). */
export const ErrorCodes = {
  TIMEOUT: 901,
  OUTBOX_FULL: 902,
  CLIENT_CLOSED: 903,
  TRANSPORT: 904,
} as const;

/** Every rejection of the SDK: the server's error codes (100-117), close codes (4500-4999) or ErrorCodes (901-904). */
export class ParleyError extends Error {
  /** Server error code, close code or client code. */
  readonly code: number;
  /** True when retrying later may succeed. */
  readonly temporary: boolean;
  /** ms to wait before retrying (rate limits). */
  readonly retryAfter?: number;
  constructor(code: number, message: string, temporary = false, retryAfter?: number) {
    super(message);
    this.name = 'ParleyError';
    this.code = code;
    this.temporary = temporary;
    this.retryAfter = retryAfter;
  }
}

/** Thrown by a `getToken` callback to stop reconnecting. */
export class UnauthorizedError extends Error {
  constructor(message = 'unauthorized') {
    super(message);
    this.name = 'UnauthorizedError';
  }
}

type Handler = (arg: any) => unknown;

/** Base of Parley and Subscription: `on(event, fn)` and `off(event, fn)`. */
export class Emitter<E extends Record<string, unknown>> {
  private handlers: { [K in keyof E]?: Handler[] } = {};
  on<K extends keyof E>(event: K, fn: (arg: E[K]) => unknown): this {
    (this.handlers[event] ||= []).push(fn as Handler);
    return this;
  }
  off<K extends keyof E>(event: K, fn: (arg: E[K]) => unknown): this {
    const list = this.handlers[event];
    if (list) this.handlers[event] = list.filter((h) => h !== fn);
    return this;
  }
  /** Calls the handlers; returns the promises they returned (for autoAck). */
  protected emit<K extends keyof E>(event: K, arg: E[K]): Promise<unknown>[] {
    const out: Promise<unknown>[] = [];
    for (const h of this.handlers[event] || []) {
      try {
        const r = h(arg);
        if (r && typeof (r as Promise<unknown>).then === 'function') out.push(r as Promise<unknown>);
      } catch (e) {
        setTimeout(() => { throw e; }, 0); // a handler's bug must not break delivery
      }
    }
    return out;
  }
}

/**
 * Full-jitter exponential backoff: a random delay in [min, cap] where cap
 * doubles per attempt from min up to max. `random` is injectable for tests.
 */
export function backoff(attempt: number, min: number, max: number, random: () => number = Math.random): number {
  const cap = Math.min(max, min * Math.pow(2, Math.max(0, attempt)));
  return Math.round(min + random() * Math.max(0, cap - min));
}

/** A place in a channel's stream. */
export interface Position { offset: number; epoch: string }

export type Accept = 'deliver' | 'duplicate';

/**
 * Tracks the last stored pub delivered to the application for one channel.
 * A pub is delivered once: in the same epoch only when its offset is past the
 * position. A pub of another epoch (the stream was restarted; the server
 * signals it with a gap) moves the position to it.
 */
export class PositionTracker {
  position: Position | null = null;
  constructor(start?: Position) { if (start) this.position = { ...start }; }
  accept(offset: number, epoch: string): Accept {
    if (offset <= 0) return 'deliver'; // ephemeral: not positioned
    const p = this.position;
    if (p && p.epoch === epoch && offset <= p.offset) return 'duplicate';
    this.position = { offset, epoch };
    return 'deliver';
  }
  reset(offset: number, epoch: string): void { this.position = { offset, epoch }; }
}

/** Random id for idempotency keys (no dependency, works in browsers and Node). */
export function randomKey(): string {
  const c = (globalThis as any).crypto;
  if (c && typeof c.randomUUID === 'function') return c.randomUUID();
  let s = '';
  for (let i = 0; i < 32; i++) s += Math.floor(Math.random() * 16).toString(16);
  return s;
}

/** UTF-8 length of a string, without allocating. */
export function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) { n += 4; i++; }
    else n += 3;
  }
  return n;
}

/** Bounds of one outgoing frame (`FrameBatcher`). */
export interface BatchLimits {
  /** Commands per frame (default 64). */
  maxCommands?: number;
  /** UTF-8 bytes per frame, separators included (default 65536); a larger single command goes alone. */
  maxBytes?: number;
}

/**
 * Joins the commands issued in the same tick into one WebSocket message,
 * newline-separated (docs/protocol.md, "Frames"), in the order given, at most
 * `maxCommands` commands and `maxBytes` bytes per frame. `push` queues an
 * encoded command and schedules a flush (by default at the end of the
 * current tick, a microtask); a command that would break a bound sends the
 * frame so far first. `flush` sends what is queued now.
 */
export class FrameBatcher {
  private parts: string[] = [];
  private bytes = 0;
  private scheduled = false;
  private readonly maxCommands: number;
  private readonly maxBytes: number;

  constructor(
    private readonly sendFrame: (frame: string) => void,
    limits: BatchLimits = {},
    private readonly schedule: (fn: () => void) => void = (fn) => queueMicrotask(fn),
  ) {
    this.maxCommands = Math.max(1, limits.maxCommands ?? 64);
    this.maxBytes = Math.max(1, limits.maxBytes ?? 65536);
  }

  /** Commands queued and not yet sent. */
  get size(): number { return this.parts.length; }

  push(command: string): void {
    const len = utf8Length(command);
    if (this.parts.length && (this.parts.length >= this.maxCommands || this.bytes + 1 + len > this.maxBytes)) this.flush();
    this.bytes += (this.parts.length ? 1 : 0) + len;
    this.parts.push(command);
    if (!this.scheduled) {
      this.scheduled = true;
      this.schedule(() => { this.scheduled = false; this.flush(); });
    }
  }

  flush(): void {
    if (!this.parts.length) return;
    const frame = this.parts.join('\n');
    this.parts = [];
    this.bytes = 0;
    this.sendFrame(frame);
  }
}
