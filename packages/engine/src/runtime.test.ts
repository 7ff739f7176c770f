import { Writable } from 'node:stream';
import { DEV_KWARGS_KEY } from '@deferrable/config';
import { createLogger } from '@deferrable/logging';
import { createResources } from './runtime';

/** The lines a logger wrote, parsed. */
function capture(): { lines: { level: number; msg: string }[]; stream: Writable } {
  const lines: { level: number; msg: string }[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n')) if (l.trim()) lines.push(JSON.parse(l));
      done();
    },
  });
  return { lines, stream };
}

const base = {
  DATABASE_URL: 'postgresql://postgres@127.0.0.1:5432/postgres',
  REDIS_URL: 'redis://127.0.0.1:6379',
  DEFERRABLE_PREFIX: '{t}',
  LOG_LEVEL: 'info',
};

describe('createResources', () => {
  test.each([
    [undefined, true],
    ['staging', true],
    ['development', false],
    ['test', false],
  ])('with the development key and NODE_ENV %s, warns: %s', async (nodeEnv, warns) => {
    const { lines, stream } = capture();
    const res = createResources({ ...base, DEFERRABLE_KWARGS_KEYS: [DEV_KWARGS_KEY], NODE_ENV: nodeEnv }, createLogger({ name: 'test', destination: stream }));
    await res.db.close();
    await new Promise((r) => setImmediate(r));
    expect(lines.some((l) => l.level === 40 && /development key/.test(l.msg))).toBe(warns);
  });

  test('with a key of its own, says nothing', async () => {
    const { lines, stream } = capture();
    const key = Buffer.alloc(32, 9).toString('base64');
    const res = createResources({ ...base, DEFERRABLE_KWARGS_KEYS: [key] }, createLogger({ name: 'test', destination: stream }));
    await res.db.close();
    await new Promise((r) => setImmediate(r));
    expect(lines).toEqual([]);
  });
});
