import { createHash, randomBytes } from 'node:crypto';
import { appendFileSync, cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createTestEnv, databaseUrlFor, dropDatabase, PG_ADMIN_URL, type TestEnv } from '@deferrable/testkit';
import { Client } from 'pg';
import { DEFAULT_MIGRATIONS_DIR, ensureDatabase, migrate, MigrationChecksumError, readMigrations } from './migrate';

const MIGRATIONS = readdirSync(DEFAULT_MIGRATIONS_DIR, { withFileTypes: true })
  .filter((e) => e.isDirectory())
  .map((e) => e.name)
  .sort();
const TABLES = ['_prisma_migrations', 'api_token', 'job', 'rejection', 'task_instance', 'task_transition', 'task_type', 'task_type_registration', 'trigger'];

let env: TestEnv;
const extraDatabases: string[] = [];
const tempDirs: string[] = [];

/** A fresh, empty database (not migrated), dropped in afterAll. */
async function freshDatabase(): Promise<string> {
  const name = `dft_migrate_${process.pid}_${randomBytes(4).toString('hex')}`;
  const admin = new Client({ connectionString: PG_ADMIN_URL });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE "${name}"`);
  } finally {
    await admin.end();
  }
  extraDatabases.push(name);
  return databaseUrlFor(name);
}

/** A copy of the migrations directory that a test may edit. */
function copyOfMigrations(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'dft-migrations-'));
  tempDirs.push(dir);
  cpSync(DEFAULT_MIGRATIONS_DIR, dir, { recursive: true });
  return dir;
}

async function query<T extends object>(url: string, sql: string, params: unknown[] = []): Promise<T[]> {
  const c = new Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query<T>(sql, params)).rows;
  } finally {
    await c.end();
  }
}

interface BookkeepingRow {
  id: string;
  checksum: string;
  migration_name: string;
  started_at: Date;
  finished_at: Date | null;
  rolled_back_at: Date | null;
  applied_steps_count: number;
  logs: string | null;
}

const bookkeeping = (url: string) => query<BookkeepingRow>(url, 'SELECT * FROM "_prisma_migrations" ORDER BY migration_name, started_at');

const tables = async (url: string) =>
  (
    await query<{ table_name: string }>(
      url,
      `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY table_name`,
    )
  ).map((r) => r.table_name);

beforeAll(async () => {
  env = await createTestEnv('migrate');
});

afterAll(async () => {
  await env?.cleanup();
  for (const name of extraDatabases) await dropDatabase(name);
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

describe('migrate', () => {
  it('has the migrations it is expected to have', () => {
    expect(MIGRATIONS.length).toBeGreaterThan(0);
    expect(readMigrations().map((m) => m.name)).toEqual(MIGRATIONS);
    for (const name of MIGRATIONS) expect(name).toMatch(/^\d{14}_[a-z0-9_]+$/);
  });

  it('migrates a fresh database and keeps Prisma-compatible bookkeeping', async () => {
    const url = await freshDatabase();
    const result = await migrate(url);
    expect(result).toEqual({ applied: MIGRATIONS, alreadyApplied: [] });
    expect(await tables(url)).toEqual(TABLES);

    const rows = await bookkeeping(url);
    expect(rows).toHaveLength(MIGRATIONS.length);
    rows.forEach((row, i) => {
      const name = MIGRATIONS[i]!;
      const bytes = readFileSync(path.join(DEFAULT_MIGRATIONS_DIR, name, 'migration.sql'));
      expect(row.migration_name).toBe(name);
      expect(row.checksum).toBe(createHash('sha256').update(bytes).digest('hex'));
      expect(row.id).toMatch(/^[0-9a-f-]{36}$/);
      expect(row.finished_at).toBeInstanceOf(Date);
      expect(row.finished_at!.getTime()).toBeGreaterThanOrEqual(row.started_at.getTime());
      expect(row.rolled_back_at).toBeNull();
      expect(row.applied_steps_count).toBe(1);
    });

    // Prisma's own column layout of the bookkeeping table, so `prisma migrate status` can read it.
    const columns = await query<{ column_name: string; data_type: string; is_nullable: string }>(
      url,
      `SELECT column_name, data_type, is_nullable FROM information_schema.columns
       WHERE table_name = '_prisma_migrations' ORDER BY column_name`,
    );
    expect(columns.map((c) => [c.column_name, c.data_type, c.is_nullable])).toEqual([
      ['applied_steps_count', 'integer', 'NO'],
      ['checksum', 'character varying', 'NO'],
      ['finished_at', 'timestamp with time zone', 'YES'],
      ['id', 'character varying', 'NO'],
      ['logs', 'text', 'YES'],
      ['migration_name', 'character varying', 'NO'],
      ['rolled_back_at', 'timestamp with time zone', 'YES'],
      ['started_at', 'timestamp with time zone', 'NO'],
    ]);

    // The audit triggers (statement-level, since the second migration) are part of the migrations.
    const triggers = await query<{ tgname: string }>(url, `SELECT tgname FROM pg_trigger WHERE NOT tgisinternal ORDER BY tgname`);
    expect(triggers.map((t) => t.tgname)).toEqual(['task_instance_log_inserted', 'task_instance_log_updated']);
  });

  it('applies nothing the second time', async () => {
    // createTestEnv already migrated this database.
    const before = await bookkeeping(env.databaseUrl);
    expect(await migrate(env.databaseUrl)).toEqual({ applied: [], alreadyApplied: MIGRATIONS });
    expect(await migrate(env.databaseUrl)).toEqual({ applied: [], alreadyApplied: MIGRATIONS });
    expect(await bookkeeping(env.databaseUrl)).toEqual(before);
  });

  it('two migrators starting at once on a fresh database both succeed and apply each migration once', async () => {
    for (let round = 0; round < 2; round++) {
      const url = await freshDatabase();
      const results = await Promise.all([migrate(url), migrate(url), migrate(url)]);
      const applied = results.flatMap((r) => r.applied);
      expect(applied.sort()).toEqual([...MIGRATIONS].sort());
      for (const r of results) expect([...r.applied, ...r.alreadyApplied].sort()).toEqual([...MIGRATIONS].sort());
      const rows = await bookkeeping(url);
      expect(rows.map((r) => r.migration_name)).toEqual(MIGRATIONS);
      expect(rows.every((r) => r.finished_at !== null)).toBe(true);
      expect(await tables(url)).toEqual(TABLES);
    }
  });

  it('four processes creating the same missing database at once all succeed', async () => {
    for (let round = 0; round < 3; round++) {
      const name = `dft_ensure_${randomBytes(6).toString('hex')}`;
      const url = databaseUrlFor(name);
      try {
        // Before the fix 3 of 4 failed with 23505 in every round (found by a review).
        await expect(Promise.all([ensureDatabase(url), ensureDatabase(url), ensureDatabase(url), ensureDatabase(url)])).resolves.toHaveLength(4);
        const c = new Client({ connectionString: url });
        await c.connect();
        expect((await c.query('SELECT current_database() AS name')).rows[0]).toEqual({ name });
        await c.end();
      } finally {
        await dropDatabase(name);
      }
    }
  });

  it('refuses a migration edited after it was applied', async () => {
    const url = await freshDatabase();
    const dir = copyOfMigrations();
    await migrate(url, dir);
    const last = MIGRATIONS[MIGRATIONS.length - 1]!;
    appendFileSync(path.join(dir, last, 'migration.sql'), '\n-- an innocent-looking edit\n');

    let caught: unknown;
    try {
      await migrate(url, dir);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(MigrationChecksumError);
    expect((caught as MigrationChecksumError).migration).toBe(last);
    expect((caught as Error).message).toContain(last);
    // Nothing was recorded or applied by the refused run, and the lock was released.
    expect((await bookkeeping(url)).map((r) => r.migration_name)).toEqual(MIGRATIONS);
    expect(await migrate(url)).toEqual({ applied: [], alreadyApplied: MIGRATIONS });
  });

  it('applies a new migration alone, in name order, and rolls a failing one back entirely', async () => {
    const url = await freshDatabase();
    const dir = copyOfMigrations();
    await migrate(url, dir);

    mkdirSync(path.join(dir, '29990101000000_broken'));
    writeFileSync(path.join(dir, '29990101000000_broken', 'migration.sql'), 'CREATE TABLE "half_done" ("id" INTEGER);\nSELECT no_such_function();\n');
    await expect(migrate(url, dir)).rejects.toThrow(/no_such_function/);
    expect(await tables(url)).toEqual(TABLES);
    expect((await bookkeeping(url)).map((r) => r.migration_name)).toEqual(MIGRATIONS);

    writeFileSync(path.join(dir, '29990101000000_broken', 'migration.sql'), 'CREATE TABLE "half_done" ("id" INTEGER);\n');
    mkdirSync(path.join(dir, '29990101000001_later'));
    writeFileSync(path.join(dir, '29990101000001_later', 'migration.sql'), 'ALTER TABLE "half_done" ADD COLUMN "x" TEXT;\n');
    expect(await migrate(url, dir)).toEqual({
      applied: ['29990101000000_broken', '29990101000001_later'],
      alreadyApplied: MIGRATIONS,
    });
    expect(await tables(url)).toEqual([...TABLES, 'half_done'].sort());
  });
});
