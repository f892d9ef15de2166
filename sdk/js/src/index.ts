export { Parley, Subscription } from './client.js';
export type {
  ClientState, SubscriptionState, ParleyOptions, Publication, PublishOptions, PublishResult,
  HistoryOptions, HistoryResult, SubscribeOptions, ClientEvents, SubscriptionEvents,
  PresenceEvent, TypingEvent, ReadEvent, PresenceResult, ServerLimits, CursorsResult,
} from './client.js';
export { ParleyError, UnauthorizedError, ErrorCodes, backoff, PositionTracker, FrameBatcher, utf8Length } from './util.js';
export type { Position, Accept, BatchLimits } from './util.js';
export { FileOutboxStore, IndexedDBOutboxStore, MemoryOutboxStore, OutboxStoreError } from './outbox.js';
export type { OutboxStore, OutboxEntry, OutboxOptions } from './outbox.js';
