/**
 * The classifier against errors the real PostgreSQL and node-postgres produce: those that say the
 * database was out of reach are transient, those that say what was asked is wrong are not.
 */
import { createTestEnv, type TestEnv } from '@deferrable/testkit';
import { Client } from 'pg';
import { createDb } from './client';
import { isTransientDbError } from './errors';

let env: TestEnv;
let admin: Client;

beforeAll(async () => {
  env = await createTestEnv('errors');
  admin = new Client({ connectionString: env.databaseUrl.replace(/\/[^/]+$/, '/postgres') });
  await admin.connect();
});

afterAll(async () => {
  await admin?.query(`ALTER DATABASE "${env.databaseName}" WITH ALLOW_CONNECTIONS true`).catch(() => undefined);
  await admin?.end();
  await env?.cleanup();
});

async function errorOf(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a failure');
}

test('a refused connection is transient', async () => {
  const db = createDb({ url: 'postgresql://postgres@127.0.0.1:1/nothing' });
  try {
    const err = await errorOf(db.pool.query('SELECT 1'));
    expect((err as { code?: string }).code).toBe('ECONNREFUSED');
    expect(isTransientDbError(err)).toBe(true);
  } finally {
    await db.close();
  }
});

test('a statement whose backend is terminated is transient, and so is connecting while the database refuses connections', async () => {
  const db = createDb({ url: env.databaseUrl, poolMax: 1 });
  try {
    const client = new Client({ connectionString: env.databaseUrl, application_name: 'errors-test-victim' });
    await client.connect();
    client.on('error', () => undefined);
    const running = errorOf(client.query('SELECT pg_sleep(30)'));
    // Terminate it once its statement is running.
    for (let i = 0; i < 100; i++) {
      const r = await admin.query("SELECT pid FROM pg_stat_activity WHERE application_name = 'errors-test-victim' AND state = 'active'");
      if (r.rowCount === 1) {
        await admin.query('SELECT pg_terminate_backend($1)', [r.rows[0].pid]);
        break;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    const terminated = await running;
    expect(isTransientDbError(terminated)).toBe(true);
    await client.end().catch(() => undefined);

    await admin.query(`ALTER DATABASE "${env.databaseName}" WITH ALLOW_CONNECTIONS false`);
    const refused = await errorOf(db.pool.query('SELECT 1'));
    expect((refused as { code?: string }).code).toBe('55000');
    expect(isTransientDbError(refused)).toBe(true);
  } finally {
    await admin.query(`ALTER DATABASE "${env.databaseName}" WITH ALLOW_CONNECTIONS true`);
    await db.close();
  }
});

test('errors about the statement itself are not transient', async () => {
  const pool = env.db.pool;
  const syntax = await errorOf(pool.query('SELEC 1'));
  expect((syntax as { code?: string }).code).toBe('42601');
  expect(isTransientDbError(syntax)).toBe(false);
  const badUuid = await errorOf(pool.query('SELECT $1::uuid', ['not-a-uuid']));
  expect((badUuid as { code?: string }).code).toBe('22P02');
  expect(isTransientDbError(badUuid)).toBe(false);
  const nul = await errorOf(pool.query('SELECT \'"\\u0000"\'::jsonb'));
  expect(isTransientDbError(nul)).toBe(false);
  // 55000 for another reason than refused connections.
  const noCurrval = await errorOf(pool.query("SELECT currval('task_transition_id_seq')"));
  expect((noCurrval as { code?: string }).code).toBe('55000');
  expect(isTransientDbError(noCurrval)).toBe(false);
  expect(isTransientDbError('Connection terminated')).toBe(false);
  // Class 08 is the connection's, except a protocol violation, which would only repeat.
  expect(isTransientDbError(Object.assign(new Error('connection failure'), { code: '08006' }))).toBe(true);
  expect(isTransientDbError(Object.assign(new Error('protocol violation'), { code: '08P01' }))).toBe(false);
  expect(isTransientDbError(new Error('Connection terminated unexpectedly'))).toBe(true);
  // Connecting to a name with several addresses: one error per address.
  const refusedEach = Object.assign(new Error('connect ECONNREFUSED ::1:5432'), { code: 'ECONNREFUSED' });
  expect(isTransientDbError(new AggregateError([refusedEach, refusedEach]))).toBe(true);
  expect(isTransientDbError(new AggregateError([new Error('something else')]))).toBe(false);
});
