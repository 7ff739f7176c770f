import { randomBytes } from 'node:crypto';
import { readMigrations } from '@deferrable/db';
import { AppProcess, databaseUrlFor, dropDatabase, PG_ADMIN_URL, REDIS_URL, type AppName } from '@deferrable/testkit';
import { Client } from 'pg';

/** What an app says when it cannot start, before it registers anything. */
describe('startup checks', () => {
  const name = `dft_unmigrated_${process.pid}_${randomBytes(4).toString('hex')}`;
  const url = databaseUrlFor(name);
  const admin = new Client({ connectionString: PG_ADMIN_URL });

  beforeAll(async () => {
    await admin.connect();
    await admin.query(`CREATE DATABASE "${name}"`);
  });
  afterAll(async () => {
    await admin.end();
    await dropDatabase(name);
  });

  test.each(['worker', 'triggerer'] as AppName[])(
    'a %s started against an unmigrated database exits 1, naming the missing migrations and what to run',
    async (app) => {
      const p = new AppProcess(app, { DATABASE_URL: url, REDIS_URL, DEFERRABLE_PREFIX: `{dft-unmigrated-${randomBytes(4).toString('hex')}}` });
      expect(await p.exited).toEqual({ code: 1, signal: null });
      const fatal = p.logs.find((r) => r.level === 60);
      expect(fatal?.msg).toContain(`the database is missing ${readMigrations().length} migration(s)`);
      expect(fatal?.msg).toContain(readMigrations()[0]!.name);
      expect(fatal?.msg).toContain('npm run migrate');
      expect(fatal?.msg).not.toContain('relation "job" does not exist');
      // It created nothing: the check ran before registration.
      const db = new Client({ connectionString: url });
      await db.connect();
      try {
        const { rows } = await db.query("SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'public'");
        expect(rows[0].n).toBe(0);
      } finally {
        await db.end();
      }
    },
  );
});
