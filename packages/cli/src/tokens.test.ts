import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { hashToken, useApiToken } from '@deferrable/db';
import { createTestEnv, type TestEnv } from '@deferrable/testkit';
import { parseDuration } from './tokens';

const run = promisify(execFile);
const CLI = path.join(__dirname, '..', 'dist', 'main.js');

let env: TestEnv;
beforeAll(async () => {
  env = await createTestEnv('clitokens');
});
afterAll(() => env?.cleanup());

const cli = (...args: string[]) => run(process.execPath, [CLI, ...args, '--database-url', env.databaseUrl]);

test('tokens create prints a secret the table knows only by its hash; list shows it; revoke ends it', async () => {
  const created = await cli('tokens', 'create', '--role', 'operator', '--name', 'billing-svc', '--expires-in', '30d', '--json');
  const { id, secret, role, expires_at } = JSON.parse(created.stdout) as { id: string; secret: string; role: string; expires_at: string };
  expect(role).toBe('operator');
  expect(new Date(expires_at).getTime()).toBeGreaterThan(Date.now() + 29 * 86_400_000);
  const stored = await env.db.pool.query('SELECT token_hash FROM api_token WHERE id = $1', [id]);
  expect(stored.rows).toEqual([{ token_hash: hashToken(secret) }]);
  expect(JSON.stringify(stored.rows)).not.toContain(secret);
  expect(await useApiToken(env.db.pool, hashToken(secret))).toMatchObject({ status: 'live' });

  const listed = await cli('tokens', 'list');
  expect(listed.stdout).toMatch(new RegExp(`${id}\\s+billing-svc\\s+operator\\s+live`));
  expect(listed.stdout).not.toContain(secret);

  expect((await cli('tokens', 'revoke', id)).stdout).toContain('revoked');
  expect(await useApiToken(env.db.pool, hashToken(secret))).toEqual({ status: 'revoked' });
  await expect(cli('tokens', 'revoke', id)).rejects.toMatchObject({ code: 1 });
});

test('bad input is refused before anything is written', async () => {
  const count = async () => (await env.db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM api_token')).rows[0]!.n;
  const before = await count();
  await expect(cli('tokens', 'create', '--role', 'root', '--name', 'x')).rejects.toMatchObject({ stderr: expect.stringContaining('--role') });
  await expect(cli('tokens', 'create', '--role', 'viewer', '--name', 'x', '--expires-in', 'soon')).rejects.toMatchObject({
    stderr: expect.stringContaining('duration'),
  });
  await expect(cli('tokens', 'create', '--role', 'viewer', '--name', 'has space')).rejects.toMatchObject({ stderr: expect.stringContaining('--name') });
  await expect(cli('tokens', 'create', '--name', 'x')).rejects.toMatchObject({ stderr: expect.stringContaining('--role') });
  expect(await count()).toBe(before);
});

test('parseDuration', () => {
  expect(parseDuration('30d')).toBe(30 * 86_400_000);
  expect(parseDuration('12h')).toBe(12 * 3_600_000);
  expect(parseDuration('45m')).toBe(45 * 60_000);
  for (const bad of ['0d', '1w', '', 'd', '-1h']) expect(parseDuration(bad)).toBeNull();
});
