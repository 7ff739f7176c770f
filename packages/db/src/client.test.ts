import { createTestEnv, type TestEnv } from '@deferrable/testkit';
import { Pool } from 'pg';
import { inTransaction } from './client';

let env: TestEnv;
beforeAll(async () => {
  env = await createTestEnv('dbclient');
});
afterAll(() => env?.cleanup());

test('a transaction whose connection is cut between statements fails with the error, and the process does not crash', async () => {
  // The pool hands out clients without an error listener; a connection cut while the transaction
  // holds one (a PostgreSQL restart) made the client emit an unhandled 'error' that killed the
  // process (a scheduler, in the outage test).
  const pool = new Pool({ connectionString: env.databaseUrl, max: 2 });
  pool.on('error', () => undefined);
  try {
    const failed = inTransaction(pool, async (client) => {
      const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      const ended = new Promise((resolve) => client.once('end', resolve));
      await env.db.pool.query('SELECT pg_terminate_backend($1)', [rows[0]!.pid]);
      // Between statements: no query is active when the connection ends.
      await ended;
      await client.query('SELECT 1');
    });
    await expect(failed).rejects.toThrow(/connection error|terminat/);
    // The cut client was discarded: the pool still serves queries.
    expect((await pool.query<{ one: number }>('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
  } finally {
    await pool.end();
  }
});
