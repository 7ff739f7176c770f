import type { ConnectionOptions } from 'bullmq';

/**
 * Every Redis key the system writes lives under one prefix, and the prefix carries a hash tag
 * (`{...}`) so that all keys of a deployment land in one Redis Cluster slot, as BullMQ requires.
 */
export function bullPrefix(prefix: string): string {
  return prefix.startsWith('{') && prefix.includes('}') ? prefix : `{${prefix}}`;
}

/** Pattern matching every key of a prefix (for tests and for `redis-cli --scan`). */
export function keyPattern(prefix: string): string {
  return `${bullPrefix(prefix)}:*`;
}

export interface RedisOptions {
  host: string;
  port: number;
  db: number;
  username?: string;
  password?: string;
  /** Set for rediss:// (TLS, verifying the server's certificate against its host name). */
  tls?: { servername: string };
}

/** Parses redis[s]://[user:pass@]host:port[/db] into ioredis options. */
export function redisOptions(url: string): RedisOptions {
  const u = new URL(url);
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new Error(`not a Redis URL (redis:// or rediss://): ${u.protocol}`);
  const opts: RedisOptions = {
    host: u.hostname || '127.0.0.1',
    port: u.port ? Number(u.port) : 6379,
    db: u.pathname && u.pathname !== '/' ? Number(u.pathname.slice(1)) : 0,
  };
  if (u.username) opts.username = decodeURIComponent(u.username);
  if (u.password) opts.password = decodeURIComponent(u.password);
  if (u.protocol === 'rediss:') opts.tls = { servername: opts.host };
  return opts;
}

/** For blocking consumers (BullMQ Worker): never give up on a command. */
export function consumerConnection(url: string): ConnectionOptions {
  return { ...redisOptions(url), maxRetriesPerRequest: null };
}

/** For producers: fail a command after a few retries instead of hanging forever. */
export function producerConnection(url: string): ConnectionOptions {
  return { ...redisOptions(url), maxRetriesPerRequest: 3 };
}
