import { Redis } from 'ioredis';
import { Client } from 'pg';
import { PG_ADMIN_URL, REDIS_URL } from './env';

/** Fails the run at once, with a clear message, when PostgreSQL or Redis is not reachable. */
export default async function globalSetup(): Promise<void> {
  const pg = new Client({ connectionString: PG_ADMIN_URL, connectionTimeoutMillis: 5000 });
  try {
    await pg.connect();
    await pg.query('SELECT 1');
  } catch (err) {
    throw new Error(`tests need PostgreSQL at ${PG_ADMIN_URL}: ${(err as Error).message}`);
  } finally {
    await pg.end().catch(() => undefined);
  }
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1, lazyConnect: true, connectTimeout: 5000 });
  try {
    await redis.connect();
    await redis.ping();
  } catch (err) {
    throw new Error(`tests need Redis at ${REDIS_URL}: ${(err as Error).message}`);
  } finally {
    redis.disconnect();
  }
}
