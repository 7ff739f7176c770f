import { randomBytes } from 'node:crypto';
import { createDb, migrate, type Db } from '@deferrable/db';
import { Redis } from 'ioredis';
import { Client } from 'pg';

export const PG_ADMIN_URL = process.env.DEFERRABLE_TEST_PG_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
export const REDIS_URL = process.env.DEFERRABLE_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

export interface TestEnv {
  databaseName: string;
  databaseUrl: string;
  redisUrl: string;
  /** Redis key prefix of this test file, with a hash tag. */
  prefix: string;
  db: Db;
  redis: Redis;
  /** Environment variables that point an app process at this test's database and prefix. */
  appEnv(extra?: Record<string, string>): Record<string, string>;
  cleanup(): Promise<void>;
}

export function databaseUrlFor(name: string): string {
  const u = new URL(PG_ADMIN_URL);
  u.pathname = `/${name}`;
  return u.toString();
}

/** A fresh, migrated database and a Redis prefix of its own, for one test file. */
export async function createTestEnv(label = 'test'): Promise<TestEnv> {
  const id = `${label
    .replace(/[^a-z0-9]/gi, '')
    .slice(0, 20)
    .toLowerCase()}_${process.pid}_${randomBytes(4).toString('hex')}`;
  const databaseName = `dft_${id}`;
  const admin = new Client({ connectionString: PG_ADMIN_URL });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE "${databaseName}"`);
  } finally {
    await admin.end();
  }
  const databaseUrl = databaseUrlFor(databaseName);
  await migrate(databaseUrl);
  const prefix = `{dft-${id}}`;
  const db = createDb({ url: databaseUrl, poolMax: 5, applicationName: 'deferrable-test' });
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 3 });
  return {
    databaseName,
    databaseUrl,
    redisUrl: REDIS_URL,
    prefix,
    db,
    redis,
    appEnv: (extra = {}) => ({
      DATABASE_URL: databaseUrl,
      REDIS_URL,
      DEFERRABLE_PREFIX: prefix,
      LOG_LEVEL: 'info',
      ...extra,
    }),
    async cleanup() {
      await db.close();
      await deleteKeys(redis, prefix);
      redis.disconnect();
      await dropDatabase(databaseName);
    },
  };
}

/** Deletes every Redis key under a prefix: for this test, Redis is emptied. */
export async function deleteKeys(redis: Redis, prefix: string): Promise<number> {
  let cursor = '0';
  let deleted = 0;
  const pattern = `${prefix.replace(/([*?[\]])/g, '\\$1')}:*`;
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    if (keys.length) deleted += await redis.del(...keys);
  } while (cursor !== '0');
  return deleted;
}

export async function dropDatabase(name: string): Promise<void> {
  const admin = new Client({ connectionString: PG_ADMIN_URL });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  } finally {
    await admin.end();
  }
}
