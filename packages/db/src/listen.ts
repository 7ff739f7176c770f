import { Client } from 'pg';

export interface Listener {
  close(): Promise<void>;
}

export interface ListenOptions {
  url: string;
  channels: readonly string[];
  onNotify(channel: string, payload: string): void;
  /** Called after every (re)connect: notifications sent while disconnected are lost, so catch up. */
  onConnect?(): void;
  onError?(err: unknown): void;
  maxBackoffMs?: number;
}

/**
 * A dedicated LISTEN connection that reconnects with backoff. A notification is only a hint for
 * speed: callers also poll PostgreSQL, and re-poll on every (re)connect.
 */
export function listen(options: ListenOptions): Listener {
  let closed = false;
  let client: Client | null = null;
  let attempt = 0;
  let timer: NodeJS.Timeout | null = null;

  const connect = async (): Promise<void> => {
    if (closed) return;
    const c = new Client({ connectionString: options.url, keepAlive: true, application_name: 'deferrable-listen' });
    c.on('notification', (n) => options.onNotify(n.channel, n.payload ?? ''));
    c.on('error', (err) => {
      options.onError?.(err);
      scheduleReconnect(c);
    });
    c.on('end', () => scheduleReconnect(c));
    try {
      await c.connect();
      for (const ch of options.channels) await c.query(`LISTEN "${ch.replace(/"/g, '""')}"`);
      if (closed) {
        await c.end().catch(() => undefined);
        return;
      }
      client = c;
      attempt = 0;
      options.onConnect?.();
    } catch (err) {
      options.onError?.(err);
      scheduleReconnect(c);
    }
  };

  const scheduleReconnect = (c: Client): void => {
    if (closed || timer || (client !== null && client !== c)) return;
    client = null;
    c.removeAllListeners('end');
    c.end().catch(() => undefined);
    const delay = Math.min(options.maxBackoffMs ?? 5000, 100 * 2 ** attempt++);
    timer = setTimeout(() => {
      timer = null;
      void connect();
    }, delay);
    timer.unref();
  };

  void connect();
  return {
    async close() {
      closed = true;
      if (timer) clearTimeout(timer);
      const c = client;
      client = null;
      if (c) {
        c.removeAllListeners('end');
        await c.end().catch(() => undefined);
      }
    },
  };
}
