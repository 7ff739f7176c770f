import { randomBytes } from 'node:crypto';
import { databaseUrlFor, dropDatabase, PG_ADMIN_URL } from '@deferrable/testkit';
import { DatabaseNotMigratedError } from '@deferrable/domain';
import { Client } from 'pg';
import { assertMigrated, migrate, pendingMigrations, readMigrations } from './migrate';

const name = `dft_pending_${process.pid}_${randomBytes(4).toString('hex')}`;
let db: Client;

beforeAll(async () => {
  const admin = new Client({ connectionString: PG_ADMIN_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE "${name}"`);
  await admin.end();
  db = new Client({ connectionString: databaseUrlFor(name) });
  await db.connect();
});

afterAll(async () => {
  await db?.end();
  await dropDatabase(name);
});

test('an empty database lacks every migration; a migrated one none; one missing is named', async () => {
  const shipped = readMigrations().map((m) => m.name);
  expect(await pendingMigrations(db)).toEqual(shipped);
  await expect(assertMigrated(db)).rejects.toThrow(DatabaseNotMigratedError);
  await expect(assertMigrated(db)).rejects.toThrow(/npm run migrate.*deferrable migrate/);

  await migrate(databaseUrlFor(name));
  expect(await pendingMigrations(db)).toEqual([]);
  await expect(assertMigrated(db)).resolves.toBeUndefined();

  const last = shipped[shipped.length - 1]!;
  await db.query('UPDATE "_prisma_migrations" SET rolled_back_at = now() WHERE migration_name = $1', [last]);
  expect(await pendingMigrations(db)).toEqual([last]);
  await expect(assertMigrated(db)).rejects.toThrow(new RegExp(`missing 1 migration\\(s\\) this build needs \\(${last}\\)`));
});
