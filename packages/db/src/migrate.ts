import { createHash, randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { DatabaseNotMigratedError } from '@deferrable/domain';
import { Client } from 'pg';
import type { Queryable } from './client';

/**
 * Applies prisma/migrations/<name>/migration.sql in name order, each in its own transaction, under
 * a PostgreSQL advisory lock so that two processes starting at once cannot both migrate. It keeps
 * Prisma's own bookkeeping table `_prisma_migrations` (same columns, sha256 checksum of the file),
 * so `prisma migrate status` and `prisma migrate deploy` agree with it where Prisma's engine runs.
 * Hand-written because Prisma's migrate needs a native engine that cannot be installed here.
 */
export const DEFAULT_MIGRATIONS_DIR = path.resolve(__dirname, '../../../prisma/migrations');

// Arbitrary constant: the advisory-lock key every Deferrable migrator takes.
const MIGRATION_LOCK_KEY = 72_657_372;

export interface Migration {
  name: string;
  sql: string;
  checksum: string;
}

export interface MigrateResult {
  applied: string[];
  alreadyApplied: string[];
}

export class MigrationChecksumError extends Error {
  constructor(readonly migration: string) {
    super(`migration ${migration} was edited after it was applied (checksum differs); migrations are never edited once released`);
  }
}

export function readMigrations(dir: string = DEFAULT_MIGRATIONS_DIR): Migration[] {
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .sort()
    .map((name) => {
      const sql = readFileSync(path.join(dir, name, 'migration.sql'), 'utf8');
      return { name, sql, checksum: createHash('sha256').update(sql).digest('hex') };
    });
}

const BOOKKEEPING_DDL = `
CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
    "id"                    VARCHAR(36) PRIMARY KEY NOT NULL,
    "checksum"              VARCHAR(64) NOT NULL,
    "finished_at"           TIMESTAMPTZ,
    "migration_name"        VARCHAR(255) NOT NULL,
    "logs"                  TEXT,
    "rolled_back_at"        TIMESTAMPTZ,
    "started_at"            TIMESTAMPTZ NOT NULL DEFAULT now(),
    "applied_steps_count"   INTEGER NOT NULL DEFAULT 0
)`;

export async function migrate(databaseUrl: string, dir: string = DEFAULT_MIGRATIONS_DIR): Promise<MigrateResult> {
  const migrations = readMigrations(dir);
  const client = new Client({ connectionString: databaseUrl, application_name: 'deferrable-migrate' });
  await client.connect();
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
    try {
      await client.query(BOOKKEEPING_DDL);
      const { rows } = await client.query<{ migration_name: string; checksum: string }>(
        `SELECT migration_name, checksum FROM "_prisma_migrations"
         WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL`,
      );
      const done = new Map(rows.map((r) => [r.migration_name, r.checksum]));
      const result: MigrateResult = { applied: [], alreadyApplied: [] };
      for (const m of migrations) {
        const checksum = done.get(m.name);
        if (checksum !== undefined) {
          if (checksum !== m.checksum) throw new MigrationChecksumError(m.name);
          result.alreadyApplied.push(m.name);
          continue;
        }
        await applyOne(client, m);
        result.applied.push(m.name);
      }
      return result;
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]).catch(() => undefined);
    }
  } finally {
    await client.end();
  }
}

async function applyOne(client: Client, m: Migration): Promise<void> {
  const id = randomUUID();
  await client.query('BEGIN');
  try {
    await client.query(
      `INSERT INTO "_prisma_migrations" (id, checksum, migration_name, started_at, applied_steps_count)
       VALUES ($1, $2, $3, now(), 0)`,
      [id, m.checksum, m.name],
    );
    await client.query(m.sql);
    await client.query(`UPDATE "_prisma_migrations" SET finished_at = now(), applied_steps_count = 1 WHERE id = $1`, [id]);
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

/** The migrations this build ships that the database has not applied (all of them on an empty database). */
export async function pendingMigrations(db: Queryable, dir: string = DEFAULT_MIGRATIONS_DIR): Promise<string[]> {
  const shipped = readMigrations(dir).map((m) => m.name);
  const { rows } = await db.query<{ present: boolean }>(`SELECT to_regclass('"_prisma_migrations"') IS NOT NULL AS present`);
  if (!rows[0]?.present) return shipped;
  const applied = await db.query<{ migration_name: string }>(
    `SELECT migration_name FROM "_prisma_migrations" WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL`,
  );
  const done = new Set(applied.rows.map((r) => r.migration_name));
  return shipped.filter((name) => !done.has(name));
}

/**
 * Checked by the apps that do not migrate (worker, triggerer) before they register anything: an
 * unmigrated database is named, with what to run, instead of failing later on a missing relation.
 */
export async function assertMigrated(db: Queryable, dir: string = DEFAULT_MIGRATIONS_DIR): Promise<void> {
  const missing = await pendingMigrations(db, dir);
  if (missing.length > 0) throw new DatabaseNotMigratedError(missing);
}

/** Creates the database named in `databaseUrl` when it does not exist yet (for the quick start). */
export async function ensureDatabase(databaseUrl: string): Promise<void> {
  const url = new URL(databaseUrl);
  const name = decodeURIComponent(url.pathname.replace(/^\//, ''));
  if (!name) return;
  url.pathname = '/postgres';
  const admin = new Client({ connectionString: url.toString() });
  await admin.connect();
  try {
    const { rowCount } = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (!rowCount) {
      await admin.query(`CREATE DATABASE "${name.replace(/"/g, '""')}"`).catch((err: { code?: string }) => {
        // Created by a concurrent process: 42P04 once it has committed, 23505 (the unique index
        // on pg_database) while both creations race.
        if (err.code !== '42P04' && err.code !== '23505') throw err;
      });
    }
  } finally {
    await admin.end();
  }
}
