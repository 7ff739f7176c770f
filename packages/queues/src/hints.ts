import { Redis } from 'ioredis';
import { bullPrefix, redisOptions } from './redis';

/**
 * Wake-up hints over Redis pub/sub: "a trigger was created on queue Q", "these triggers fired". A
 * hint carries no fact (the rows are in PostgreSQL; triggerers also poll, and every fired trigger
 * also has its trigger-event job), so a lost hint only costs latency. Redis rather than PostgreSQL
 * NOTIFY: NOTIFY serialises every notifying commit on a server-wide lock, which capped deferrals
 * at a few hundred per second here.
 */
export function triggerCreatedChannel(prefix: string): string {
  return `${bullPrefix(prefix)}:hint:trigger-created`;
}

/** "These triggers have recorded their outcomes": lets schedulers apply events before their jobs arrive. */
export function triggerFiredChannel(prefix: string): string {
  return `${bullPrefix(prefix)}:hint:trigger-fired`;
}

/** Publishes hints, coalescing identical ones sent within one turn of the event loop. */
export class HintPublisher {
  private readonly redis: Redis;
  private readonly pending = new Set<string>();
  private scheduled = false;

  constructor(
    redisUrl: string,
    private readonly channel: string,
  ) {
    this.redis = new Redis({ ...redisOptions(redisUrl), maxRetriesPerRequest: 1, lazyConnect: true, enableOfflineQueue: false });
    this.redis.on('error', () => undefined);
    void this.redis.connect().catch(() => undefined);
  }

  publish(message: string): void {
    this.pending.add(message);
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      const messages = [...this.pending];
      this.pending.clear();
      for (const m of messages) void this.redis.publish(this.channel, m).catch(() => undefined);
    });
  }

  /** Publishes at once, without coalescing (for hints that carry ids). */
  publishNow(message: string): void {
    void this.redis.publish(this.channel, message).catch(() => undefined);
  }

  async close(): Promise<void> {
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}

/** Subscribes to hints; `onReady` runs after every (re)connect, when hints may have been missed. */
export function subscribeHints(redisUrl: string, channel: string, onMessage: (message: string) => void, onReady: () => void): { close(): Promise<void> } {
  const redis = new Redis({ ...redisOptions(redisUrl), maxRetriesPerRequest: null });
  redis.on('error', () => undefined);
  redis.on('message', (_ch: string, message: string) => onMessage(message));
  redis.on('ready', () => {
    void redis.subscribe(channel).then(onReady, () => undefined);
  });
  return {
    async close() {
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}
