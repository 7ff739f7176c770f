import { PrismaPg } from '@prisma/adapter-pg';
import { Pool, type PoolClient } from 'pg';
import { PrismaClient } from './generated/prisma/client';

/** Anything that runs a query: the pool, or a client inside a transaction. */
export type Queryable = Pick<Pool, 'query'> | PoolClient;

export interface Db {
  /** One pool for hot-path SQL and for Prisma (through its pg adapter). */
  readonly pool: Pool;
  readonly prisma: PrismaClient;
  close(): Promise<void>;
}

export interface DbOptions {
  url: string;
  poolMax?: number;
  applicationName?: string;
}

export function createDb(options: DbOptions): Db {
  const pool = new Pool({
    connectionString: options.url,
    max: options.poolMax ?? 10,
    application_name: options.applicationName ?? 'deferrable',
    // No JIT: every statement here is short, and a plan whose estimated cost crosses
    // jit_above_cost (a count over many triggers, a disabled plan node) would spend 50-100 ms
    // compiling it. PGOPTIONS still applies (node-pg ignores it once `options` is set).
    options: [process.env.PGOPTIONS, '-c jit=off'].filter(Boolean).join(' '),
  });
  // An idle client's error (server restart) must not crash the process; the pool replaces it.
  pool.on('error', () => undefined);
  // Minimal errors: no code frames of our own source in messages a user reads.
  const prisma = new PrismaClient({ adapter: new PrismaPg(pool), errorFormat: 'minimal' });
  let closed = false;
  return {
    pool,
    prisma,
    async close() {
      if (closed) return;
      closed = true;
      await prisma.$disconnect().catch(() => undefined);
      await pool.end().catch(() => undefined);
    },
  };
}

/**
 * Runs `fn` in one transaction on one client. A checked-out client has no error listener of the
 * pool's: one is added here, so a connection cut while the transaction holds the client (a
 * restart) fails the transaction instead of crashing the process; the client is then discarded.
 */
export async function inTransaction<T>(pool: Pool, fn: (client: PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let lost: Error | null = null;
  const onError = (err: Error) => {
    lost ??= err;
  };
  client.on('error', onError);
  try {
    await client.query('BEGIN');
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch((rollbackErr: unknown) => {
      lost ??= rollbackErr instanceof Error ? rollbackErr : new Error(String(rollbackErr));
    });
    throw err;
  } finally {
    client.removeListener('error', onError);
    // With an error, the pool destroys the client instead of handing it out again.
    client.release(lost ?? undefined);
  }
}
